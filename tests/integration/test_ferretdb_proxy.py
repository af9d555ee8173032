"""The serialising proxy's own Go tests (command parsing, per-collection write locks)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from devstack.config import DEVSTACK_SOURCES


def test_the_proxy_go_tests_pass() -> None:
    go = shutil.which("go")
    if go is None:
        pytest.fail("Go is needed to build FerretDB (scripts/test installs it)")
    result = subprocess.run(
        [go, "test", "-count=1", "."],
        cwd=DEVSTACK_SOURCES / "ferretdb",
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert result.returncode == 0, result.stdout + result.stderr
