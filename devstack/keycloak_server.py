"""Keycloak, the staff's OpenID Connect provider, from Maven Central's distribution zip.

`python -m devstack up --with-keycloak` (or `DEVSTACK_KEYCLOAK=1`, `DEVSTACK_TEST_KEYCLOAK=1`)
runs it beside Kafka and FerretDB. The zip (`org.keycloak:keycloak-quarkus-dist`) is unpacked
into the per-user cache and built once (`kc.sh build`: its build-time options below), then each
profile starts it `--optimized` in production mode over plain HTTP on 127.0.0.1, with its own
home folder in the profile's data folder: the H2 database (`data/h2`), the realm to import
(`data/import/realm-dvc.json`, copied from devstack/keycloak/), its log and pid file. The home's
`lib` is a link to the built distribution, which is what lets one build serve every profile.

The realm is code: `--import-realm` imports devstack/keycloak/realm-dvc.json into an empty
database, and when that file changes the profile's Keycloak database is dropped at the next start
so that the new realm is imported (users changed by hand in the console go with it).

Keycloak 26 needs Java 21 or newer (`require_java_home`); Kafka keeps the default Java 17.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devstack.config import DEVSTACK_SOURCES, KEYCLOAK_VERSION, StackConfig, cache_root
from devstack.prerequisites import require_java_home, require_tool
from devstack.processes import DevstackError, ManagedProcess, ensure_port_free

ARTIFACT = f"org.keycloak:keycloak-quarkus-dist:{KEYCLOAK_VERSION}:zip"
MIN_JAVA = 21
REALM = "dvc"
REALM_FILE = DEVSTACK_SOURCES / "keycloak" / f"realm-{REALM}.json"
# Build-time options, baked into the cached distribution by `kc.sh build`: the embedded H2
# database (a file in each profile's home) and health checks on the management port.
BUILD_OPTIONS = ("--db=dev-file", "--health-enabled=true")
# The master realm's administrator (http://127.0.0.1:8080/admin/), created at the first start.
# Development only, like the demo users' passwords in the realm file.
BOOTSTRAP_ADMIN = ("admin", "admin")


def home(config: StackConfig) -> Path:
    return config.data_dir / "keycloak"


def process(config: StackConfig) -> ManagedProcess:
    return ManagedProcess("keycloak", home(config) / "keycloak.pid", home(config) / "keycloak.log")


def issuer(config: StackConfig) -> str:
    """The realm's issuer: the `iss` of its tokens, and the base of its discovery document."""
    return f"http://127.0.0.1:{config.keycloak_port}/realms/{REALM}"


def enabled(config: StackConfig) -> bool:
    """Whether `up` starts Keycloak without `--with-keycloak`: DEVSTACK_KEYCLOAK=1 (run) or
    DEVSTACK_TEST_KEYCLOAK=1 (test)."""
    return os.environ.get(config.env_name("KEYCLOAK"), "").strip().lower() in {"1", "true", "yes"}


def dist_dir() -> Path:
    """The unpacked, built distribution: keyed by the version and the build options."""
    digest = hashlib.sha256(" ".join(BUILD_OPTIONS).encode()).hexdigest()[:8]
    return cache_root() / f"keycloak-{KEYCLOAK_VERSION}-{digest}"


def _built_marker(dist: Path) -> Path:
    return dist / ".devstack-built"


