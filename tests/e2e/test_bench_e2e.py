"""Smoke run of `bench/bench_e2e.py` in its quickest mode against the test stack: the bench
starts the four services, puts dossiers through and reads each service's database commands
from its `/metrics`. Figures are printed by the bench, never checked here."""

from __future__ import annotations

import re
import subprocess
import sys

from devstack.config import PROJECT_ROOT
from devstack.services import SERVICES


def test_the_end_to_end_bench_runs_in_quick_mode(kafka_bootstrap: str, mongo_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "bench/bench_e2e.py", "--quick"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=170,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "end to end" in output
    for service in SERVICES:  # a line of database commands per dossier for each service
        assert re.search(rf"^  {service} +\d+\.\d+ ", output, re.MULTILINE), output[-4000:]
