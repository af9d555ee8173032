"""Pages per second and latency of the portal's catalogue, procedure and tracking pages, with the
same pages' intake API calls alone measured in the same run as the baseline.

It starts its own intake and portal as processes (own topic suffix and database, per-client
limits raised so that one load generator is not throttled) on the Kafka broker and FerretDB of a
devstack profile, which must be up:

    .venv/bin/python -m devstack --profile test up     # or ./scripts/run for the run profile
    .venv/bin/python bench/bench_portal.py --profile test --seconds 10 --clients 8 --rate 50

Two measures per page: throughput with `--clients` concurrent clients as fast as they go, and
latency at a fixed `--rate` (pages per second; the issue's target: p99 <= 150 ms at 50/s,
throughput >= 0.5x the API's, portal < 150 MB RSS). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devstack.config import load_config
from tests.intake_samples import dossier_json, multipart, trademark_files
from tests.portal.browser.stack import Stack, running_stack

Fetch = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]
QUERIES = ("nhan hieu", "chuyen giao cong nghe", "do luong", "an toan buc xa", "", "tieu chuan")
PROCEDURES = ("1.004940", "1.005802", "1.001453")
NO_LIMITS = {
    "SUBMISSIONS_PER_MINUTE": "1000000",
    "TRACKING_PER_MINUTE": "1000000",
}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


async def closed_loop(fetch: Fetch, client: httpx.AsyncClient, clients: int, seconds: float):
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(worker_id: int) -> None:
        nonlocal errors
        n = worker_id
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            response = await fetch(client, n)
            latencies.append(time.perf_counter() - started)
            errors += response.status_code >= 400
            n += clients

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(clients)))
    return len(latencies) / (time.perf_counter() - started), latencies, errors


async def fixed_rate(fetch: Fetch, client: httpx.AsyncClient, rate: float, seconds: float):
    latencies: list[float] = []
    errors = 0

    async def one(n: int) -> None:
        nonlocal errors
        started = time.perf_counter()
        response = await fetch(client, n)
        latencies.append(time.perf_counter() - started)
        errors += response.status_code >= 400

    tasks = []
    begin = time.perf_counter()
    for n in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, begin + n / rate - time.perf_counter()))
        tasks.append(asyncio.create_task(one(n)))
    await asyncio.gather(*tasks)
    return latencies, errors


def rss_mb(pid: int | None) -> float:
    if pid is None:
        return float("nan")
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def prepare(stack: Stack) -> tuple[str, str, httpx.AsyncClient]:
    """One dossier to track, and a portal client holding its tracking session."""
    async with httpx.AsyncClient(timeout=30) as client:
        submitted = await client.post(
            f"{stack.intake_url}/api/v1/dossiers", **multipart(dossier_json(), trademark_files())
        )
        submitted.raise_for_status()
    code, secret = submitted.json()["dossier_code"], submitted.json()["tracking_secret"]
    portal = httpx.AsyncClient(
        base_url=stack.portal_url, timeout=30, limits=httpx.Limits(max_connections=200)
    )
    form = await portal.get("/tra-cuu")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token, form.text
    opened = await portal.post(
        "/tra-cuu", data={"csrf_token": token.group(1), "code": code, "secret": secret}
    )
    assert opened.status_code == 303, opened.text
    return code, secret, portal


async def bench(args: argparse.Namespace) -> None:
    config = load_config(args.profile)
    with tempfile.TemporaryDirectory() as folder:
        async with running_stack(
            config.kafka_bootstrap, config.mongo_url, Path(folder), intake_env=NO_LIMITS
        ) as stack:
            code, secret, portal = await prepare(stack)
            api = httpx.AsyncClient(
                base_url=stack.intake_url, timeout=30, limits=httpx.Limits(max_connections=200)
            )
            pages: dict[str, tuple[Fetch, Fetch]] = {
                "catalogue": (
                    lambda c, n: c.get("/thu-tuc", params={"q": QUERIES[n % len(QUERIES)]}),
                    lambda c, n: c.get(
                        "/api/v1/procedures", params={"q": QUERIES[n % len(QUERIES)], "limit": 20}
                    ),
                ),
                "procedure": (
                    lambda c, n: c.get(f"/thu-tuc/{PROCEDURES[n % len(PROCEDURES)]}"),
                    lambda c, n: c.get(f"/api/v1/procedures/{PROCEDURES[n % len(PROCEDURES)]}"),
                ),
                "tracking": (
                    lambda c, n: c.get(f"/ho-so/{code}"),
                    lambda c, n: c.get(
                        f"/api/v1/dossiers/{code}", headers={"X-Tracking-Secret": secret}
                    ),
                ),
            }
            portal_pid = stack.logs[1].pid()
            print(
                f"{args.clients} clients for {args.seconds:g}s (throughput), "
                f"then {args.rate:g}/s for {args.seconds:g}s (latency)"
            )
            print(
                f"{'page':<10} {'':<7} {'pages/s':>8} {'p50 ms':>7} {'p99 ms':>7}   "
                f"{'@rate p50':>9} {'p99':>6} {'errors':>6}"
            )
            for name, (page_fetch, api_fetch) in pages.items():
                rows = {}
                for label, client, fetch in (
                    ("portal", portal, page_fetch),
                    ("api", api, api_fetch),
                ):
                    await fetch(client, 0)  # warm
                    throughput, latencies, errors = await closed_loop(
                        fetch, client, args.clients, args.seconds
                    )
                    at_rate, rate_errors = await fixed_rate(fetch, client, args.rate, args.seconds)
                    rows[label] = throughput
                    print(
                        f"{name:<10} {label:<7} {throughput:8.1f} "
                        f"{statistics.median(latencies) * 1000:7.1f} "
                        f"{percentile(latencies, 0.99) * 1000:7.1f}   "
                        f"{statistics.median(at_rate) * 1000:9.1f} "
                        f"{percentile(at_rate, 0.99) * 1000:6.1f} {errors + rate_errors:6d}"
                    )
                print(f"{'':<10} portal/api throughput: {rows['portal'] / rows['api']:.2f}x")
            print(f"portal RSS: {rss_mb(portal_pid):.0f} MB")
            await portal.aclose()
            await api.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=("run", "test"), default="test")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=50.0)
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
