"""The torch-free architecture check the API runs before queueing a transfer."""

from __future__ import annotations

from pathlib import Path

import pytest

from tailor.stages.package.architecture import architecture_problems
from tailor.stages.package.shapes import read_model_config


@pytest.mark.parametrize(
    ("target", "incompatible"),
    [("tiny_base", False), ("sibling_base", False), ("wider_base", True), ("deeper_base", True)],
)
def test_only_bases_of_other_shapes_are_refused(
    target: str, incompatible: bool, tiny_base: Path, request: pytest.FixtureRequest
) -> None:
    source = read_model_config(tiny_base)
    found = architecture_problems(source, read_model_config(request.getfixturevalue(target)))
    assert bool(found) == incompatible
