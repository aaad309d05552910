"""A TrainSpec is validated before anything runs, and a bad one says which field is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from tailor.stages.train.entrypoint import load_spec, run_command, spec_errors
from tailor.stages.train.errors import ModelError
from tailor.stages.train.protocol import EXIT_SPEC_ERROR, parse
from tailor.stages.train.spec import TrainSpec, default_lora_targets

BASE = {"base_model": "bigcode/starcoderbase-1b", "team": "acme", "dataset_id": "ds-1"}


def _spec(**changes: object) -> TrainSpec:
    return TrainSpec.model_validate(BASE | {"adapter_name": "style"} | changes)


def test_defaults_follow_the_issue() -> None:
    spec = _spec()

    assert (spec.method, spec.fim_rate, spec.spm_rate) == ("qlora", 0.5, 0.5)
    assert spec.adapter_prefix() == "teams/acme/adapters/style/1/"
    assert spec.dataset_prefix() == "teams/acme/datasets/ds-1/"


def test_an_unknown_field_is_named_in_the_error() -> None:
    with pytest.raises(ValidationError) as caught:
        _spec(learning_rte=1e-4)

    assert "learning_rte: Extra inputs are not permitted" in spec_errors(caught.value)


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"num_processes": 4, "method": "lora"}, "needs method 'full'"),
        ({"lora_target_modules": []}, "lora_target_modules is empty"),
        ({"fim_rate": 1.5}, "fim_rate"),
        ({"seq_len": 8}, "seq_len"),
        ({"adapter_version": "0"}, "adapter_version"),
        ({"team": "Acme Corp"}, "team"),
    ],
)
def test_impossible_values_are_refused(changes: dict[str, object], words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        _spec(**changes)

    assert words in spec_errors(caught.value)


def test_each_supported_architecture_has_lora_targets() -> None:
    for model_type in ("gpt_bigcode", "llama", "mistral", "qwen2", "starcoder2"):
        assert default_lora_targets(model_type)
    assert default_lora_targets("bert") is None


def test_a_yaml_spec_file_loads_like_json(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text("base_model: m\nteam: acme\ndataset_id: ds-1\nadapter_name: a\nmethod: lora\n")

    assert load_spec(path).method == "lora"


def test_the_entrypoint_reports_a_bad_spec_file_and_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(BASE | {"adapter_name": "a", "epochs": 0, "colour": "red"}))

    code = run_command(path, "job-1")

    events = [e for e in map(parse, capsys.readouterr().out.splitlines()) if e]
    assert code == EXIT_SPEC_ERROR == 3
    assert events[-1]["event"] == "error"
    assert "colour: Extra inputs are not permitted" in events[-1]["message"]
    assert "epochs: Input should be greater than 0" in events[-1]["message"]


@pytest.mark.parametrize(
    "base", ["/models/tiny", "../teams/a/exports/code/1", "s3://bucket/teams/a", "~/m", "./m"]
)
def test_a_base_model_is_named_by_the_catalog_never_by_a_path(base: str) -> None:
    with pytest.raises(ValidationError, match="catalog"):
        TrainSpec.model_validate(BASE | {"base_model": base, "adapter_name": "a"})


def test_a_spec_the_platform_did_not_resolve_loads_no_base() -> None:
    spec = TrainSpec.model_validate(BASE | {"adapter_name": "a"})
    with pytest.raises(ModelError, match="catalog"):
        spec.base_location()
