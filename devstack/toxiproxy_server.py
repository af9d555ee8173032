"""Toxiproxy (Shopify, MIT), a TCP proxy whose faults ("toxics": latency, connection resets,
bandwidth limits, time-outs) are switched on and off over an HTTP API: the fault suite puts it
between the services and Kafka / the database (tests/faults/infrastructure.py).

`python -m devstack up --with-toxiproxy` (or `run --with-toxiproxy`) runs its server beside the
rest, with its API on 127.0.0.1:8474 (test profile 18474; `DEVSTACK_TOXIPROXY_PORT`). It starts
with no proxies: whoever uses it creates them (`POST /proxies`). The server is built once from the
Go module proxy (`go install github.com/Shopify/toxiproxy/v2/cmd/server@v2.5.0`, GOBIN in the
per-user cache: `~/.cache/dvc-platform/toxiproxy-2.5.0/toxiproxy-server`); `up` installs it
with Kafka and FerretDB, so that `./scripts/test` (and CI) has it for the fault suite.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devstack.config import TOXIPROXY_VERSION, StackConfig, cache_root
from devstack.prerequisites import require_tool
from devstack.processes import DevstackError, ManagedProcess, ensure_port_free

MODULE = "github.com/Shopify/toxiproxy/v2"


def folder(config: StackConfig) -> Path:
    return config.data_dir / "toxiproxy"


def process(config: StackConfig) -> ManagedProcess:
    return ManagedProcess(
        "toxiproxy", folder(config) / "toxiproxy.pid", folder(config) / "toxiproxy.log"
    )


def url(config: StackConfig) -> str:
    return f"http://127.0.0.1:{config.toxiproxy_port}"


@contextmanager
def _install_lock() -> Iterator[None]:
    cache_root().mkdir(parents=True, exist_ok=True)
    with open(cache_root() / f"toxiproxy-{TOXIPROXY_VERSION}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two checkouts installing at once: one waits
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def install(config: StackConfig) -> bool:
    """Build the server into the per-user cache (once; about 10 s with a warm module cache).
    True if it built it now."""
    binary = config.toxiproxy_binary
    if binary.exists():
        return False
    go = require_tool("go", "Go 1.24 or newer")
    with _install_lock():
        if binary.exists():
            return False  # another process built it while we waited
        binary.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="build-", dir=binary.parent))
        print(f"  building Toxiproxy v{TOXIPROXY_VERSION} into {binary} (once) ...", flush=True)
        try:
            result = subprocess.run(
                [go, "install", "-trimpath", f"{MODULE}/cmd/server@v{TOXIPROXY_VERSION}"],
                # Outside any module (ours has none; a go.work above must not interfere), with
                # the machine's Go: the module asks for Go 1.17, any newer one builds it.
                cwd=staging,
                env={
                    **os.environ,
                    "GOBIN": str(staging),
                    "GOTOOLCHAIN": "local",
                    "GOFLAGS": "-mod=mod",
                    "GOWORK": "off",
                },
                capture_output=True,
                text=True,
            )
            if result.returncode != 0:
                raise DevstackError(
                    "building Toxiproxy failed:\n" + (result.stdout + result.stderr)[-3000:]
                )
            (staging / "server").rename(binary)  # atomic: never a half-written binary
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return True


def start(config: StackConfig) -> bool:
    """Start the server unless it runs already. True if started now."""
    proc = process(config)
    if proc.pid() is not None:
        return False
    if not config.toxiproxy_binary.exists():
        install(config)
    ensure_port_free(config.toxiproxy_port, "Toxiproxy", config.env_name("TOXIPROXY_PORT"))
    folder(config).mkdir(parents=True, exist_ok=True)
    proc.start(
        [
            str(config.toxiproxy_binary),
            "-host",
            "127.0.0.1",
            "-port",
            str(config.toxiproxy_port),
        ],
        # Its logger (zerolog) is quiet from "warn" up: no line per connection.
        env={"LOG_LEVEL": "warn"},
        cwd=folder(config),
    )
    return True


def version(config: StackConfig) -> str | None:
    """What `GET /version` answers, or None while the API does not answer."""
    try:
        with urllib.request.urlopen(url(config) + "/version", timeout=2) as response:
            text: str = response.read().decode().strip()
    except (urllib.error.URLError, OSError):
        return None
    try:  # 2.5.0 answers a bare string; later versions a JSON object
        parsed = json.loads(text)
    except ValueError:
        return text
    return str(parsed.get("version", text)) if isinstance(parsed, dict) else str(parsed)


def wait_ready(config: StackConfig, timeout: float = 30.0) -> None:
    """Wait until the API answers `GET /version`."""
    proc = process(config)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.pid() is None:
            raise DevstackError("Toxiproxy exited during start-up:\n" + proc.log_tail())
        if version(config) is not None:
            return
        time.sleep(0.1)
    raise DevstackError(
        f"Toxiproxy did not answer at {url(config)} within {timeout:.0f}s:\n{proc.log_tail()}"
    )
