"""MongoDB helpers for integration tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import REGISTRY
from pymongo import monitoring

# The field of a write command that holds its statements.
WRITE_STATEMENTS = ("updates", "documents", "deletes")


class Commands(monitoring.CommandListener):
    """Records every command a client sends, as (command name, collection), its filter (None
    for a command without one) at the same index of `filters`, and the statements of a write
    command (its updates, documents or deletes; None for other commands) at that of `statements`."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.filters: list[Any] = []
        self.statements: list[list[Any] | None] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.sent.append((event.command_name, str(event.command.get(event.command_name))))
        self.filters.append(event.command.get("filter"))
        self.statements.append(
            next((list(event.command[k]) for k in WRITE_STATEMENTS if k in event.command), None)
        )

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def counted_commands(service: str, collections: Callable[[str], bool]) -> dict[str, float]:
    """`dvc_mongo_commands_total` of one client (by its `appname`), as "command collection" ->
    count, for the collections `collections` accepts."""
    counts: dict[str, float] = {}
    for family in REGISTRY.collect():
        for sample in family.samples:
            labels = sample.labels
            if (
                sample.name == "dvc_mongo_commands_total"
                and labels.get("service") == service
                and collections(labels.get("collection", ""))
            ):
                key = f"{labels['command']} {labels['collection']}"
                counts[key] = counts.get(key, 0) + sample.value
    return counts
