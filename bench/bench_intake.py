"""Submissions per second and latency through intake's HTTP API, against the running stack,
with a bare FastAPI endpoint (one insert, one produce) measured in the same run as the baseline.

    ./scripts/run                       # the stack: Kafka, FerretDB, the four services
    .venv/bin/python bench/bench_intake.py --clients 16 --seconds 20

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
) -> tuple[int, list[float], int]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    async with httpx.AsyncClient(timeout=30) as client:

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                response = await make_request(client, url)
                latencies.append(time.perf_counter() - started)
                if response.status_code >= 300:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(clients)))
    return len(latencies), latencies, errors


async def submit(client: httpx.AsyncClient, url: str) -> httpx.Response:
    return await client.post(
        f"{url}/api/v1/dossiers",
        data={"dossier": dossier_json()},
        files=trademark_files(),
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )


async def bare(client: httpx.AsyncClient, url: str) -> httpx.Response:
    return await client.post(f"{url}/bare")


def report(name: str, count: int, latencies: list[float], errors: int, seconds: float) -> float:
    ordered = sorted(latencies) or [0.0]
    rate = count / seconds
    p50 = ordered[len(ordered) // 2] * 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    print(
        f"{name:<8} {rate:8.1f} req/s   p50 {p50:7.1f} ms   p99 {p99:7.1f} ms   "
        f"mean {statistics.fmean(ordered) * 1000:7.1f} ms   errors {errors}"
    )
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
    args = parser.parse_args()
    config = load_config("run")
    intake_pid = service_process(config, "intake").pid()

    from shared.contracts.topics import TopicSpec
    from shared.runtime.kafka import ensure_topics

    topic = TopicSpec("dvc.dossier.submitted.v1.bench-bare", 3, None)
    asyncio.run(ensure_topics(config.kafka_bootstrap, [topic]))
    bare_port = 8099
    Path("/tmp/dvc_bench_bare_app.py").write_text(BARE_APP)
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "dvc_bench_bare_app:app", "--port", str(bare_port)],
        cwd="/tmp",
        env={**os.environ, "MONGO": config.mongo_url, "KAFKA": config.kafka_bootstrap},
    )
    try:
        while not port_in_use(bare_port):
            time.sleep(0.1)
        print(f"{args.clients} concurrent clients, {args.seconds:.0f} s each, on the run stack")
        print(f"intake RSS before: {rss_mb(intake_pid)}")
        count, latencies, errors = asyncio.run(
            load(args.intake_url, submit, args.clients, args.seconds)
        )
        intake_rate = report("intake", count, latencies, errors, args.seconds)
        print(f"intake RSS after: {rss_mb(intake_pid)}")
        count, latencies, errors = asyncio.run(
            load(f"http://127.0.0.1:{bare_port}", bare, args.clients, args.seconds)
        )
        bare_rate = report("bare", count, latencies, errors, args.seconds)
        print(f"ratio intake/bare: {intake_rate / bare_rate:.2f}")
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
