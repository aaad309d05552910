"""Images named by the chart: they have build files, run unprivileged, API/operator lack torch."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.charts.conftest import CHART, ROOT

IMAGES = ROOT / "images"
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())


def _installed_extras(dockerfile: str) -> set[str]:
    extras: set[str] = set()
    for match in re.finditer(r'pip install[^\n]*"\.\[([a-z0-9,]+)\]"', dockerfile):
        extras |= set(match.group(1).split(","))
    return extras


def test_every_tailor_image_in_the_chart_has_a_dockerfile() -> None:
    repositories = {
        "api": VALUES["api"]["image"]["repository"],
        "worker": VALUES["worker"]["image"]["repository"],
        "operator": VALUES["operator"]["image"]["repository"],
        "trainer": VALUES["workloads"]["trainer"]["repository"],
        "inference": VALUES["workloads"]["inference"]["repository"],
    }

    for part, repository in repositories.items():
        assert (IMAGES / part / "Dockerfile").is_file(), part
        assert repository.endswith(f"tailor-{part}")


@pytest.mark.parametrize("part", ["api", "worker", "operator", "trainer", "inference"])
def test_images_run_as_an_unprivileged_user(part: str) -> None:
    dockerfile = (IMAGES / part / "Dockerfile").read_text()

    assert dockerfile.rstrip().splitlines()[-1].startswith(("CMD", "ENTRYPOINT", "EXPOSE"))
    assert re.search(r"^USER 1000:1000$", dockerfile, re.M), part
    assert "--uid 1000" in dockerfile


@pytest.mark.parametrize(("part", "extras"), [("api", {"api"}), ("operator", {"k8s"})])
def test_the_api_and_operator_images_carry_no_torch(part: str, extras: set[str]) -> None:
    dockerfile = (IMAGES / part / "Dockerfile").read_text()
    instructions = [line for line in dockerfile.splitlines() if not line.startswith("#")]

    assert _installed_extras(dockerfile) == extras
    assert "torch" not in "\n".join(instructions)


def test_the_worker_image_can_submit_finetunejobs() -> None:
    # With executor=kubernetes the worker creates FineTuneJobs through the kubernetes client.
    dockerfile = (IMAGES / "worker" / "Dockerfile").read_text()

    assert {"worker", "k8s"} <= _installed_extras(dockerfile)
