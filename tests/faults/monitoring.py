"""Prometheus watching the fault suite's services (issue 17, item 4: monitoring sees the faults).

devstack's Prometheus (devstack/prometheus_server.py: Debian's server, the project's alert rules
from deploy/prometheus/rules/ read in place, one scrape job per service) is started for the
platform's own config, on a port and in a data folder of its own, scraping and evaluating every
second. The suite asks its HTTP API which alerts are pending or firing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from dataclasses import dataclass
from typing import Any

import httpx

from devstack import prometheus_server
from devstack.config import StackConfig
from tests.faults.infrastructure import free_ports

SCRAPE_INTERVAL = "1s"


@dataclass(frozen=True)
class Monitoring:
    config: StackConfig

    @classmethod
    def start(cls, platform_config: StackConfig) -> Monitoring:
        """Prometheus for the services of `platform_config` (blocking: call through a thread).
        Call inside `environment_restored()`: the scrape interval is set in `os.environ`."""
        [port] = free_ports(1)
        config = dataclasses.replace(platform_config, prometheus_port=port)
        os.environ[config.env_name("PROMETHEUS_SCRAPE_INTERVAL")] = SCRAPE_INTERVAL
        prometheus_server.start(config)
        prometheus_server.wait_ready(config)
        return cls(config)

    def stop(self) -> None:
        prometheus_server.process(self.config).stop()

    async def _api(self, path: str, **query: str) -> Any:
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.get(prometheus_server.url(self.config) + path, params=query)
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    async def alert_state(self, alert: str, job: str) -> str | None:
        """'pending' or 'firing' while `alert` is active for `job`; None when it is not."""
        for entry in (await self._api("/api/v1/alerts"))["alerts"]:
            labels = entry["labels"]
            if labels.get("alertname") == alert and labels.get("job") == job:
                return str(entry["state"])
        return None

    async def active(self, alert: str) -> dict[str, str]:
        """{'<consumergroup>/<topic>' (or the job): 'pending' or 'firing'} for every active
        `alert`, whatever its labels."""
        found = {}
        for entry in (await self._api("/api/v1/alerts"))["alerts"]:
            labels = entry["labels"]
            if labels.get("alertname") == alert:
                where = labels.get("job") or f"{labels.get('consumergroup')}/{labels.get('topic')}"
                found[where] = str(entry["state"])
        return found

    async def wait_for_any(
        self, alert: str, states: set[str], limit: float
    ) -> tuple[float, dict[str, str]]:
        """Seconds until some `alert` (any labels) is in one of `states`, and the active ones
        then; empty `states`: until none is active. At most `limit`, then AssertionError."""
        began = time.monotonic()
        while True:
            active = await self.active(alert)
            if (states & set(active.values())) if states else not active:
                return time.monotonic() - began, active
            assert time.monotonic() - began < limit, (
                f"{alert} after {limit:.0f}s: {active or 'none active'}, expected "
                + (f"one {' or '.join(sorted(states))}" if states else "none active")
            )
            await asyncio.sleep(0.5)

    async def query(self, expression: str) -> list[tuple[dict[str, str], str]]:
        """An instant query: (labels, value) per series."""
        result = (await self._api("/api/v1/query", query=expression))["result"]
        return [(row["metric"], str(row["value"][1])) for row in result]

    async def up(self, job: str) -> str | None:
        """The last value of `up` for `job` ('1' or '0'), None before its first scrape."""
        result = (await self._api("/api/v1/query", query=f'up{{job="{job}"}}'))["result"]
        return str(result[0]["value"][1]) if result else None

    async def wait_scraped(self, jobs: tuple[str, ...], limit: float) -> None:
        """Until `up` is 1 for every one of `jobs` (at most `limit` seconds)."""
        began = time.monotonic()
        while True:
            values = {job: await self.up(job) for job in jobs}
            if set(values.values()) == {"1"}:
                return
            assert time.monotonic() - began < limit, f"not all scraped: up = {values}"
            await asyncio.sleep(0.25)

    async def wait_for_alert(
        self, alert: str, job: str, states: set[str | None], limit: float
    ) -> float:
        """Seconds until `alert` for `job` is in one of `states` (None: inactive); at most
        `limit`, then AssertionError."""
        began = time.monotonic()
        while True:
            state = await self.alert_state(alert, job)
            if state in states:
                return time.monotonic() - began
            assert time.monotonic() - began < limit, (
                f"{alert} for {job} still {state!r} after {limit:.0f}s, expected one of {states}"
            )
            await asyncio.sleep(0.25)
