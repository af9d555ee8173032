"""The real stack for the portal's browser tests and its benchmark: intake as a process (on the
test Kafka broker and FerretDB, with its own topic suffix and database) and the portal as a
process in front of it; with `officer_side`, also processing (the officers' API), reporting (the
public figures) and the payment simulator, each a process. One stack per test session."""

from __future__ import annotations

import asyncio
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from devstack.config import PROJECT_ROOT
from devstack.processes import ManagedProcess
from shared.runtime.auth import DevIssuer
from tests.service_harness import QUICK_CONSUMERS, create_suffixed_topics

# Small limits make the "file too large" journey quick; intake and portal share them.
MAX_FILE_BYTES = 200_000


@dataclass(frozen=True)
class Stack:
    intake_url: str
    portal_url: str
    mongo_url: str
    intake_database: str
    logs: tuple[ManagedProcess, ...]
    # With `officer_side`: processing's and reporting's URLs, and the issuer of officers' tokens.
    processing_url: str | None = None
    reporting_url: str | None = None
    issuer: DevIssuer | None = None

    def officer(self, role: str = "officer", unit: str | None = "SHTT") -> dict[str, str]:
        assert self.issuer is not None, "a stack with officer_side=True"
        return {"Authorization": f"Bearer {self.issuer.mint(f'{role}-1', [role], unit)}"}

    def log_tails(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.log_tail()}" for p in self.logs)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def wait_ready(url: str, process: ManagedProcess, within: float = 90) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            if process.pid() is None:
                raise RuntimeError(f"{process.name} exited:\n{process.log_tail()}")
            try:
                if (await client.get(f"{url}/health/ready")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{process.name} not ready at {url}:\n{process.log_tail()}")


@asynccontextmanager
async def running_stack(
    kafka_bootstrap: str,
    mongo_url: str,
    folder: Path,
    *,
    intake_env: dict[str, str] | None = None,
    portal_env: dict[str, str] | None = None,
    officer_side: bool = False,
) -> AsyncIterator[Stack]:
    token = uuid.uuid4().hex[:10]
    suffix = f".portal{token}"
    await create_suffixed_topics(kafka_bootstrap, suffix)
    intake_port, portal_port = free_port(), free_port()
    intake_url = f"http://127.0.0.1:{intake_port}"
    portal_url = f"http://127.0.0.1:{portal_port}"
    database = f"portal_{token}_intake"
    others: list[tuple[ManagedProcess, str]] = []  # (process, its URL): the officer side
    databases = [database]
    officer: dict[str, str] = {}
    issuer: DevIssuer | None = None
    urls: dict[str, str] = {}
    if officer_side:
        issuer = DevIssuer(folder / "issuer")
        ports = {name: free_port() for name in ("processing", "reporting", "payment")}
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        common = {
            "ENVIRONMENT": "test",
            "HTTP_HOST": "127.0.0.1",
            "KAFKA_BOOTSTRAP": kafka_bootstrap,
            "MONGO_URL": mongo_url,
            "TOPIC_SUFFIX": suffix,
            "JWT_PUBLIC_KEY_FILE": str(issuer.public_key_path),
            **{key.upper(): str(value) for key, value in QUICK_CONSUMERS.items()},
        }
        for name in ("processing", "reporting"):
            process = ManagedProcess(name, folder / f"{name}.pid", folder / f"{name}.log")
            env = {**common, "HTTP_PORT": str(ports[name])}
            env["MONGO_DATABASE"] = f"portal_{token}_{name}"
            databases.append(env["MONGO_DATABASE"])
            process.start(
                [sys.executable, "-m", f"services.{name}"],
                env={f"DVC_{name.upper()}_{k}": v for k, v in env.items()},
                cwd=PROJECT_ROOT,
            )
            others.append((process, urls[name]))
        payment = ManagedProcess("payment", folder / "payment.pid", folder / "payment.log")
        payment.start(
            [
                sys.executable,
                "-m",
                "devstack.simulators.payment",
                *("--port", str(ports["payment"])),
                *("--callback-url", f"{intake_url}/api/v1/payments/callback"),
            ],
            env={},
            cwd=PROJECT_ROOT,
        )
        others.append((payment, urls["payment"]))
        officer = {
            "PROCESSING_BASE_URL": urls["processing"],
            "PROCESSING_TOKEN": DevIssuer(folder / "issuer", audience="dvc-processing").mint(
                "svc-intake", ["result_reader"], None
            ),
            "PAYMENT_BASE_URL": urls["payment"],
            "PAYMENT_RETURN_URL": f"{portal_url}/ho-so/{{code}}/thanh-toan/ket-qua",
        }
    intake_settings = {
        "ENVIRONMENT": "test",
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": str(intake_port),
        "KAFKA_BOOTSTRAP": kafka_bootstrap,
        "MONGO_URL": mongo_url,
        "MONGO_DATABASE": database,
        "TOPIC_SUFFIX": suffix,
        "RELAY_POLL_SECONDS": "1",
        "MAX_FILE_BYTES": str(MAX_FILE_BYTES),
        **{key.upper(): str(value) for key, value in QUICK_CONSUMERS.items()},
        **officer,
        **(intake_env or {}),
    }
    portal_settings = {
        "ENVIRONMENT": "test",
        "HTTP_PORT": str(portal_port),
        "INTAKE_BASE_URL": intake_url,
        "PUBLIC_BASE_URL": portal_url,
        "SECRET_KEY": uuid.uuid4().hex * 2,
        "MAX_FILE_BYTES": str(MAX_FILE_BYTES),
        **(
            {"REPORTING_BASE_URL": urls["reporting"], "FIGURES_CACHE_SECONDS": "0"}
            if officer_side
            else {}
        ),
        **(portal_env or {}),
    }
    intake = ManagedProcess("intake", folder / "intake.pid", folder / "intake.log")
    portal = ManagedProcess("portal", folder / "portal.pid", folder / "portal.log")
    intake.start(
        [sys.executable, "-m", "services.intake"],
        env={f"DVC_INTAKE_{k}": v for k, v in intake_settings.items()},
        cwd=PROJECT_ROOT,
    )
    portal.start(
        [sys.executable, "-m", "services.portal"],
        env={f"DVC_PORTAL_{k}": v for k, v in portal_settings.items()},
        cwd=PROJECT_ROOT,
    )
    try:
        await wait_ready(intake_url, intake)
        await wait_ready(portal_url, portal)
        for process, url in others:
            await wait_ready(url, process)
        yield Stack(
            intake_url,
            portal_url,
            mongo_url,
            database,
            (intake, portal, *(process for process, _ in others)),
            processing_url=urls.get("processing"),
            reporting_url=urls.get("reporting"),
            issuer=issuer,
        )
    finally:
        for process in (portal, intake, *(process for process, _ in others)):
            await asyncio.to_thread(process.stop, 30)
        from pymongo import AsyncMongoClient

        client: AsyncMongoClient = AsyncMongoClient(mongo_url)
        try:
            for name in databases:
                await client.drop_database(name)
        finally:
            await client.close()
        await delete_topics(kafka_bootstrap, suffix)


async def delete_topics(bootstrap: str, suffix: str) -> None:
    """The run's topics go with it: a long-lived local broker must not pile up partitions."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    try:
        await admin.start()
        names = [name for name in await admin.list_topics() if suffix in name]
        if names:
            await admin.delete_topics(names)
    except Exception as error:  # best effort
        print(f"topics of {suffix} not deleted: {error!r}")
    finally:
        await admin.close()
