"""FerretDB 1.24 (the MongoDB wire protocol over PostgreSQL, or SQLite), built from our small Go
program; devstack/ferretdb/patches/ serialise the writes to each collection (0004), among others."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path

from devstack import postgres_server
from devstack.config import DEVSTACK_SOURCES, FERRETDB_VERSION, StackConfig
from devstack.prerequisites import require_tool
from devstack.processes import DevstackError, ManagedProcess


def process(config: StackConfig) -> ManagedProcess:
    return ManagedProcess(
        "ferretdb",
        config.data_dir / "ferretdb" / "ferretdb.pid",
        config.data_dir / "ferretdb" / "ferretdb.log",
    )


PATCHES = DEVSTACK_SOURCES / "ferretdb" / "patches"
FERRETDB_MODULE = "github.com/FerretDB/FerretDB"


def _patches() -> list[Path]:
    return sorted(PATCHES.glob("*.patch"))


def binary_path(config: StackConfig) -> Path:
    """The cached binary: config.ferretdb_binary (keyed by our Go sources) with a digest of the
    FerretDB patches in its name, so that a changed patch rebuilds."""
    digest = hashlib.sha256()
    for patch in _patches():
        digest.update(patch.name.encode() + patch.read_bytes())
    binary = config.ferretdb_binary
    return binary.with_name(f"{binary.name}-p{digest.hexdigest()[:10]}")


def install(config: StackConfig) -> bool:
    """Build the binary into the per-user cache (once; a cold build takes a few minutes).

    FerretDB's module source is copied from the Go module cache into a build folder beside
    the binary, devstack/ferretdb/patches/*.patch are applied to the copy, and our program is
    built against it through a `replace` in a temporary copy of its go.mod (`-modfile`): the
    checkout keeps no copy of FerretDB."""
    binary = binary_path(config)
    if binary.exists():
        return False
    go = require_tool("go", "Go 1.24 or newer")
    binary.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix="build-", dir=binary.parent))
    print(f"  building FerretDB into {binary} (first time only; a few minutes) ...", flush=True)
    try:
        source = _patched_source(go, build)
        modfile = build / "go.build.mod"
        shutil.copyfile(DEVSTACK_SOURCES / "ferretdb" / "go.mod", modfile)
        shutil.copyfile(DEVSTACK_SOURCES / "ferretdb" / "go.sum", build / "go.build.sum")
        _run(
            [go, "mod", "edit", f"-modfile={modfile}", f"-replace={FERRETDB_MODULE}={source}"],
            "preparing the FerretDB build",
        )
        staging = build / binary.name
        _run(
            [go, "build", f"-modfile={modfile}", "-trimpath", "-o", str(staging), "."],
            "building FerretDB",
        )
        staging.rename(binary)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return True


def _run(command: list[str], what: str, cwd: Path | None = None) -> str:
    # GIT_CEILING_DIRECTORIES: `git apply` in the build folder must not find a repository above.
    env = {**os.environ, "GIT_CEILING_DIRECTORIES": str((cwd or Path.cwd()).parent)}
    result = subprocess.run(
        command,
        cwd=cwd or DEVSTACK_SOURCES / "ferretdb",
        capture_output=True,
        text=True,
        env=env,
    )
    if result.returncode != 0:
        raise DevstackError(f"{what} failed:\n" + (result.stdout + result.stderr)[-3000:])
    return result.stdout


def _patched_source(go: str, build: Path) -> Path:
    """A writable copy of FerretDB's module source in `build`, with our patches applied."""
    info = json.loads(
        _run(
            [go, "mod", "download", "-json", f"{FERRETDB_MODULE}@v{FERRETDB_VERSION}"],
            "downloading FerretDB",
        )
    )
    source = build / "ferretdb-src"
    shutil.copytree(info["Dir"], source, symlinks=True)
    for path in [source, *source.rglob("*")]:  # the module cache is read-only
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
    for patch in _patches():
        if tool := shutil.which("patch"):
            command = [tool, "-p1", "--batch", "--forward", "-i", str(patch)]
        elif tool := shutil.which("git"):
            command = [tool, "apply", "-p1", str(patch)]
        else:
            raise DevstackError(
                "applying FerretDB's patches needs 'patch' or 'git' on PATH "
                "(on Debian: apt-get install patch)"
            )
        _run(command, f"applying {patch.name}", cwd=source)
    return source


def start(config: StackConfig) -> bool:
    proc = process(config)
    if proc.pid() is not None:
        return False
    data = config.data_dir / "ferretdb" / "data"
    data.mkdir(parents=True, exist_ok=True)
    proc.start(
        [
            str(binary_path(config)),
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
        ],
        # Go's collector at its default (GOGC=100) ran after every few hundred commands and took
        # about a quarter of FerretDB's CPU under load (perf, during bench/bench_e2e.py); the
        # heap stays small (tens of MB), so letting it grow 4x between collections is cheap.
        env={"GOGC": os.environ.get("GOGC", "400")},
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
