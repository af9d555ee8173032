"""PostgreSQL, the store behind FerretDB: a private cluster of Debian's binaries as a plain process.

FerretDB's PostgreSQL backend pushes filters down to SQL and uses the indexes `create_index`
makes; its SQLite backend scans every collection (see docs/devstack.md).
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import signal
import subprocess
import time
from functools import cache
from pathlib import Path

from devstack.config import DEVSTACK_SOURCES, StackConfig
from devstack.processes import DevstackError, ManagedProcess

DATABASE = "ferretdb"
GIN_MIRROR_SQL = "postgres/gin_mirror.sql"
SUPERUSER = "postgres"
# PostgreSQL refuses to run as root; a root developer (or CI) runs it as Debian's `postgres` user.
SYSTEM_USER = "postgres"


def process(config: StackConfig) -> ManagedProcess:
    folder = config.data_dir / "postgres"
    return ManagedProcess(
        "postgres", folder / "postgres.pid", folder / "postgres.log", stop_signal=signal.SIGINT
    )


@cache
def binaries() -> Path:
    """The folder of `postgres`, `initdb` and `pg_isready`: DEVSTACK_POSTGRES_BIN, else the newest
    of Debian's /usr/lib/postgresql/<major>/bin."""
    if explicit := os.environ.get("DEVSTACK_POSTGRES_BIN"):
        return Path(explicit)
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if not found:
        raise DevstackError(
            "PostgreSQL's server binaries were not found in /usr/lib/postgresql/<version>/bin: "
            "apt-get install postgresql (or set DEVSTACK_POSTGRES_BIN to their folder)"
        )
    return found[-1].parent


def install(config: StackConfig) -> bool:
    """Install Debian's server package when it is missing and we may (root with apt-get)."""
    try:
        binaries()
        return False
    except DevstackError:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            raise
    print("  installing PostgreSQL (Debian package 'postgresql') ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "postgresql"],
    ):
        result = subprocess.run(command, capture_output=True, text=True, env=env)
        if result.returncode != 0:
            raise DevstackError("installing PostgreSQL failed:\n" + result.stderr[-2000:])
    binaries.cache_clear()
    binaries()
    return True


