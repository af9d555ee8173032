"""Consumer lag per group and topic: what each service's group has yet to read.

Reporting exports it for every platform group (`dvc_consumer_lag_messages`), so that the backlog
alert needs no separate exporter: committed offsets come from the group coordinator, end offsets
from the partition leaders. It exports the committed offsets too (their sum over the topic's
partitions, `dvc_consumer_committed_offset`): a group with lag whose committed offsets stand still
is stalled (`ConsumerStalled`), however small its backlog. The exporter keeps its two clients
open between reads (`LagReader`): connecting afresh each time costs more than the reads themselves.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from shared.runtime.kafka import aiokafka_security_options
from shared.runtime.settings import ServiceSettings

Lag = dict[tuple[str, str], int]


class LagReader:
    """Reads consumer lag over an admin client and a group-less consumer, opened on first use and
    kept until `close` (or until a read fails: the next one reconnects)."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.options = {
            "bootstrap_servers": settings.kafka_bootstrap,
            **aiokafka_security_options(settings),
        }
        self._clients: tuple[AIOKafkaAdminClient, AIOKafkaConsumer] | None = None

    async def lag(self, groups: Sequence[str]) -> Lag:
        """{(group, topic): messages not yet consumed}, over the partitions the group committed."""
        lag, _ = await self.offsets(groups)
        return lag

    async def offsets(self, groups: Sequence[str]) -> tuple[Lag, Lag]:
        """The lag (as `lag`) and {(group, topic): sum of the committed offsets}, over the
        partitions the group committed."""
        admin, reader = await self._open()
        try:
            lag: Lag = {}
            committed_sum: Lag = {}
            for group in groups:
                committed = await admin.list_consumer_group_offsets(group)
                positions = {tp: meta.offset for tp, meta in committed.items() if meta.offset >= 0}
                if not positions:
                    continue
                ends = await reader.end_offsets(list(positions))
                for partition, offset in positions.items():
                    key = (group, partition.topic)
                    lag[key] = lag.get(key, 0) + max(ends[partition] - offset, 0)
                    committed_sum[key] = committed_sum.get(key, 0) + offset
            return lag, committed_sum
        except BaseException:
            await self.close()
            raise

    async def _open(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._clients is None:
            admin = AIOKafkaAdminClient(**self.options)
            reader = AIOKafkaConsumer(enable_auto_commit=False, **self.options)  # offsets only
            await admin.start()
            try:
                await reader.start()
            except BaseException:
                await admin.close()
                raise
            self._clients = (admin, reader)
        return self._clients

    async def close(self) -> None:
        if self._clients is not None:
            admin, reader = self._clients
            self._clients = None
            try:
                await reader.stop()
            finally:
                await admin.close()


async def consumer_lag(settings: ServiceSettings, groups: Sequence[str]) -> Lag:
    """One read of the lag, with clients of its own."""
    reader = LagReader(settings)
    try:
        return await reader.lag(groups)
    finally:
        await reader.close()
