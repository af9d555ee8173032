"""FerretDB 1.24 (the MongoDB wire protocol over PostgreSQL, or SQLite), built from our small Go
program with its per-collection write serialisation (devstack/ferretdb/serialize.go)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from devstack import postgres_server
from devstack.config import DEVSTACK_SOURCES, StackConfig
from devstack.prerequisites import require_tool
from devstack.processes import DevstackError, ManagedProcess


def process(config: StackConfig) -> ManagedProcess:
    return ManagedProcess(
        "ferretdb",
        config.data_dir / "ferretdb" / "ferretdb.pid",
        config.data_dir / "ferretdb" / "ferretdb.log",
    )


def install(config: StackConfig) -> bool:
    """Build the binary into the per-user cache (once; a cold build takes a few minutes)."""
    binary = config.ferretdb_binary
    if binary.exists():
        return False
    go = require_tool("go", "Go 1.24 or newer")
    binary.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="build-", dir=binary.parent)) / binary.name
    print(f"  building FerretDB into {binary} (first time only; a few minutes) ...", flush=True)
    result = subprocess.run(
        [go, "build", "-trimpath", "-o", str(staging), "."],
        cwd=DEVSTACK_SOURCES / "ferretdb",
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        shutil.rmtree(staging.parent, ignore_errors=True)
        raise DevstackError("building FerretDB failed:\n" + (result.stdout + result.stderr)[-3000:])
    staging.rename(binary)
    shutil.rmtree(staging.parent, ignore_errors=True)
    return True


def start(config: StackConfig) -> bool:
    proc = process(config)
    if proc.pid() is not None:
        return False
    data = config.data_dir / "ferretdb" / "data"
    data.mkdir(parents=True, exist_ok=True)
    proc.start(
        [
            str(config.ferretdb_binary),
            "-listen",
            f"127.0.0.1:{config.mongo_port}",
            "-data",
            str(data),
            "-handler",
            config.mongo_backend,
            *(
                ["-postgresql-url", postgres_server.url(config)]
                if config.mongo_backend == "postgresql"
                else []
            ),
            "-log-level",
            "warn",
        ]
    )
    return True


def wait_ready(config: StackConfig, timeout: float = 60.0) -> None:
    """Wait until `ping` answers."""
    from pymongo import MongoClient  # imported late: the CLI's --help needs no venv

    proc = process(config)
    deadline = time.monotonic() + timeout
    client: MongoClient = MongoClient(config.mongo_url, serverSelectionTimeoutMS=1000)
    try:
        while time.monotonic() < deadline:
            if proc.pid() is None:
                raise DevstackError("FerretDB exited during start-up:\n" + proc.log_tail())
            try:
                client.admin.command("ping")
                return
            except Exception:
                time.sleep(0.2)
    finally:
        client.close()
    raise DevstackError(f"FerretDB did not answer ping on {config.mongo_url} within {timeout:.0f}s")
