"""An endpoint pod's spec file and token: what it serves, to whom, and what it refuses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tailor.cli.main import app as cli_app
from tailor.config import get_settings
from tailor.stages.serve.endpoint_pod import Backend, MountedSpec, gateway_lookup
from tailor.stages.serve.engine import TailorEngine
from tests.conftest import eventually
from tests.serve.conftest import Registry

V1 = "teams/search/adapters/style/1/"
V2 = "teams/search/adapters/style/2/"


def _write(
    path: Path, prefix: str, team: str = "search", base: str = "s3://bucket/models/tiny"
) -> None:
    spec: dict[str, Any] = {
        "team": team,
        "base_model": base,
        "adapters": [{"name": "style", "version": prefix.split("/")[-2], "prefix": prefix}],
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(spec))
    tmp.replace(path)  # as the kubelet swaps a ConfigMap volume


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "endpoint.json"
    _write(path, V1)
    return path


def test_a_promoted_version_is_served_once_the_file_changes(spec_file: Path) -> None:
    lookup = gateway_lookup(MountedSpec(spec_file), "gw")

    _write(spec_file, V2)

    found = lookup("gw", "style")
    assert found is not None and found.adapter == V2.rstrip("/")


def test_a_spec_that_does_not_validate_keeps_the_last_one(spec_file: Path) -> None:
    lookup = gateway_lookup(MountedSpec(spec_file), "gw")

    spec_file.write_text('{"team": "search"}')

    found = lookup("gw", "style")
    assert found is not None and found.adapter == V1.rstrip("/")


def test_a_spec_for_another_team_is_not_taken(spec_file: Path) -> None:
    lookup = gateway_lookup(MountedSpec(spec_file), "gw")

    _write(spec_file, V2, team="payments")

    found = lookup("gw", "style")
    assert found is not None and (found.team, found.adapter) == ("search", V1.rstrip("/"))


def test_a_spec_on_another_base_is_left_to_the_pods_that_replace_this_one(
    spec_file: Path,
) -> None:
    lookup = gateway_lookup(MountedSpec(spec_file), "gw")

    _write(spec_file, V2, base="s3://bucket/models/other")

    found = lookup("gw", "style")
    assert found is not None and found.adapter == V1.rstrip("/")


def test_only_the_gateways_token_is_answered(spec_file: Path) -> None:
    lookup = gateway_lookup(MountedSpec(spec_file), "gw")

    assert lookup("a-team-token", "style") is None


def test_an_unknown_model_is_not_found_for_the_team(spec_file: Path) -> None:
    found = gateway_lookup(MountedSpec(spec_file), "gw")("gw", "other")

    assert found is not None and not found.known


def test_the_command_refuses_to_start_without_the_gateway_token(
    spec_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TAILOR_SERVE_ENDPOINT_TOKEN", raising=False)
    get_settings.cache_clear()

    result = CliRunner().invoke(cli_app, ["serve-endpoint", "--config", str(spec_file)])

    get_settings.cache_clear()
    assert result.exit_code == 2
    assert "TAILOR_SERVE_ENDPOINT_TOKEN" in result.output


def test_the_pod_is_not_ready_while_an_adapter_it_serves_is_missing(engine: TailorEngine) -> None:
    absent = "teams/search/adapters/absent/1"
    backend = Backend(engine, [absent])
    backend.is_ready()  # starts the download
    assert eventually(lambda: engine.adapters.download(absent).done())

    assert not backend.is_ready()


def test_the_pod_is_ready_once_its_base_and_adapters_are_loaded(
    engine: TailorEngine, registry: Registry
) -> None:
    backend = Backend(engine, [registry.published[("acme", "py")]])

    assert eventually(backend.is_ready)
