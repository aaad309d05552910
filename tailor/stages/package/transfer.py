"""Transfer: re-home an adapter on another base of the same architecture and shapes.

A LoRA update only means something on the weights it was trained against, so the target
must be the same architecture with the same sizes (a sibling fine-tune of the same
pre-trained model). The new version records the new base and its parent; it carries no
metrics, since it must be evaluated on the new base.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tailor.stages.package.architecture import architecture_problems
from tailor.stages.package.artifacts import read_manifest, set_config_base, write_manifest
from tailor.stages.package.errors import IncompatibleBaseError, ShapeMismatchError
from tailor.stages.package.shapes import read_model_config
from tailor.stages.package.spec import CONFIG_FILE, WEIGHTS_FILE, AdapterManifest, TransferSpec
from tailor.stages.package.validate import validate_adapter_dir


def check_transfer(adapter_dir: Path, source_base_dir: Path, target_base_dir: Path) -> None:
    """Refuse a target whose architecture, sizes or adapted module shapes differ."""
    problems = architecture_problems(
        read_model_config(source_base_dir), read_model_config(target_base_dir)
    )
    if problems:
        raise IncompatibleBaseError(
            f"cannot transfer the adapter to {target_base_dir.name}: "
            + "; ".join(problems)
            + ". Transfer works only between bases of one architecture and size (e.g. sibling "
            "fine-tunes of one pre-trained model); train a new adapter on this base instead."
        )
    try:
        validate_adapter_dir(adapter_dir, target_base_dir)
    except ShapeMismatchError as exc:
        raise IncompatibleBaseError(
            f"cannot transfer the adapter to {target_base_dir.name}: {exc}"
        ) from exc


def transfer_adapter(
    adapter_dir: Path,
    source_base_dir: Path,
    target_base_dir: Path,
    spec: TransferSpec,
    parent: str,
    out_dir: Path,
) -> AdapterManifest:
    """Check the target, then write the adapter re-homed on it as a new version directory."""
    check_transfer(adapter_dir, source_base_dir, target_base_dir)
    source = read_manifest(adapter_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in (WEIGHTS_FILE, CONFIG_FILE):
        shutil.copyfile(adapter_dir / name, out_dir / name)
    set_config_base(out_dir, spec.target_base, spec.target_revision)
    manifest = AdapterManifest(
        base_model=spec.target_base,
        base_revision=spec.target_revision,
        dataset_id=source.dataset_id,
        origin="transferred",
        spec={
            "transfer": spec.model_dump(),
            "source_base": source.base_model,
            "source_revision": source.base_revision,
            "source_spec": source.spec,
        },
        parents=[parent],
    )
    write_manifest(out_dir, manifest)
    return manifest
