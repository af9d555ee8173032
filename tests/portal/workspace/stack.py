"""The real stack for the workspace's browser tests: devstack's Keycloak (test profile, realm
devstack/keycloak/realm-dvc.json), and intake, processing, reporting and the portal as processes
on the test Kafka broker and FerretDB (their own topic suffix and databases). The services verify
staff tokens against the provider's keys (their `JWT_ISSUER` is the realm's URL); the portal
signs staff in at the provider and calls the services with their tokens.

The portal listens on a free port, which the realm's workspace client does not list: the stack
adds the port's redirect and post-logout URIs to the client through Keycloak's admin API for the
session, and removes them after (`registered_redirects`).
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from devstack import keycloak_server
from devstack.config import PROJECT_ROOT
from devstack.processes import ManagedProcess
from tests.portal.browser.stack import delete_topics, free_port, wait_ready
from tests.service_harness import QUICK_CONSUMERS, create_suffixed_topics

PASSWORD = "demo-dvc"  # every demo user's (development realm only)
WORKSPACE_CLIENT = "dvc-workspace"
CLI_CLIENT = "dvc-dev-cli"  # the realm's password-grant client for tests and scripts


@dataclass(frozen=True)
class WorkspaceStack:
    issuer: str
    intake_url: str
    processing_url: str
    reporting_url: str
    portal_url: str
    logs: tuple[ManagedProcess, ...]

    async def token(self, username: str) -> str:
        """An access token of a demo user (the realm's password grant: tests only)."""
        async with httpx.AsyncClient(timeout=30) as client:
            answer = await client.post(
                f"{self.issuer}/protocol/openid-connect/token",
                data={
                    "grant_type": "password",
                    "client_id": CLI_CLIENT,
                    "username": username,
                    "password": PASSWORD,
                    "scope": "openid",
                },
            )
        assert answer.status_code == 200, answer.text
        token: str = answer.json()["access_token"]
        return token

    def log_tails(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.log_tail()}" for p in self.logs)


def keycloak_issuer() -> str:
    """Keycloak of the test profile, started unless it runs (see tests/integration/
    test_keycloak.py for how long a first start takes)."""
    from devstack.config import load_config

    config = load_config("test")
    keycloak_server.install(config)
    keycloak_server.start(config)
    keycloak_server.wait_ready(config)
    return keycloak_server.issuer(config)


@asynccontextmanager
async def registered_redirects(issuer: str, portal_url: str) -> AsyncIterator[None]:
    """The portal's redirect and post-logout URIs added to the workspace client, for a while."""
    base, realm = issuer.split("/realms/")
    pattern = f"{portal_url}/*"
    async with httpx.AsyncClient(base_url=base, timeout=30) as admin:
        signed_in = await admin.post(
            "/realms/master/protocol/openid-connect/token",
            data={
                "grant_type": "password",
                "client_id": "admin-cli",
                "username": keycloak_server.BOOTSTRAP_ADMIN[0],
                "password": keycloak_server.BOOTSTRAP_ADMIN[1],
            },
        )
        assert signed_in.status_code == 200, signed_in.text
        admin.headers["Authorization"] = f"Bearer {signed_in.json()['access_token']}"
        found = await admin.get(
            f"/admin/realms/{realm}/clients", params={"clientId": WORKSPACE_CLIENT}
        )
        client_id = found.json()[0]["id"]
        path = f"/admin/realms/{realm}/clients/{client_id}"

        async def change(add: bool) -> None:
            client = (await admin.get(path)).json()
            uris = [uri for uri in client.get("redirectUris", []) if uri != pattern]
            attributes = client.setdefault("attributes", {})
            logout = attributes.get("post.logout.redirect.uris", "")
            logout_uris = [uri for uri in logout.split("##") if uri and uri != pattern]
            if add:
                uris.append(pattern)
                logout_uris.append(pattern)
            client["redirectUris"] = uris
            attributes["post.logout.redirect.uris"] = "##".join(logout_uris)
            updated = await admin.put(path, json=client)
            assert updated.status_code == 204, updated.text

        await change(add=True)
        try:
            yield
        finally:
            # The admin token may have expired during a long session: sign in again.
            renewed = await admin.post(
                "/realms/master/protocol/openid-connect/token",
                data={
                    "grant_type": "password",
                    "client_id": "admin-cli",
                    "username": keycloak_server.BOOTSTRAP_ADMIN[0],
                    "password": keycloak_server.BOOTSTRAP_ADMIN[1],
                },
            )
            admin.headers["Authorization"] = f"Bearer {renewed.json()['access_token']}"
            await change(add=False)


@asynccontextmanager
async def running_workspace(
    kafka_bootstrap: str,
    mongo_url: str,
    folder: Path,
    issuer: str,
    portal_env: dict[str, str] | None = None,
) -> AsyncIterator[WorkspaceStack]:
    """`portal_env`: more of the portal's settings (without the DVC_PORTAL_ prefix)."""
    token = uuid.uuid4().hex[:10]
    suffix = f".workspace{token}"
    await create_suffixed_topics(kafka_bootstrap, suffix)
    names = ("intake", "processing", "reporting", "portal")
    ports = {name: free_port() for name in names}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    databases = {
        name: f"workspace_{token}_{name}" for name in ("intake", "processing", "reporting")
    }
    common = {
        "ENVIRONMENT": "test",
        "HTTP_HOST": "127.0.0.1",
        "KAFKA_BOOTSTRAP": kafka_bootstrap,
        "MONGO_URL": mongo_url,
        "TOPIC_SUFFIX": suffix,
        "JWT_ISSUER": issuer,  # the provider's keys, by discovery
        **{key.upper(): str(value) for key, value in QUICK_CONSUMERS.items()},
    }
    environments = {
        "intake": {**common, "RELAY_POLL_SECONDS": "1"},
        # No scanner: a paper dossier stays received (2) until an officer starts processing.
        "processing": {**common, "SCANNER_ENABLED": "false"},
        "reporting": common,
        "portal": {
            "ENVIRONMENT": "test",
            "INTAKE_BASE_URL": urls["intake"],
            "PROCESSING_BASE_URL": urls["processing"],
            "REPORTING_BASE_URL": urls["reporting"],
            "PUBLIC_BASE_URL": urls["portal"],
            "SECRET_KEY": uuid.uuid4().hex * 2,
            "OIDC_ISSUER_URL": issuer,
            "OIDC_REDIRECT_BASE_URL": urls["portal"],
            **(portal_env or {}),
        },
    }
    processes: list[ManagedProcess] = []
    for name in names:
        env = {**environments[name], "HTTP_PORT": str(ports[name])}
        if name in databases:
            env["MONGO_DATABASE"] = databases[name]
        process = ManagedProcess(name, folder / f"{name}.pid", folder / f"{name}.log")
        process.start(
            [sys.executable, "-m", f"services.{name}"],
            env={f"DVC_{name.upper()}_{k}": v for k, v in env.items()},
            cwd=PROJECT_ROOT,
        )
        processes.append(process)
    try:
        for process in processes:
            await wait_ready(urls[process.name], process)
        yield WorkspaceStack(
            issuer=issuer,
            intake_url=urls["intake"],
            processing_url=urls["processing"],
            reporting_url=urls["reporting"],
            portal_url=urls["portal"],
            logs=tuple(processes),
        )
    finally:
        for process in reversed(processes):
            await asyncio.to_thread(process.stop, 30)
        from pymongo import AsyncMongoClient

        client: AsyncMongoClient = AsyncMongoClient(mongo_url)
        try:
            for database in databases.values():
                await client.drop_database(database)
        finally:
            await client.close()
        await delete_topics(kafka_bootstrap, suffix)
