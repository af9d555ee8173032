"""Where the deployment tests find their tools; a missing tool fails the test with the fix."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
INSTALL_HINT = "run scripts/install-deploy-tools"
# Every service of the image (a package with a __main__.py), each a workload of its own.
SERVICES = ("intake", "processing", "notification", "reporting", "portal")
# Those holding data: a Kafka user, a MongoDB database, staff JWTs. The portal holds none.
DATA_SERVICES = ("intake", "processing", "notification", "reporting")
# The services the portal calls over HTTP: intake (citizens' dossiers; the workspace's counter),
# reporting (public figures; the workspace's reports) and processing (the officers' workspace,
# with the officer's token). `test_the_portal_calls_are_its_settings` keeps this equal to the
# portal's `<service>_base_url` settings.
PORTAL_CALLS = ("intake", "reporting", "processing")
# The Kubernetes version whose schemas the manifests are validated against.
KUBERNETES_VERSION = "1.33.0"


def kustomize_version() -> str:
    script = (ROOT / "scripts" / "install-deploy-tools").read_text(encoding="utf-8")
    match = re.search(r"^KUSTOMIZE_VERSION=(\S+)", script, re.MULTILINE)
    assert match, "scripts/install-deploy-tools names no KUSTOMIZE_VERSION"
    return match.group(1)


def cache_root() -> Path:
    """devstack's per-user cache: DEVSTACK_CACHE_DIR, else XDG_CACHE_HOME/dvc-platform."""
    if os.environ.get("DEVSTACK_CACHE_DIR"):
        return Path(os.environ["DEVSTACK_CACHE_DIR"])
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "dvc-platform"


def kustomize() -> Path:
    path = cache_root() / f"kustomize-{kustomize_version()}" / "kustomize"
    if not os.access(path, os.X_OK):
        pytest.fail(f"kustomize is not installed at {path}: {INSTALL_HINT}", pytrace=False)
    return path


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(f"promtool is not on PATH: {INSTALL_HINT}", pytrace=False)
    return path


def venv_tool(name: str) -> Path:
    path = Path(sys.executable).parent / name
    if not os.access(path, os.X_OK):
        pytest.fail(f"{name} is not installed in the venv: {INSTALL_HINT}", pytrace=False)
    return path


def run(command: list[str | Path], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def kustomize_build(directory: Path) -> list[dict]:
    result = run([kustomize(), "build", directory])
    assert result.returncode == 0, f"kustomize build {directory} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


_VARIABLE = re.compile(r"\$\{(\w+)(?::([-?+]))?")


def interpolate(text: str, environment: dict[str, str]) -> str:
    """Compose's interpolation of `text` with `environment` (the .env file): `${VAR}`,
    `${VAR:-default}`, `${VAR:?error}` (a ValueError when unset or empty) and
    `${VAR:+replacement}`, nested."""
    result, position = [], 0
    while (match := _VARIABLE.search(text, position)) is not None:
        result.append(text[position : match.start()])
        end, depth = match.end(), 1
        while depth:  # past the closing brace of this expression, nested ones skipped
            if text.startswith("${", end):
                depth, end = depth + 1, end + 2
            else:
                depth, end = depth - (text[end] == "}"), end + 1
        name, operator = match.group(1), match.group(2)
        operand = interpolate(text[match.end() : end - 1], environment) if operator else ""
        value = environment.get(name, "")
        if operator == "-":
            value = value or operand
        elif operator == "?" and not value:
            raise ValueError(f"{name}: {operand}")
        elif operator == "+":
            value = operand if value else ""
        result.append(value)
        position = end
    result.append(text[position:])
    return "".join(result)
