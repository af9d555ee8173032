"""Checks for the tools devstack needs, each failing with the fix in its message."""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import cache

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


def _debian_package(name: str) -> str:
    return {"java": "openjdk-17-jre-headless", "mvn": "maven", "go": "golang-go"}.get(name, name)
