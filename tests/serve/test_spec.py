"""EndpointSpec is pure, strict data with every field described (it becomes a CRD)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from tailor.stages.serve.spec import EndpointSpec


def spec(**kw: Any) -> EndpointSpec:
    data: dict[str, Any] = {
        "team": "acme",
        "base_model": "bigcode/starcoderbase-1b",
        "adapters": [{"name": "py", "version": "3", "prefix": "teams/acme/adapters/py/3/"}],
    }
    return EndpointSpec.model_validate(data | kw)


def test_defaults_pick_the_tailor_backend() -> None:
    s = spec()
    assert (s.backend, s.replicas, s.limits.max_tokens) == ("tailor", 1, 512)


def test_a_typo_is_rejected() -> None:
    with pytest.raises(ValidationError, match="replica"):
        spec(replica=2)


def test_an_adapter_outside_the_teams_prefix_is_rejected() -> None:
    with pytest.raises(ValidationError):
        spec(adapters=[{"name": "py", "version": "1", "prefix": "secrets/py/1"}])


def test_every_field_of_the_schema_has_a_description() -> None:
    schema = EndpointSpec.model_json_schema()
    objects = [schema, *schema.get("$defs", {}).values()]
    missing = [
        name
        for obj in objects
        for name, prop in obj["properties"].items()
        if "description" not in prop
    ]
    assert missing == []
