"""The four platform services as local processes (`python -m services.<name>`), and local
stand-ins of outside systems they call: the national portal's simulator, the mail (SMTP) and SMS
gateway simulators that notification sends through, and the payment platform's simulator intake
sends citizens to (`devstack/simulators/`); then the citizens' portal in front of intake."""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from devstack.config import PROJECT_ROOT, StackConfig
from devstack.processes import DevstackError, ManagedProcess, ensure_port_free

SERVICES = ("intake", "processing", "notification", "reporting")
PORTAL_SIMULATOR = "portal-simulator"
MAIL_SIMULATOR = "mail-simulator"
SMS_SIMULATOR = "sms-simulator"
PAYMENT_SIMULATOR = "payment-simulator"
SIMULATORS = (PORTAL_SIMULATOR, MAIL_SIMULATOR, SMS_SIMULATOR, PAYMENT_SIMULATOR)
# Everything `run` starts, on consecutive HTTP ports from the profile's HTTP base port; the mail
# simulator's SMTP server takes the port after them (see `smtp_port`).
NUMBERED = (*SERVICES, *SIMULATORS)
# The citizens' portal, in front of intake: on the port just below the others (8000 in the run
# profile, 18000 in the test profile), started last.
PORTAL = "portal"
PROCESSES = (*NUMBERED, PORTAL)
PORT_COUNT = len(NUMBERED) + 1
# What must be running and ready before a process starts (`start` starts it first if need be).
DEPENDENCIES = {
    "intake": (PAYMENT_SIMULATOR,),
    "notification": (PORTAL_SIMULATOR, MAIL_SIMULATOR, SMS_SIMULATOR),
    PORTAL: ("intake", "reporting"),
}
# Development secrets notification and the SMS simulator share (notification's own defaults).
SMS_GATEWAY_TOKEN = "dev-sms-token"
SMS_RECEIPT_SECRET = "dev-sms-receipt-secret"


def port(config: StackConfig, service: str) -> int:
    if service == PORTAL:
        return config.http_base_port - 1
    return config.http_base_port + NUMBERED.index(service)


def smtp_port(config: StackConfig) -> int:
    return config.http_base_port + len(NUMBERED)


def data_folder(config: StackConfig, simulator: str) -> Path:
    """Where a simulator keeps what it received: `<data dir>/mail`, `<data dir>/sms`."""
    return config.data_dir / simulator.removesuffix("-simulator")


def command(config: StackConfig, name: str) -> list[str]:
    http = ["--port", str(port(config, name))]
    if name == PORTAL_SIMULATOR:
        return [sys.executable, "-m", "devstack.simulators.portal", *http]
    if name in (MAIL_SIMULATOR, SMS_SIMULATOR):
        module = "devstack.simulators." + name.removesuffix("-simulator")
        argv = [sys.executable, "-m", module, *http, "--data", str(data_folder(config, name))]
        if name == MAIL_SIMULATOR:
            return [*argv, "--smtp-port", str(smtp_port(config))]
        receipts = f"http://127.0.0.1:{port(config, 'notification')}/notifications/sms/receipts"
        return [*argv, "--receipt-url", receipts]
    if name == PAYMENT_SIMULATOR:
        callback = f"http://127.0.0.1:{port(config, 'intake')}/api/v1/payments/callback"
        return [
            sys.executable,
            "-m",
            "devstack.simulators.payment",
            *http,
            "--callback-url",
            callback,
        ]
    return [sys.executable, "-m", f"services.{name}"]


def ready_path(name: str) -> str:
    return "/_admin/state" if name == PORTAL_SIMULATOR else "/health/ready"


def process(config: StackConfig, service: str) -> ManagedProcess:
    folder = config.data_dir / "services"
    return ManagedProcess(service, folder / f"{service}.pid", folder / f"{service}.log")


def environment(config: StackConfig, service: str) -> dict[str, str]:
    if service == SMS_SIMULATOR:
        return {
            "DVC_SMSSIM_TOKEN": SMS_GATEWAY_TOKEN,
            "DVC_SMSSIM_RECEIPT_SECRET": SMS_RECEIPT_SECRET,
        }
    if service in SIMULATORS:
        return {}
    prefix = f"DVC_{service.upper()}_"
    env = {
        prefix + "ENVIRONMENT": "development",
        prefix + "HTTP_HOST": "127.0.0.1",
        prefix + "HTTP_PORT": str(port(config, service)),
        prefix + "KAFKA_BOOTSTRAP": config.kafka_bootstrap,
        prefix + "MONGO_URL": config.mongo_url,
    }
    if service == "intake":
        env[prefix + "TRUSTED_PROXIES"] = "127.0.0.1"  # the local portal's X-Forwarded-For
        env[prefix + "PAYMENT_BASE_URL"] = f"http://127.0.0.1:{port(config, PAYMENT_SIMULATOR)}"
        portal = f"http://127.0.0.1:{port(config, PORTAL)}"
        env[prefix + "PAYMENT_RETURN_URL"] = portal + "/ho-so/{code}/thanh-toan/ket-qua"
    if service == "notification":  # local agencies' endpoints, and the simulators
        env[prefix + "WEBHOOK_ALLOW_PRIVATE_URLS"] = "true"
        env[prefix + "PORTAL_ENABLED"] = "true"
        env[prefix + "PORTAL_URL"] = f"http://127.0.0.1:{port(config, PORTAL_SIMULATOR)}"
        env[prefix + "SMTP_HOST"] = "127.0.0.1"
        env[prefix + "SMTP_PORT"] = str(smtp_port(config))
        env[prefix + "SMTP_TLS"] = "none"
        env[prefix + "SMS_GATEWAY_URL"] = f"http://127.0.0.1:{port(config, SMS_SIMULATOR)}/sms"
        env[prefix + "SMS_GATEWAY_TOKEN"] = SMS_GATEWAY_TOKEN
        env[prefix + "SMS_RECEIPT_SECRET"] = SMS_RECEIPT_SECRET
    if service == PORTAL:
        env[prefix + "INTAKE_BASE_URL"] = f"http://127.0.0.1:{port(config, 'intake')}"
        env[prefix + "PUBLIC_BASE_URL"] = f"http://127.0.0.1:{port(config, PORTAL)}"
        env[prefix + "REPORTING_BASE_URL"] = f"http://127.0.0.1:{port(config, 'reporting')}"
    return env


def start(config: StackConfig, service: str) -> bool:
    proc = process(config, service)
    if proc.pid() is not None:
        return False
    for dependency in DEPENDENCIES.get(service, ()):
        start(config, dependency)
        wait_ready(config, dependency)
    base_port = config.env_name("HTTP_BASE_PORT")
    ensure_port_free(port(config, service), f"the {service} service", base_port)
    if service == MAIL_SIMULATOR:
        ensure_port_free(smtp_port(config), "the mail simulator's SMTP server", base_port)
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
