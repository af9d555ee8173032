"""Kill the Kafka broker (`kill -9`), stop the database (FerretDB and its PostgreSQL), or
make the network between the services and both of them bad through Toxiproxy (2 s of latency for
20 s; every connection reset, `reset_peer`, for 10 s), under a steady load of online dossiers, then
restart or heal it: every dossier answered 201 gets exactly one case, one receipt e-mail and is
counted once by reporting; nothing valid is dead-lettered; the services report ready again (issue
17, item 2: the infrastructure faults).

The servers are a private set (`tests.faults.infrastructure`): own ports, own data folder, never
the test profile's; the services reach Kafka and FerretDB through the set's own Toxiproxy.
Submissions refused while the database is away or unreachable are fine (intake needs it to
accept); what was answered 201 must go all the way, once.

Monitoring sees the database stop (issue 17, item 4): with `DVC_FAULTS=full` a private Prometheus
with the project's rules scrapes the services every second (tests/faults/monitoring.py), the
database stays stopped until `ConsumerStalled` fires (lag and no commit for two minutes: the
consumers hold the events they had in hand, and a few submitted events put back on their topic
once it is down, redeliveries they must recognise as duplicates; at most `ALERT_LIMIT`), and the
alert must be gone once the services are ready again.

Each fault prints a line (`-s` shows them): dossiers submitted, refused, lost, duplicated, and the
seconds from the server being back until every service was ready and until every dossier had gone
all the way.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from devstack import services
from shared.contracts.events import DossierSubmitted
from tests.faults.harness import (
    SERVICES,
    Load,
    Outcome,
    Platform,
    environment_restored,
    redeliver,
    settle,
)
from tests.faults.infrastructure import Infrastructure, private_config, remote_ports
from tests.faults.monitoring import Monitoring

# Setting up the private servers and the platform takes a good part of a minute on a busy machine.
pytestmark = [pytest.mark.infra, pytest.mark.timeout(420)]

RATE = 4.0  # online dossiers per second, through the whole fault
BEFORE, AFTER = 2.0, 3.0  # seconds of load before the fault, and after every service is ready
BURST_LEAD = 5.0  # at most, seconds between the start of a fault's burst and the fault


@dataclass(frozen=True)
class Fault:
    name: str
    inject: Callable[[Infrastructure], None]
    down: float  # seconds between the fault and the restart
    restore: Callable[[Infrastructure], None]
    # Whether intake may refuse submissions meanwhile (it needs the database to accept).
    refusals_allowed: bool
    # Submissions fired at once just before the fault, so that the consumers have work in hand
    # when it strikes (at 4 per second they are otherwise idle most of the time).
    burst: int = 0
    # Whether every service must report not-ready while it lasts (a slow database is still up).
    not_ready_during: bool = True
    # An alert of deploy/prometheus/rules/ that must fire while the fault lasts (the fault is
    # then kept past `down` until it fires, at most `ALERT_LIMIT`) and be gone once it is healed.
    alert: str | None = None
    # Submitted events put back on their topic once the fault is in: redeliveries that every
    # consumer must recognise as duplicates, so that all of them have work in hand while it lasts
    # whatever the timing (the burst's own events may all be through before it strikes).
    redelivered: int = 0


KAFKA = Fault(
    "kill -9 kafka",
    Infrastructure.kill_kafka,
    5.0,
    Infrastructure.start_kafka,
    refusals_allowed=False,  # intake's outbox keeps the events until the broker is back
    burst=60,
)
# Kept down until Prometheus fires ConsumerStalled (deploy/prometheus/rules/backlog.yml: lag and
# no commit for two minutes): the consumers hold the events they had in hand when it stopped, and
# the redelivered ones (intake stores nothing new meanwhile).
DATABASE = Fault(
    "stop database",
    Infrastructure.stop_database,
    30.0,
    Infrastructure.start_database,
    refusals_allowed=True,
    burst=60,
    alert="ConsumerStalled",
    redelivered=8,
)
# Through Toxiproxy, between the services and both Kafka and the database (the servers keep
# running): every answer 2 s late for 20 s, then every connection reset for 10 s.
LATENCY = Fault(
    "latency 2s for 20s",
    Infrastructure.slow,
    20.0,
    Infrastructure.heal,
    refusals_allowed=True,  # intake's own requests to the database may time out
    burst=60,
    not_ready_during=False,
)
RESETS = Fault(
    "reset_peer for 10s",
    Infrastructure.reset_connections,
    10.0,
    Infrastructure.heal,
    refusals_allowed=True,  # intake cannot store a submission meanwhile
    burst=60,
)
FULL = [KAFKA, DATABASE, LATENCY, RESETS]
# The README's test command runs the broker fault and the connection resets (about two minutes
# with the private servers' start); DVC_FAULTS=full adds the database's stop (until
# ConsumerStalled fires, about two and a half minutes) and the 20 s of latency.
SHORT = [KAFKA, RESETS]
FAULTS = FULL if os.environ.get("DVC_FAULTS") == "full" else SHORT
# Seconds from the fault until its alert fires (the rule needs two minutes; the lag is read at
# most every `LAG_REFRESH` seconds, Prometheus scrapes and evaluates every second), and from the
# services being ready again until it is gone.
ALERT_LIMIT, RESOLVE_LIMIT = 180.0, 60.0
LAG_REFRESH = "5"  # reporting's metrics_refresh_seconds (30 s in production)


@pytest.fixture(scope="module")
async def stack(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[Platform, Infrastructure]]:
    infrastructure = Infrastructure(private_config(Path(tmp_path_factory.mktemp("infra"))))
    began = time.monotonic()
    with environment_restored():
        try:
            await asyncio.to_thread(infrastructure.up)
            os.environ["DVC_REPORTING_METRICS_REFRESH_SECONDS"] = LAG_REFRESH
            # The services reach Kafka and the database through Toxiproxy's proxies.
            platform = Platform(infrastructure.services_config)
            await platform.start()
            print(f"\nprivate infrastructure and platform ready in {time.monotonic() - began:.1f}s")
            yield platform, infrastructure
        finally:
            await asyncio.to_thread(infrastructure.down)  # the services, then the servers


@pytest.fixture(scope="module")
async def monitoring(stack: tuple[Platform, Infrastructure]) -> AsyncIterator[Monitoring | None]:
    """Prometheus with the project's rules, scraping the services every second; None when no
    fault of this run checks an alert."""
    if not any(fault.alert for fault in FAULTS):
        yield None
        return
    platform, _ = stack
    prometheus = await asyncio.to_thread(Monitoring.start, platform.config)
    try:
        await prometheus.wait_scraped(SERVICES, limit=60)
        yield prometheus
    finally:
        await asyncio.to_thread(prometheus.stop)


async def test_the_services_reach_kafka_and_the_database_only_through_the_proxies(
    stack: tuple[Platform, Infrastructure],
) -> None:
    platform, infrastructure = stack
    config = infrastructure.config
    direct = {config.kafka_port, config.kafka_proxied_port, config.mongo_port}
    for service in SERVICES:
        pid = services.process(platform.config, service).pid()
        assert pid is not None, service
        ports = remote_ports(pid)
        assert infrastructure.kafka_proxy_port in ports, (service, ports)
        assert infrastructure.mongo_proxy_port in ports, (service, ports)
        assert not ports & direct, (service, ports)


async def half_answered(load: Load, burst: int) -> None:
    """Until half the burst was accepted (at most `BURST_LEAD` seconds): their events are on
    their way through the consumers, the other half is still at intake."""
    target = len(load.accepted) + burst // 2
    began = time.monotonic()
    while time.monotonic() - began < BURST_LEAD:
        if len(load.accepted) >= target:
            return
        await asyncio.sleep(0.05)


async def wait_all_ready(platform: Platform, client: httpx.AsyncClient, limit: float) -> float:
    """Seconds until the four services report ready (at most `limit`)."""
    began = time.monotonic()
    while True:
        if await platform.all_ready(client) or time.monotonic() - began > limit:
            return time.monotonic() - began
        await asyncio.sleep(0.25)


def held_events(platform: Platform) -> dict[str, int]:
    """Per service, how many times so far a consumer held an event because the infrastructure
    was away (`shared.runtime.consumer.wait_out` logs each wait)."""
    counts: dict[str, int] = {}
    for service in SERVICES:
        log = services.process(platform.config, service).log_file
        text = log.read_text(errors="replace") if log.exists() else ""
        counts[service] = sum(
            1
            for line in text.splitlines()
            if '"shared.runtime.consumer"' in line and "infrastructure unavailable" in line
        )
    return counts


async def backlog(monitoring: Monitoring) -> str:
    """What Prometheus sees of the consumers (for a failure message)."""
    lag = await monitoring.query("dvc_consumer_lag_messages > 0")
    moved = await monitoring.query("changes(dvc_consumer_committed_offset[1m]) > 0")
    scraped = await monitoring.query("min_over_time(up[3m])")
    return (
        "lag: "
        + str({f"{m['consumergroup']}/{m['topic']}": v for m, v in lag})
        + "; committed offsets that moved in the last minute: "
        + str({f"{m['consumergroup']}/{m['topic']}": v for m, v in moved})
        + "; lowest `up` in 3 minutes: "
        + str({m["job"]: v for m, v in scraped})
    )


def describe(
    fault: Fault,
    load: Load,
    result: Outcome,
    back: float,
    ready: float,
    settled: float,
    held: dict[str, int],
    stages: dict[str, float],
) -> str:
    refused = sum(load.refused.values())
    return (
        f"{fault.name:<18} submitted {len(load.accepted) + refused:>3} "
        f"(201: {len(load.accepted)}, refused {refused} {dict(load.refused)}, "
        f"stored without a 201 {result.unanswered_but_stored})  "
        f"lost {result.lost}  duplicated {result.duplicated}  "
        f"(same-id mail resends {result.mail_duplicates})  dead letters {result.dead_letters}  "
        f"consumer waits {held or 0}  restart took {back:.1f}s, then ready after {ready:.1f}s, "
        f"settled after {settled:.1f}s ("
        + ", ".join(f"{stage} {seconds:.1f}s" for stage, seconds in stages.items())
        + ")"
    )


@pytest.mark.parametrize("fault", FAULTS, ids=lambda fault: fault.name.replace(" ", "-"))
@pytest.mark.timeout(600)  # the database fault waits up to `ALERT_LIMIT` for its alert
async def test_an_infrastructure_fault_under_load_loses_and_duplicates_nothing(
    stack: tuple[Platform, Infrastructure], monitoring: Monitoring | None, fault: Fault
) -> None:
    platform, infrastructure = stack
    alerted = ""
    if monitoring is not None and fault.alert is not None:
        # An earlier fault's alert must have cleared first. Right after a Kafka restart the lag
        # gauges still hold the last reading from before it (reads fail while the broker is
        # away) until the next read and scrape, so the rule can be pending for a few seconds.
        try:
            await monitoring.wait_for_any(fault.alert, set(), RESOLVE_LIMIT)
        except AssertionError as failure:
            raise AssertionError(
                f"before the fault: {failure}; {await backlog(monitoring)}"
            ) from None
    async with httpx.AsyncClient(timeout=10) as client:
        load = Load(platform.url("intake"), RATE)
        load.start()
        await asyncio.sleep(BEFORE)
        held_before = held_events(platform)
        burst = asyncio.create_task(load.burst(fault.burst))
        await half_answered(load, fault.burst)
        await asyncio.to_thread(fault.inject, infrastructure)
        injected = time.monotonic()
        if fault.redelivered:
            assert await redeliver(platform, DossierSubmitted.topic, fault.redelivered)
        await asyncio.sleep(fault.down)
        await burst
        if monitoring is not None and fault.alert is not None:
            left = ALERT_LIMIT - (time.monotonic() - injected)
            try:
                _, firing = await monitoring.wait_for_any(fault.alert, {"firing"}, left)
            except AssertionError as failure:
                raise AssertionError(f"{failure}; {await backlog(monitoring)}") from None
            alerted = (
                f"  {fault.alert} firing {time.monotonic() - injected:.1f}s after the fault "
                f"({', '.join(sorted(where for where, s in firing.items() if s == 'firing'))})"
            )
        ready_during_fault = await platform.all_ready(client)
        restarting = time.monotonic()
        await asyncio.to_thread(fault.restore, infrastructure)
        back = time.monotonic()
        ready = await wait_all_ready(platform, client, limit=120)
        since_ready = len(load.accepted)
        await asyncio.sleep(AFTER)
        await load.stop()
        if monitoring is not None and fault.alert is not None:
            await monitoring.wait_for_any(fault.alert, set(), RESOLVE_LIMIT)
            alerted += f", gone {time.monotonic() - back:.1f}s after the restart"
        accepted_after = len(load.accepted) - since_ready

        platform.accepted.extend(load.accepted)
        settling = time.monotonic()
        stages: dict[str, float] = {}
        result, _ = await settle(platform, client, platform.accepted, 120, stages)
        settled = time.monotonic() - back
        # Seconds after the server was back until every dossier had its case, mail and count.
        stages = {k: v + settling - back for k, v in stages.items()}
        ready_at_end = await platform.all_ready(client)
    held = {s: n - held_before[s] for s, n in held_events(platform).items() if n > held_before[s]}
    print(
        "\n"
        + describe(fault, load, result, back - restarting, ready, settled, held, stages)
        + f"  ready during the fault: {ready_during_fault}"
        + alerted
    )

    if fault.not_ready_during:
        assert not ready_during_fault  # the services said they were not ready while it was away
    assert accepted_after >= RATE * AFTER - 2  # submissions are accepted again
    if not fault.refusals_allowed:
        assert not load.refused, load.refused
    assert result.lost == 0, result
    assert result.duplicated == 0, result
    assert result.dead_letters == 0, result
    assert ready_at_end