@contextmanager
def _install_lock() -> Iterator[None]:
    cache_root().mkdir(parents=True, exist_ok=True)
    with open(cache_root() / f"keycloak-{KEYCLOAK_VERSION}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two profiles installing at once: one waits
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def install(config: StackConfig) -> bool:
    """Download, unpack and build the distribution into the per-user cache (once).
    True if it did so now."""
    dist = dist_dir()
    if _built_marker(dist).exists():
        return False
    java_home = require_java_home(MIN_JAVA, f"Keycloak {KEYCLOAK_VERSION}")
    mvn = require_tool("mvn", "Maven (Debian package 'maven')")
    with _install_lock():
        if _built_marker(dist).exists():
            return False  # another process installed it while we waited
        shutil.rmtree(dist, ignore_errors=True)  # a build interrupted half-way
        started = time.monotonic()
        print(
            f"  downloading Keycloak {KEYCLOAK_VERSION} from Maven Central and building it "
            f"into {dist} (once, about a minute) ...",
            flush=True,
        )
        staging = Path(tempfile.mkdtemp(prefix="keycloak-", dir=cache_root()))
        try:
            _download_and_unpack(mvn, staging)
            (staging / f"keycloak-{KEYCLOAK_VERSION}").rename(dist)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        built = subprocess.run(
            [str(dist / "bin" / "kc.sh"), "build", *BUILD_OPTIONS],
            capture_output=True,
            text=True,
            env={**os.environ, "JAVA_HOME": str(java_home)},
        )
        if built.returncode != 0:
            raise DevstackError("kc.sh build failed:\n" + (built.stdout + built.stderr)[-3000:])
        _built_marker(dist).write_text(" ".join(BUILD_OPTIONS) + "\n")
        print(f"  Keycloak installed in {time.monotonic() - started:.0f}s", flush=True)
    return True


def _download_and_unpack(mvn: str, staging: Path) -> None:
    fetched = subprocess.run(
        [mvn, "-q", "-B", "dependency:copy", f"-Dartifact={ARTIFACT}", "-DoutputDirectory=."],
        capture_output=True,
        text=True,
        cwd=staging,
    )
    archive = staging / f"keycloak-quarkus-dist-{KEYCLOAK_VERSION}.zip"
    if fetched.returncode != 0 or not archive.exists():
        raise DevstackError(
            "Maven could not fetch Keycloak's distribution:\n"
            + (fetched.stdout + fetched.stderr)[-3000:]
        )
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(staging)
        for entry in zipped.infolist():
            mode = entry.external_attr >> 16 & 0o777  # zipfile drops the permissions
            if mode:
                (staging / entry.filename).chmod(mode)
    archive.unlink()


def _prepare_home(config: StackConfig) -> None:
    """The profile's home: `lib` linked to the built distribution, the realm to import, and a
    fresh database when the realm file changed since the last import."""
    folder = home(config)
    (folder / "data" / "import").mkdir(parents=True, exist_ok=True)
    lib = folder / "lib"
    target = dist_dir() / "lib"
    if not (lib.is_symlink() and Path(os.readlink(lib)) == target):
        lib.unlink(missing_ok=True)  # a link to another version's build
        lib.symlink_to(target, target_is_directory=True)

    realm = REALM_FILE.read_bytes()
    digest = hashlib.sha256(realm + KEYCLOAK_VERSION.encode()).hexdigest()
    recorded = folder / "realm.sha256"
    database = folder / "data" / "h2"
    previous = recorded.read_text().strip() if recorded.exists() else None
    if database.exists() and previous != digest:
        print(f"  {REALM_FILE.name} changed: Keycloak's database is recreated", flush=True)
        shutil.rmtree(database)
        shutil.rmtree(folder / "data" / "transaction-logs", ignore_errors=True)
    (folder / "data" / "import" / REALM_FILE.name).write_bytes(realm)
    recorded.write_text(digest + "\n")


def command(config: StackConfig) -> list[str]:
    return [
        str(dist_dir() / "bin" / "kc.sh"),
        # The profile's home: its data folder; `lib` there links to the cached build.
        f"-Dkc.home.dir={home(config)}",
        "start",
        "--optimized",
        "--http-enabled=true",
        "--http-host=127.0.0.1",
        f"--http-port={config.keycloak_port}",
        f"--http-management-port={config.keycloak_management_port}",
        # A fixed issuer, whatever name a browser or a service uses to reach it.
        f"--hostname=http://127.0.0.1:{config.keycloak_port}",
        # One node: no JGroups cluster (its discovery would also bind ports 7800 and 57800).
        "--cache=local",
        "--import-realm",
    ]


def start(config: StackConfig) -> bool:
    """Start Keycloak unless it runs already. True if started now."""
    proc = process(config)
    if proc.pid() is not None:
        return False
    ensure_port_free(config.keycloak_port, "Keycloak", config.env_name("KEYCLOAK_PORT"))
    ensure_port_free(
        config.keycloak_management_port,
        "Keycloak's management interface",
        config.env_name("KEYCLOAK_MANAGEMENT_PORT"),
    )
    java_home = require_java_home(MIN_JAVA, f"Keycloak {KEYCLOAK_VERSION}")
    _prepare_home(config)
    heap = os.environ.get(config.env_name("KEYCLOAK_HEAP"), "512m")
    env = {
        "JAVA_HOME": str(java_home),
        "JAVA_OPTS_KC_HEAP": f"-Xms64m -Xmx{heap}",
        "KC_BOOTSTRAP_ADMIN_USERNAME": BOOTSTRAP_ADMIN[0],
        "KC_BOOTSTRAP_ADMIN_PASSWORD": BOOTSTRAP_ADMIN[1],
    }
    # kc.sh forwards SIGTERM to the JVM, which shuts down cleanly in a second or two.
    proc.start(command(config), env=env, cwd=home(config))
    return True


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def wait_ready(config: StackConfig, timeout: float | None = None) -> None:
    """Wait until the management port reports ready and the realm serves its discovery
    document (the first start creates the database and imports the realm: a minute or two on a
    busy 2-core machine; a restart takes 10–20 s)."""
    timeout = timeout if timeout is not None else ready_timeout()
    proc = process(config)
    health = f"http://127.0.0.1:{config.keycloak_management_port}/health/ready"
    discovery = f"{issuer(config)}/.well-known/openid-configuration"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.pid() is None:
            raise DevstackError("Keycloak exited during start-up:\n" + proc.log_tail(30))
        if _answers(health) and _answers(discovery):
            return
        time.sleep(0.5)
    raise DevstackError(
        f"Keycloak did not become ready on {health} within {timeout:.0f}s "
        f"(slow machine? set DEVSTACK_KEYCLOAK_READY_TIMEOUT). Last log lines:\n"
        + proc.log_tail(30)
    )


def ready_timeout() -> float:
    return float(os.environ.get("DEVSTACK_KEYCLOAK_READY_TIMEOUT", "300"))
