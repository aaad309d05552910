"""CRDs generated from the pydantic specs: structural, validating, and the same in the chart."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import BaseModel
from tailor_operator import crds
from tailor_operator.resources import FineTuneJobSpec

from tests.charts.validation import crd_to_json_schema, validate_manifest
from tests.operator.conftest import ROOT, finetune_spec

CHART_CRDS = ROOT / "charts" / "tailor" / "files" / "crds"


def _walk(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    nodes = [(path, schema)]
    for name, sub in (schema.get("properties") or {}).items():
        nodes += _walk(sub, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            nodes += _walk(schema[key], f"{path}[{key}]")
    return nodes


def _spec_schema(kind: str) -> dict[str, Any]:
    crd = next(c for c in crds.generate_crds() if c["spec"]["names"]["kind"] == kind)
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_every_crd_is_a_valid_kubernetes_manifest() -> None:
    for crd in crds.generate_crds():
        validate_manifest(crd)


def test_schemas_are_structural() -> None:
    for crd in crds.generate_crds():
        for path, node in _walk(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]):
            assert "type" in node, f"{crd['metadata']['name']}{path} has no type"
            assert not {"$ref", "anyOf", "allOf", "oneOf", "$defs"} & node.keys(), path
            assert not ("properties" in node and "additionalProperties" in node), path


def test_optional_fields_are_nullable_and_bounds_are_kept() -> None:
    train = _spec_schema("FineTuneJob")["properties"]["spec"]["properties"]["train"]

    assert train["properties"]["base_revision"]["nullable"] is True
    learning_rate = train["properties"]["learning_rate"]
    assert (learning_rate["minimum"], learning_rate["exclusiveMinimum"]) == (0.0, True)
    assert train["properties"]["method"]["enum"] == ["lora", "qlora", "full"]


def test_the_crd_schema_accepts_what_the_spec_model_accepts() -> None:
    schema = crd_to_json_schema(_spec_schema("FineTuneJob"))
    body = {
        "apiVersion": "tailor.dev/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": "ft"},
        "spec": FineTuneJobSpec.model_validate(finetune_spec()).model_dump(mode="json"),
    }

    jsonschema.validate(body, schema)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"lora_r": 0}, "lora_r"),
        ({"method": "dora"}, "method"),
        ({"learning_rat": 0.1}, "learning_rat"),
    ],
)
def test_the_crd_schema_rejects_what_the_spec_model_rejects(
    change: dict[str, Any], field: str
) -> None:
    schema = crd_to_json_schema(_spec_schema("FineTuneJob"))
    spec = finetune_spec()
    spec["train"].update(change)
    body = {"apiVersion": "tailor.dev/v1alpha1", "kind": "FineTuneJob", "spec": spec}

    with pytest.raises(jsonschema.ValidationError, match=field):
        jsonschema.validate(body, schema)


def test_a_union_of_types_is_refused_rather_than_dropped() -> None:
    class Loose(BaseModel):
        value: int | str

    with pytest.raises(crds.SchemaNotStructural, match=r"Loose\.value"):
        crds.structural_schema(Loose)


def test_status_subresource_and_printer_columns() -> None:
    version = crds.crd(crds.FINETUNEJOB)["spec"]["versions"][0]

    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["Phase"] == ".status.phase"


def test_the_chart_carries_exactly_the_generated_crds() -> None:
    generated = {crds.file_name(c): crds.render(c) for c in crds.generate_crds()}

    in_chart = {p.name: p.read_text() for p in CHART_CRDS.glob("*.yaml")}

    assert in_chart == generated, "run: python -m tailor_operator.crds --write " + str(
        CHART_CRDS.relative_to(ROOT)
    )


def test_the_check_command_reports_stale_files(tmp_path: Path) -> None:
    crds.main(["--write", str(tmp_path)])
    stale = tmp_path / "teams.tailor.dev.yaml"
    stale.write_text(stale.read_text().replace("Cluster", "Namespaced"))

    fresh = subprocess.run(
        [sys.executable, "-m", "tailor_operator.crds", "--check", str(CHART_CRDS)],
        capture_output=True,
        env={"PYTHONPATH": str(ROOT / "operator") + ":" + str(ROOT)},
    )
    assert fresh.returncode == 0, fresh.stdout
    assert crds.main(["--check", str(tmp_path)]) == 1
