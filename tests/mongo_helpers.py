"""MongoDB helpers for integration tests."""

from __future__ import annotations

from typing import Any

from pymongo import monitoring


class Commands(monitoring.CommandListener):
    """Records every command a client sends, as (command name, collection), and its filter
    (None for a command without one) at the same index of `filters`."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.filters: list[Any] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.sent.append((event.command_name, str(event.command.get(event.command_name))))
        self.filters.append(event.command.get("filter"))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass
