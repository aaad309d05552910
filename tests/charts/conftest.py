"""Chart fixtures: the real helm binary (scripts/helm) and rendered manifests."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "tailor"
PRODUCTION = CHART / "ci" / "production-values.yaml"

Helm = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def helm() -> Helm:
    """Run helm v3 (extracted from the PyPI package by scripts/helm) with arguments."""
    binary = subprocess.run(
        [str(ROOT / "scripts" / "helm")], capture_output=True, text=True, check=True
    ).stdout.strip()

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([binary, *args], capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}")
        return result

    return run


def render(helm: Helm, *values: Path, namespace: str = "tailor") -> list[dict[str, Any]]:
    """`helm template` the chart and parse every manifest (hooks and tests included)."""
    args = ["template", "t", str(CHART), "--namespace", namespace]
    for path in values:
        args += ["--values", str(path)]
    output = helm(*args).stdout
    return [doc for doc in yaml.safe_load_all(output) if doc]


@pytest.fixture(scope="session")
def default_manifests(helm: Helm) -> list[dict[str, Any]]:
    """The chart rendered with its default values."""
    return render(helm)


@pytest.fixture(scope="session")
def production_manifests(helm: Helm) -> list[dict[str, Any]]:
    """The chart rendered with the multi-team production values."""
    return render(helm, PRODUCTION)


def by_kind(manifests: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The rendered objects of one kind."""
    return [m for m in manifests if m["kind"] == kind]


def pod_specs(manifests: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(object name, pod spec) of every workload and pod the chart renders."""
    specs = []
    for manifest in manifests:
        if manifest["kind"] == "Pod":
            specs.append((manifest["metadata"]["name"], manifest["spec"]))
        elif manifest["kind"] in ("Deployment", "StatefulSet", "Job"):
            specs.append((manifest["metadata"]["name"], manifest["spec"]["template"]["spec"]))
    return specs
