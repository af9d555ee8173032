"""The four platform services as local processes (`python -m services.<name>`), and local
stand-ins of outside systems they call (the national portal's simulator)."""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request

from devstack.config import PROJECT_ROOT, StackConfig
from devstack.processes import DevstackError, ManagedProcess, ensure_port_free

SERVICES = ("intake", "processing", "notification", "reporting")
PORTAL_SIMULATOR = "portal-simulator"
# Everything `run` starts, on consecutive ports from the profile's HTTP base port.
PROCESSES = (*SERVICES, PORTAL_SIMULATOR)


def port(config: StackConfig, service: str) -> int:
    return config.http_base_port + PROCESSES.index(service)


def command(config: StackConfig, name: str) -> list[str]:
    if name == PORTAL_SIMULATOR:
        module = "services.notification.portal.simulator"
        return [sys.executable, "-m", module, "--port", str(port(config, name))]
    return [sys.executable, "-m", f"services.{name}"]


def ready_path(name: str) -> str:
    return "/_admin/state" if name == PORTAL_SIMULATOR else "/health/ready"


def process(config: StackConfig, service: str) -> ManagedProcess:
    folder = config.data_dir / "services"
    return ManagedProcess(service, folder / f"{service}.pid", folder / f"{service}.log")


def environment(config: StackConfig, service: str) -> dict[str, str]:
    if service == PORTAL_SIMULATOR:
        return {}
    prefix = f"DVC_{service.upper()}_"
    env = {
        prefix + "ENVIRONMENT": "development",
        prefix + "HTTP_HOST": "127.0.0.1",
        prefix + "HTTP_PORT": str(port(config, service)),
        prefix + "KAFKA_BOOTSTRAP": config.kafka_bootstrap,
        prefix + "MONGO_URL": config.mongo_url,
    }
    if service == "notification":  # local agencies' endpoints, and the portal's simulator
        env[prefix + "WEBHOOK_ALLOW_PRIVATE_URLS"] = "true"
        env[prefix + "PORTAL_ENABLED"] = "true"
        env[prefix + "PORTAL_URL"] = f"http://127.0.0.1:{port(config, PORTAL_SIMULATOR)}"
    return env


def start(config: StackConfig, service: str) -> bool:
    proc = process(config, service)
    if proc.pid() is not None:
        return False
    ensure_port_free(
        port(config, service), f"the {service} service", config.env_name("HTTP_BASE_PORT")
    )
    proc.start(command(config, service), env=environment(config, service), cwd=PROJECT_ROOT)
    return True


def wait_ready(config: StackConfig, service: str, timeout: float = 60.0) -> None:
    url = f"http://127.0.0.1:{port(config, service)}{ready_path(service)}"
    proc = process(config, service)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.pid() is None:
            raise DevstackError(f"{service} exited during start-up:\n{proc.log_tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    raise DevstackError(
        f"{service} was not ready at {url} within {timeout:.0f}s:\n{proc.log_tail()}"
    )
