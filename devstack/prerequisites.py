"""Checks for the tools devstack needs, each failing with the fix in its message."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

from devstack.processes import DevstackError

MIN_JAVA = 17


def require_tool(name: str, what: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise DevstackError(
            f"'{name}' was not found on PATH: install {what} "
            f"(on Debian: apt-get install {_debian_package(name)})"
        )
    return path


@cache
def require_java() -> str:
    java = require_tool("java", f"a Java runtime, version {MIN_JAVA} or newer")
    output = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    match = re.search(r'version "(\d+)', output)
    if not match or int(match.group(1)) < MIN_JAVA:
        raise DevstackError(
            f"Kafka 4 needs Java {MIN_JAVA}+, found: {output.splitlines()[0] if output else '?'}"
            " — install openjdk-17-jre-headless or newer"
        )
    return java


@cache
def java_major(java: str | Path) -> int | None:
    """The major version `java -version` reports, or None if it does not run."""
    try:
        output = subprocess.run(
            [str(java), "-version"], capture_output=True, text=True, timeout=30
        ).stderr
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)', output)
    return int(match.group(1)) if match else None


@cache
def require_java_home(minimum: int, what: str) -> Path:
    """A Java home whose runtime is `minimum` or newer, for `what` (e.g. Keycloak 26 needs 21).

    Looked for in order: DEVSTACK_JAVA_HOME, JAVA_HOME, the `java` on PATH, then the newest
    runtime under /usr/lib/jvm (where Debian's packages and the machine's Temurin live).
    """
    candidates: list[Path] = []
    for variable in ("DEVSTACK_JAVA_HOME", "JAVA_HOME"):
        if value := os.environ.get(variable):
            candidates.append(Path(value))
    if on_path := shutil.which("java"):
        candidates.append(Path(on_path).resolve().parent.parent)
    installed = [p.parent.parent for p in Path("/usr/lib/jvm").glob("*/bin/java")]
    candidates.extend(
        sorted(installed, key=lambda home: java_major(home / "bin" / "java") or 0)[::-1]
    )
    seen: list[str] = []
    for home in candidates:
        major = java_major(home / "bin" / "java")
        seen.append(f"{home} ({major or '?'})")
        if major is not None and major >= minimum:
            return home
    raise DevstackError(
        f"{what} needs Java {minimum} or newer; found: {', '.join(seen) or 'none'}. Install a "
        f"Java {minimum}+ runtime (e.g. a Temurin JDK under /usr/lib/jvm) or point "
        "DEVSTACK_JAVA_HOME at one"
    )


def _debian_package(name: str) -> str:
    return {"java": "openjdk-17-jre-headless", "mvn": "maven", "go": "golang-go"}.get(name, name)
