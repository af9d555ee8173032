"""Reporting's business metrics, computed from the read models (not from the events it consumes,
so that they survive restarts and equal what the reports say).

A scrape that finds the snapshot older than `metrics_refresh_seconds` has it recomputed first (see
`main.refresh_metrics`; it waits a few seconds at most, a slower recomputation serves the next
scrape); the collector only reads the latest snapshot. Nothing is recomputed while nobody scrapes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Gauge
from prometheus_client.core import REGISTRY, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from services.reporting.domain.indicators import CatalogueEntry, catalogue_rollup, total


@dataclass
class Snapshot:
    received: dict[tuple[str, str, str], int] = field(default_factory=dict)  # unit, level, channel
    open: dict[str, int] = field(default_factory=dict)
    overdue: dict[str, int] = field(default_factory=dict)
    on_time_ratio: dict[str, float] = field(default_factory=dict)
    notification_failures: dict[str, int] = field(default_factory=dict)
    level4_share: float | None = None


CHANNEL_NAMES = {1: "counter", 2: "online", 3: "post"}


def snapshot_of(
    rows: Iterable[Mapping[str, Any]], procedures: Iterable[Mapping[str, Any]]
) -> Snapshot:
    """All-time figures from every counter row and the catalogue copy (pure)."""
    snap = Snapshot()
    received: dict[tuple[str, str, str], int] = defaultdict(int)
    by_unit: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        channel = CHANNEL_NAMES.get(int(row["channel"]), str(row["channel"]))
        received[(row["unit"], str(row["level"]), channel)] += int(row.get("received", 0))
        by_unit[row["unit"]].append(row)
    snap.received = dict(received)
    for unit, unit_rows in by_unit.items():
        t = total(unit_rows)
        snap.open[unit] = t["in_progress"]
        snap.overdue[unit] = t["in_progress_overdue"]
        snap.notification_failures[unit] = t["notified_failed"]
        measured = t.scored + t["in_progress"]
        if measured:
            good = t["finished_early"] + t["finished_on_time"]
            good += t["in_progress"] - t.in_progress_late
            snap.on_time_ratio[unit] = good / measured
    snap.level4_share = catalogue_rollup(
        [CatalogueEntry(p["_id"], p["name"], p["unit_code"], p["level"]) for p in procedures], {}
    ).level4_share
    return snap


class BusinessCollector(Collector):
    def __init__(self) -> None:
        self.snapshot = Snapshot()

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot
        received = GaugeMetricFamily(
            "dvc_reporting_dossiers_received",
            "Dossiers received (all time), by lead unit, service level and channel.",
            labels=["unit", "level", "channel"],
        )
        for (unit, level, channel), n in sorted(snap.received.items()):
            received.add_metric([unit, level, channel], n)
        yield received
        yield _per_unit("dvc_reporting_open_dossiers", "Dossiers not finished, by unit.", snap.open)
        yield _per_unit(
            "dvc_reporting_overdue_dossiers",
            "Open dossiers flagged overdue by processing, by unit.",
            snap.overdue,
        )
        yield _per_unit(
            "dvc_reporting_on_time_ratio",
            "On-time rate (Decision 766, all time) as a ratio 0..1, by unit.",
            snap.on_time_ratio,
        )
        yield _per_unit(
            "dvc_reporting_notification_failures",
            "Notifications that failed for good (all time), by unit.",
            snap.notification_failures,
        )
        share = GaugeMetricFamily(
            "dvc_catalogue_level4_share",
            "Level-4 procedures over online procedures (levels 3 and 4); the target is 0.30.",
        )
        if snap.level4_share is not None:
            share.add_metric([], snap.level4_share)
        yield share


def _per_unit(name: str, documentation: str, values: Mapping[str, float]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=["unit"])
    for unit, value in sorted(values.items()):
        family.add_metric([unit], value)
    return family


BUSINESS = BusinessCollector()

CONSUMER_LAG = Gauge(
    "dvc_consumer_lag_messages",
    "Messages a platform consumer group has yet to read, by group and topic.",
    ["consumergroup", "topic"],
)
CONSUMER_COMMITTED = Gauge(
    "dvc_consumer_committed_offset",
    "A platform consumer group's committed offsets summed over the topic's partitions: it moves "
    "whenever the group makes progress.",
    ["consumergroup", "topic"],
)
REGISTRY.register(BUSINESS)
