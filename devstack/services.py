"""The four platform services as local processes (`python -m services.<name>`)."""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request

from devstack.config import PROJECT_ROOT, StackConfig
from devstack.processes import DevstackError, ManagedProcess, ensure_port_free

SERVICES = ("intake", "processing", "notification", "reporting")


def port(config: StackConfig, service: str) -> int:
    return config.http_base_port + SERVICES.index(service)


def process(config: StackConfig, service: str) -> ManagedProcess:
    folder = config.data_dir / "services"
    return ManagedProcess(service, folder / f"{service}.pid", folder / f"{service}.log")


def environment(config: StackConfig, service: str) -> dict[str, str]:
    prefix = f"DVC_{service.upper()}_"
    return {
        prefix + "ENVIRONMENT": "development",
        prefix + "HTTP_HOST": "127.0.0.1",
        prefix + "HTTP_PORT": str(port(config, service)),
        prefix + "KAFKA_BOOTSTRAP": config.kafka_bootstrap,
        prefix + "MONGO_URL": config.mongo_url,
    }


def start(config: StackConfig, service: str) -> bool:
    proc = process(config, service)
    if proc.pid() is not None:
        return False
    ensure_port_free(
        port(config, service), f"the {service} service", config.env_name("HTTP_BASE_PORT")
    )
    proc.start(
        [sys.executable, "-m", f"services.{service}"],
        env=environment(config, service),
        cwd=PROJECT_ROOT,
    )
    return True


def wait_ready(config: StackConfig, service: str, timeout: float = 60.0) -> None:
    url = f"http://127.0.0.1:{port(config, service)}/health/ready"
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
