"""The finished product in the store: adapter files plus `tailor.json` (spec, lineage, metrics).

`tailor.json` is the registry's `AdapterManifest` (tailor/stages/package/spec.py) — base model,
dataset, spec, summary metrics, checksum and size — plus what only training knows: the
kind of artefact, the full result and the per-step history. It is uploaded last, so a
version whose `tailor.json` exists is complete.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import tailor
from tailor.stages.package.artifacts import dir_checksum, dir_size
from tailor.stages.package.spec import CONFIG_FILE, MANIFEST_FILE, WEIGHTS_FILE, AdapterManifest
from tailor.stages.train.spec import TrainResult, TrainSpec
from tailor.storage import ObjectStore

ADAPTER_FILES = (WEIGHTS_FILE, CONFIG_FILE)
MANIFEST = MANIFEST_FILE
# Summary figures copied into the manifest's `metrics` (numbers only, as the registry wants).
_SUMMARY = (
    "final_loss",
    "eval_loss_before",
    "eval_loss_after",
    "tokens_per_s",
    "tokens_seen",
    "steps",
    "trainable_params",
    "total_params",
    "peak_memory_bytes",
    "padding_fraction",
    "duration_s",
)


def summary_metrics(result: TrainResult) -> dict[str, float]:
    """The result's headline numbers (those that were measured)."""
    values = result.model_dump(include=set(_SUMMARY))
    return {k: float(v) for k, v in values.items() if v is not None}


def tailor_manifest(
    spec: TrainSpec,
    result: TrainResult,
    job_id: str,
    dataset_stats: dict[str, Any],
    local_dir: Path,
) -> dict[str, Any]:
    """What `tailor.json` says about the files in local_dir: how to load them, where from."""
    manifest = AdapterManifest(
        base_model=spec.base_model,
        base_revision=spec.base_revision,
        dataset_id=spec.dataset_id,
        origin="trained",
        # Where the base's files are is the platform's business, not the adapter's record.
        spec=spec.model_dump(mode="json", exclude={"base_source"}),
        metrics=summary_metrics(result),
        checksum=dir_checksum(local_dir),
        size_bytes=dir_size(local_dir),
    )
    return manifest.model_dump(mode="json") | {
        "kind": "full" if result.method == "full" else "lora",
        "adapter": {"name": spec.adapter_name, "version": spec.adapter_version, "team": spec.team},
        "dataset_stats": dataset_stats,
        "lineage": {
            "job_id": job_id,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "tailor_version": tailor.__version__,
        },
        "result": result.model_dump(mode="json", exclude={"metrics"}),
        "history": result.metrics,
    }


def store_artifact(
    store: ObjectStore,
    spec: TrainSpec,
    result: TrainResult,
    job_id: str,
    dataset_stats: dict[str, Any],
    local_dir: Path,
) -> list[str]:
    """Upload every file of local_dir under the adapter prefix, then tailor.json; the keys."""
    (local_dir / "README.md").unlink(missing_ok=True)  # peft's empty model card
    manifest = tailor_manifest(spec, result, job_id, dataset_stats, local_dir)
    prefix = spec.adapter_prefix()
    keys = []
    for path in sorted(p for p in local_dir.rglob("*") if p.is_file()):
        key = prefix + path.relative_to(local_dir).as_posix()
        store.upload_file(path, key)
        keys.append(key)
    store.put_bytes(prefix + MANIFEST, json.dumps(manifest, indent=2).encode())
    return [*keys, prefix + MANIFEST]