def run_as() -> str | None:
    """The system user the server runs as: ourselves, or `postgres` when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        raise DevstackError(
            f"PostgreSQL cannot run as root and there is no '{SYSTEM_USER}' user: "
            "apt-get install postgresql creates it"
        ) from None
    return SYSTEM_USER


def cluster_dir(config: StackConfig) -> Path:
    """The cluster's data folder: in the profile's data folder, unless the server's user cannot
    reach it (a root-only parent such as pytest's temporary folders), then in /var/tmp under a
    name derived from the profile's data folder."""
    inside = config.data_dir / "postgres" / "cluster"
    user = run_as()
    if user is None or _reachable_by(user, inside.parent):
        return inside
    digest = hashlib.sha256(str(config.data_dir).encode()).hexdigest()[:16]
    return Path("/var/tmp/dvc-platform-postgres") / digest


def _reachable_by(user: str, folder: Path) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.chown(folder, user)
    return subprocess.run(["runuser", "-u", user, "--", "test", "-w", str(folder)]).returncode == 0


def start(config: StackConfig) -> bool:
    proc = process(config)
    if proc.pid() is not None:
        return False
    cluster = cluster_dir(config)
    user = run_as()
    if not (cluster / "PG_VERSION").exists():
        _init_cluster(cluster, user)
    settings = {
        "port": str(config.postgres_port),
        "listen_addresses": "127.0.0.1",
        "unix_socket_directories": "",  # TCP on 127.0.0.1 only: no socket path-length limits
        "max_connections": str(2 * FERRETDB_POOL + 50),
        "shared_buffers": "128MB",
        # Commits return before the WAL reaches the disk: a machine crash may lose the last
        # fraction of a second, a process crash loses nothing. Fine for a developer's box.
        "synchronous_commit": "off",
        # Idle cost (bench/bench_idle.py): the WAL writer and autovacuum wake less often.
        "wal_writer_delay": "1s",
        "autovacuum_naptime": "5min",
        "checkpoint_timeout": "30min",
        # FerretDB sends each field name as a statement parameter (`_jsonb->$1 @> $2`). A generic
        # plan, which PostgreSQL adopts for a prepared statement after five runs if it looked no
        # dearer (as on a table still small), cannot match the expression indexes
        # (`_jsonb->'field'`) and scans the whole table on every run from then on: at 100,000
        # stored dossiers, FerretDB's lookups by `_id` became sequential scans.
        "plan_cache_mode": "force_custom_plan",
        # FerretDB's documents over 2 kB (a delivery with its rendered message) are compressed
        # at every write; pglz was PostgreSQL's top function under load (perf), lz4 costs a
        # fraction of it.
        "default_toast_compression": "lz4",
        # The test profile's data is thrown away: skip durability work entirely.
        **({"fsync": "off", "full_page_writes": "off"} if config.profile == "test" else {}),
    }
    argv = [str(binaries() / "postgres"), "-D", str(cluster)]
    for name, value in settings.items():
        argv += ["-c", f"{name}={value}"]
    proc.start(argv, cwd=cluster, user=user)
    return True


def _init_cluster(cluster: Path, user: str | None) -> None:
    cluster.mkdir(parents=True, exist_ok=True)
    if user is not None:
        shutil.chown(cluster, user)
    cluster.chmod(0o700)
    result = subprocess.run(
        [
            *(str(binaries() / "initdb"), "-D", str(cluster), "-A", "trust", "-U", SUPERUSER),
            *("-E", "UTF8", "--no-locale", "--no-instructions"),
        ],
        capture_output=True,
        text=True,
        user=user,
        cwd=cluster,
    )
    if result.returncode != 0:
        raise DevstackError("initdb failed:\n" + (result.stdout + result.stderr)[-2000:])


def wait_ready(config: StackConfig, timeout: float = 60.0) -> None:
    """Wait until the server accepts connections, then create FerretDB's database once and
    install the GIN mirror of FerretDB's indexes (devstack/postgres/gin_mirror.sql)."""
    proc = process(config)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.pid() is None:
            raise DevstackError("PostgreSQL exited during start-up:\n" + proc.log_tail())
        if psql(config, "SELECT 1").returncode == 0:
            break
        time.sleep(0.2)
    else:
        raise DevstackError(
            f"PostgreSQL did not accept connections on 127.0.0.1:{config.postgres_port} "
            f"within {timeout:.0f}s:\n{proc.log_tail()}"
        )
    exists = psql(config, f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'")
    if exists.stdout.strip() != "1":
        created = psql(config, f'CREATE DATABASE "{DATABASE}"')
        if created.returncode != 0 and "already exists" not in created.stderr:
            raise DevstackError(f"creating database {DATABASE} failed: {created.stderr.strip()}")
    mirror = psql(config, None, database=DATABASE, script=DEVSTACK_SOURCES / GIN_MIRROR_SQL)
    if mirror.returncode != 0:
        raise DevstackError(f"installing {GIN_MIRROR_SQL} failed: {mirror.stderr.strip()}")


def psql(
    config: StackConfig, sql: str | None, database: str = "postgres", script: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """psql over TCP as the superuser: one statement (`sql`) or a whole `script`."""
    return subprocess.run(
        [
            *(str(binaries() / "psql"), "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1"),
            *("-h", "127.0.0.1", "-p", str(config.postgres_port), "-U", SUPERUSER, "-d", database),
            *(["-f", str(script)] if script else ["-c", sql or ""]),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PGCONNECT_TIMEOUT": "2", "PGOPTIONS": "-c client_min_messages=warning"},
    )


# Upstream FerretDB 1.24 keeps each statement's PostgreSQL connection of an update command until
# the whole command ends (a deferred close in the statements' loop), so a command of N statements
# needs N + 1 connections of its pool at once, and at the pool's limit waits forever; our patch
# 0009 gives each back before the next statement. The default pool (50) is still raised for the
# commands that run side by side. FerretDB opens two such pools (patch 0008: one for the
# statements on `_id` alone), each up to this size, and only as many connections as it uses at
# once.
FERRETDB_POOL = 250


def url(config: StackConfig) -> str:
    return (
        f"postgres://{SUPERUSER}@127.0.0.1:{config.postgres_port}/{DATABASE}"
        f"?pool_max_conns={FERRETDB_POOL}"
    )


def remove_cluster(config: StackConfig) -> None:
    """Delete the cluster where it lives outside the profile's data folder (see cluster_dir)."""
    cluster = cluster_dir(config)
    if not cluster.is_relative_to(config.data_dir):
        shutil.rmtree(cluster, ignore_errors=True)
