"""Submissions per second and latency through intake's HTTP API, against the running stack,
with a bare FastAPI endpoint (one insert, one produce) measured in the same run as the baseline.

    DVC_INTAKE_SUBMISSIONS_PER_MINUTE=100000000 ./scripts/run   # the stack, submission limit lifted
    .venv/bin/python bench/bench_intake.py --clients 16 --seconds 20 [--alone]

With the whole stack running, each submission's events flow on through processing,
notification (and the simulators) and reporting on the same cores while intake is measured.
`--alone` stops those three services first (their pid files; `devstack run` starts them again),
so that intake and the bare endpoint are compared on the same servers with nothing else busy.
All the load comes from one address, which intake's per-client limit (30 submissions a minute
by default) would otherwise answer with 429: the errors are counted by status code.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import textwrap
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devstack.config import load_config
from devstack.processes import port_in_use
from devstack.services import process as service_process
from tests.intake_samples import dossier_json, trademark_files

BARE_APP = textwrap.dedent(
    """
    import uuid
    from fastapi import FastAPI
    from aiokafka import AIOKafkaProducer
    from pymongo import AsyncMongoClient
    import os

    app = FastAPI()
    mongo = AsyncMongoClient(os.environ["MONGO"])
    producer = None

    @app.on_event("startup")
    async def start():
        global producer
        producer = AIOKafkaProducer(bootstrap_servers=os.environ["KAFKA"], acks="all",
                                    enable_idempotence=True)
        await producer.start()

    @app.post("/bare")
    async def bare():
        code = uuid.uuid4().hex
        await mongo.bench_bare.dossiers.insert_one({"_id": code, "state": 1})
        topic = "dvc.dossier.submitted.v1.bench-bare"
        await producer.send_and_wait(topic, b"{}", key=code.encode())
        return {"code": code}
    """
)


async def load(
    url: str, make_request, clients: int, seconds: float
) -> tuple[list[float], Counter[int]]:
    """The latencies of the requests answered 2xx, and the others' count by status code."""
    latencies: list[float] = []
    errors: Counter[int] = Counter()
    deadline = time.perf_counter() + seconds
    async with httpx.AsyncClient(timeout=30) as client:

        async def worker() -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                response = await make_request(client, url)
                if response.status_code >= 300:
                    errors[response.status_code] += 1
                else:
                    latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(worker() for _ in range(clients)))
    return latencies, errors


async def submit(client: httpx.AsyncClient, url: str) -> httpx.Response:
    return await client.post(
        f"{url}/api/v1/dossiers",
        data={"dossier": dossier_json()},
        files=trademark_files(),
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )


async def bare(client: httpx.AsyncClient, url: str) -> httpx.Response:
    return await client.post(f"{url}/bare")


def report(name: str, latencies: list[float], errors: Counter[int], seconds: float) -> float:
    """Print and return the rate of requests answered 2xx (errors are not throughput)."""
    ordered = sorted(latencies) or [0.0]
    rate = len(latencies) / seconds
    p50 = ordered[len(ordered) // 2] * 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    print(
        f"{name:<8} {rate:8.1f} req/s   p50 {p50:7.1f} ms   p99 {p99:7.1f} ms   "
        f"mean {statistics.fmean(ordered) * 1000:7.1f} ms   "
        f"errors {sum(errors.values())} {dict(errors) if errors else ''}"
    )
    if errors[429]:
        print("  (429: intake's submission limit; lift it, see this script's docstring)")
    return rate


def rss_mb(pid: int | None) -> str:
    if not pid:
        return "?"
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return f"{int(line.split()[1]) / 1024:.0f} MB"
    return "?"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--intake-url", default="http://127.0.0.1:8001")
    parser.add_argument(
        "--alone", action="store_true", help="stop processing, notification and reporting first"
    )
    args = parser.parse_args()
    config = load_config("run")
    intake_pid = service_process(config, "intake").pid()
    if args.alone:
        for name in ("processing", "notification", "reporting"):
            service_process(config, name).stop()
        print("processing, notification and reporting stopped (`devstack run` restarts them)")

    from shared.contracts.topics import TopicSpec
    from shared.runtime.kafka import ensure_topics

    topic = TopicSpec("dvc.dossier.submitted.v1.bench-bare", 3, None)
    asyncio.run(ensure_topics(config.kafka_bootstrap, [topic]))
    bare_port = 8099
    Path("/tmp/dvc_bench_bare_app.py").write_text(BARE_APP)
    server = subprocess.Popen(
        # The services' server settings (`shared.runtime.service.server_config`): no access log.
        [
            *(sys.executable, "-m", "uvicorn", "dvc_bench_bare_app:app"),
            *("--port", str(bare_port), "--loop", "uvloop", "--http", "httptools"),
            "--no-access-log",
        ],
        cwd="/tmp",
        env={**os.environ, "MONGO": config.mongo_url, "KAFKA": config.kafka_bootstrap},
    )
    try:
        while not port_in_use(bare_port):
            time.sleep(0.1)
        print(f"{args.clients} concurrent clients, {args.seconds:.0f} s each, on the run stack")
        print(f"intake RSS before: {rss_mb(intake_pid)}")
        latencies, errors = asyncio.run(load(args.intake_url, submit, args.clients, args.seconds))
        intake_rate = report("intake", latencies, errors, args.seconds)
        print(f"intake RSS after: {rss_mb(intake_pid)}")
        latencies, errors = asyncio.run(
            load(f"http://127.0.0.1:{bare_port}", bare, args.clients, args.seconds)
        )
        bare_rate = report("bare", latencies, errors, args.seconds)
        print(f"ratio intake/bare: {intake_rate / bare_rate:.2f}")
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
