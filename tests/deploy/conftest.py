from __future__ import annotations

import pytest

from tests.deploy.tools import ROOT, kustomize_build

K8S = ROOT / "deploy" / "k8s"
TARGETS = ("base", "overlays/production", "overlays/staging")


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict]]:
    """The rendered manifests of the base and of every overlay, built once per run."""
    return {target: kustomize_build(K8S / target) for target in TARGETS}
