"""The Kafka cluster as production runs it (issue 17, item 3): three brokers from the same jars on
one machine (devstack's cluster option: a three-voter KRaft quorum, replication factor 3,
`min.insync.replicas=2`). Under a steady load of online dossiers, `kill -9` the broker that leads
most partitions of the submitted-dossier topic, restart it after a while: with the producers'
`acks=all` nothing acknowledged is lost, nothing is done twice, nothing is dead-lettered, intake
refuses nothing, and the services carry on without being restarted (the same processes, ready).

Three more JVMs take a good part of a minute to start on this 2-core machine: `DVC_FAULTS=full`
only. The line it prints (`-s`) names the leader killed, the partitions it led, the seconds until
the others took them over, and the usual figures.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaClient, TopicPartition

from devstack import services
from tests.faults.harness import (
    SERVICES,
    Load,
    Platform,
    environment_restored,
    settle,
)
from tests.faults.infrastructure import Infrastructure, cluster_config

pytestmark = [
    pytest.mark.infra,
    pytest.mark.timeout(600),
    pytest.mark.skipif(
        os.environ.get("DVC_FAULTS") != "full", reason="DVC_FAULTS=full: starts three brokers"
    ),
]

RATE = 4.0  # online dossiers per second, through the whole fault
BEFORE, DOWN, AFTER = 3.0, 15.0, 3.0  # seconds of load before, with the node down, after
BURST = 60


@pytest.fixture(scope="module")
async def stack(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[Platform, Infrastructure]]:
    infrastructure = Infrastructure(cluster_config(Path(tmp_path_factory.mktemp("cluster"))))
    began = time.monotonic()
    with environment_restored():
        try:
            await asyncio.to_thread(infrastructure.up)
            platform = Platform(infrastructure.config)
            await platform.start()
            print(f"\nthree brokers and the platform ready in {time.monotonic() - began:.1f}s")
            yield platform, infrastructure
        finally:
            await asyncio.to_thread(infrastructure.down)


async def leaders(bootstrap: str, topic: str) -> dict[int, int]:
    """Partition -> the node id of its leader, as the cluster's metadata says now."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await client.bootstrap()
    try:
        await client.force_metadata_update()
        partitions = client.cluster.partitions_for_topic(topic) or set()
        return {
            p: int(client.cluster.leader_for_partition(TopicPartition(topic, p)) or -1)
            for p in sorted(partitions)
        }
    finally:
        await client.close()


def service_pids(platform: Platform) -> dict[str, int | None]:
    return {s: services.process(platform.config, s).pid() for s in SERVICES}


async def test_killing_a_partition_leader_loses_nothing_and_the_services_carry_on(
    stack: tuple[Platform, Infrastructure],
) -> None:
    platform, infrastructure = stack
    topic = f"dvc.dossier.submitted.v1{platform.suffix}"
    bootstrap = platform.config.kafka_bootstrap_all  # any node that is up answers
    pids = service_pids(platform)
    async with httpx.AsyncClient(timeout=10) as client:
        load = Load(platform.url("intake"), RATE)
        load.start()
        await asyncio.sleep(BEFORE)
        before = await leaders(bootstrap, topic)
        victim, led = Counter(before.values()).most_common(1)[0]
        burst = asyncio.create_task(load.burst(BURST))
        await asyncio.sleep(0.5)  # part of the burst on its way through the consumers
        await asyncio.to_thread(infrastructure.kill_node, victim)
        killed = time.monotonic()
        accepted_at_kill = len(load.accepted)

        # The other two take over the partitions it led.
        moved = None
        while time.monotonic() - killed < DOWN:
            now = await leaders(bootstrap, topic)
            if moved is None and now and victim not in now.values() and -1 not in now.values():
                moved = time.monotonic() - killed
            await asyncio.sleep(0.5)
        await burst
        accepted_while_down = len(load.accepted) - accepted_at_kill
        ready_while_down = await platform.all_ready(client)

        restarting = time.monotonic()
        await asyncio.to_thread(infrastructure.start_node, victim)
        back = time.monotonic() - restarting
        await asyncio.sleep(AFTER)
        await load.stop()

        platform.accepted.extend(load.accepted)
        result, settled = await settle(platform, client, platform.accepted, 120)
        ready_at_end = await platform.all_ready(client)
    after = await leaders(bootstrap, topic)
    refused = sum(load.refused.values())
    print(
        f"\nkill -9 leader node {victim} (led {led} of {len(before)} partitions of {topic}): "
        f"submitted {len(load.accepted) + refused} (201: {len(load.accepted)}, refused {refused}, "
        f"{accepted_while_down} accepted while it was down)  lost {result.lost}  "
        f"duplicated {result.duplicated}  (same-id mail resends {result.mail_duplicates})  "
        f"dead letters {result.dead_letters}  leaders moved after "
        f"{'never' if moved is None else f'{moved:.1f}s'}  ready while down {ready_while_down}  "
        f"node back after {back:.1f}s, settled {settled:.1f}s later  leaders now {after}"
    )

    assert moved is not None, "the other brokers did not take over the partitions"
    assert not load.refused, load.refused
    assert accepted_while_down > 0
    assert result.lost == 0, result
    assert result.duplicated == 0, result
    assert result.dead_letters == 0, result
    assert service_pids(platform) == pids  # the same processes: none restarted
    assert ready_at_end
