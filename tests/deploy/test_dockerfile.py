"""The image: multi-stage, pinned base, non-root, a health check, only what it needs inside."""

from __future__ import annotations

import re
import subprocess
import tomllib
from fnmatch import fnmatch
from pathlib import Path

from tests.deploy.tools import ROOT, SERVICES

DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for instruction in instructions():
        if instruction[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def base_images() -> list[str]:
    args = dict(arg.split("=", 1) for word, arg in instructions() if word == "ARG" and "=" in arg)
    images = []
    for word, rest in instructions():
        if word == "FROM":
            image = rest.split()[0]
            images.append(re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image))
    return images


def test_base_image_is_pinned_to_an_exact_version() -> None:
    images = base_images()
    assert len(images) >= 2, "multi-stage: a build stage and a runtime stage"
    for image in images:
        tag = image.partition("@")[0].partition(":")[2]
        assert tag and tag != "latest", image
        assert re.match(r"\d+\.\d+\.\d+-slim", tag), f"{image}: exact version of a slim image"


def test_base_python_satisfies_the_project() -> None:
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    minimum = tuple(int(x) for x in re.search(r">=\s*(\d+)\.(\d+)", requires).groups())
    for image in base_images():
        version = re.search(r":(\d+)\.(\d+)\.", image).groups()
        assert tuple(int(x) for x in version) >= minimum


def test_runs_as_a_non_root_user() -> None:
    final = stages()[-1]
    users = [rest for word, rest in final if word == "USER"]
    assert users, "the final stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    assert user.isdigit(), "a numeric uid lets Kubernetes verify runAsNonRoot"


def test_health_check_asks_the_liveness_endpoint_with_the_standard_library() -> None:
    checks = [rest for word, rest in stages()[-1] if word == "HEALTHCHECK"]
    assert len(checks) == 1
    assert "/health/live" in checks[0] and "urllib" in checks[0] and "curl" not in checks[0]


def test_final_stage_has_no_build_tools_or_caches() -> None:
    final = " ".join(rest for word, rest in stages()[-1] if word == "RUN")
    for tool in ("apt-get install", "pip install", "gcc", "build-essential"):
        assert tool not in final
    build = " ".join(rest for _, rest in stages()[0])
    assert "PIP_NO_CACHE_DIR=1" in build
    copies = [rest for word, rest in stages()[-1] if word == "COPY"]
    assert any(c.startswith("--from=build /opt/venv") for c in copies)


def test_listens_on_one_port_for_every_service() -> None:
    env = " ".join(rest for word, rest in stages()[-1] if word == "ENV")
    for service in (name.upper() for name in SERVICES):
        assert f"DVC_{service}_HTTP_PORT=8000" in env
        assert f"DVC_{service}_HTTP_HOST=0.0.0.0" in env


def test_dockerignore_admits_exactly_what_the_build_copies() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "**", "ignore everything, then admit what the image needs"
    admitted = [line[1:] for line in lines if line.startswith("!")]
    for word, rest in instructions():
        if word == "COPY" and not rest.startswith("--from"):
            *sources, _ = rest.split()
            for source in sources:
                assert any(
                    fnmatch(source, pattern) or pattern.startswith(source + "/")
                    for pattern in admitted
                ), f"{source} is excluded by .dockerignore"
    assert not any(p.startswith((".venv", ".devstack", "tests", ".git")) for p in admitted)


def committed_files(*folders: str) -> list[Path]:
    """The files git tracks under `folders` (work in progress of others is not yet the image's)."""
    result = subprocess.run(
        ["git", "ls-files", "-z", *folders], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:  # not a git checkout: every file counts
        return [p for folder in folders for p in (ROOT / folder).rglob("*") if p.is_file()]
    return [ROOT / name for name in result.stdout.split("\0") if name]


def is_package_data(path: Path, package_data: dict[str, list[str]]) -> bool:
    """Whether a pattern of the file's package, or of a package above it, matches the file."""
    parts = path.relative_to(ROOT).parts
    for depth in range(len(parts) - 1, 0, -1):
        package, relative = ".".join(parts[:depth]), "/".join(parts[depth:])
        if any(fnmatch(relative, pattern) for pattern in package_data.get(package, [])):
            return True
    return False


def test_package_data_ships_every_data_file_of_the_services() -> None:
    """`pip install .` in the image must carry the services' data files (catalogue, templates)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    package_data = config.get("package-data", {})
    missing = [
        str(path.relative_to(ROOT))
        for path in committed_files("services", "shared")
        if path.suffix not in {".py", ".pyc", ".md"} and "__pycache__" not in path.parts
        if not is_package_data(path, package_data)
    ]
    assert not missing, f"not declared as package data in pyproject.toml: {missing}"


def test_the_image_holds_no_development_tooling() -> None:
    """devstack (local servers, providers' simulators) and the tests never reach production."""
    copied = [
        source
        for word, rest in instructions()
        if word == "COPY" and not rest.startswith("--from")
        for source in rest.split()[:-1]
    ]
    assert copied and not any(s.startswith(("devstack", "tests", "bench")) for s in copied)
    ignored = (ROOT / ".dockerignore").read_text()
    assert "!devstack" not in ignored


def test_package_data_ships_the_portal_s_pages() -> None:
    """The portal's templates and static files, committed or not yet: without them the image's
    portal answers nothing but errors."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    package_data = config.get("package-data", {})
    files = [
        path
        for folder in ("templates", "static")
        for path in (ROOT / "services" / "portal" / folder).rglob("*")
        if path.is_file()
    ]
    assert any(p.name == "base.html" for p in files)
    missing = [str(p.relative_to(ROOT)) for p in files if not is_package_data(p, package_data)]
    assert not missing, f"not declared as package data in pyproject.toml: {missing}"
    # setuptools' `*` stays within one folder (fnmatch's does not): files in subfolders need
    # a recursive `**` pattern
    patterns = package_data.get("services.portal", [])
    nested = [p for p in files if p.parent.name not in {"templates", "static"}]
    assert not nested or any("**" in pattern for pattern in patterns), "add a `**` pattern"
