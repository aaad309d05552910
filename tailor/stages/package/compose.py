"""Combine adapters of one base into a new adapter with PEFT's `add_weighted_adapter`.

The three combination types, and the rank rule each one has:

- `cat` puts the inputs side by side: A = [w1*s1*A1; w2*s2*A2], B = [B1 B2]. The update
  is exactly w1*dW1 + w2*dW2, and the rank is the sum of the input ranks.
- `svd` forms that exact update per module and keeps its top `svd_rank` singular
  directions: any input ranks, the result rank is chosen (default: the largest input
  rank); it is exact when `svd_rank` reaches the sum of the ranks, an approximation below.
- `linear` adds the factors themselves: A = sum sqrt(w_i*s_i)*A_i, likewise B. Their
  shapes must agree, so every input needs the same rank; the product has cross terms
  (B1*A2, ...), so it equals the weighted sum only when a single input has weight.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tailor.stages.package.artifacts import read_manifest, set_config_base, write_manifest
from tailor.stages.package.errors import BaseMismatchError, InvalidAdapterError, RankRuleError
from tailor.stages.package.shapes import base_weight_shapes, find_module_weight
from tailor.stages.package.spec import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    AdapterManifest,
    CombinationType,
    CompositionSpec,
)
from tailor.stages.package.validate import ValidatedAdapter, validate_adapter_dir

# vLLM's largest supported max_lora_rank is 512; 256 keeps a composed adapter servable by
# pools configured for it, and rank is memory on every request.
MAX_RANK = 256
COMPOSED = "composed"


def max_rank(config: dict[str, Any]) -> int:
    """The largest rank any module of an adapter has (`r` or a `rank_pattern` entry)."""
    pattern = config.get("rank_pattern") or {}
    return max([int(config["r"]), *(int(r) for r in pattern.values())])


def result_rank(
    combination_type: CombinationType,
    configs: Mapping[str, dict[str, Any]],
    svd_rank: int | None,
    smallest_matrix: tuple[str, int],
) -> int:
    """The rank of the combined adapter, or RankRuleError saying which rule the inputs break."""
    ranks = {ref: max_rank(cfg) for ref, cfg in configs.items()}
    listed = ", ".join(f"{ref} has rank {r}" for ref, r in ranks.items())
    total = sum(ranks.values())
    if combination_type == "linear":
        patterns = {
            json.dumps(c.get("rank_pattern") or {}, sort_keys=True) for c in configs.values()
        }
        if len(set(ranks.values())) != 1 or len(patterns) != 1:
            raise RankRuleError(
                "'linear' adds the LoRA A and B matrices element-wise, so every input needs the "
                f"same rank, but {listed}. Use 'cat' (exact, rank {total}) or 'svd' with an "
                "svd_rank of your choice (any input ranks)."
            )
        return next(iter(ranks.values()))
    if combination_type == "cat":
        if total > MAX_RANK:
            raise RankRuleError(
                f"'cat' stacks the inputs, so its rank is the sum of theirs ({listed}: {total}), "
                f"above the limit of {MAX_RANK}. Use 'svd' with svd_rank <= {MAX_RANK}."
            )
        return total
    rank = svd_rank or max(ranks.values())
    module, limit = smallest_matrix
    if rank > min(limit, MAX_RANK):
        raise RankRuleError(
            f"'svd' keeps svd_rank singular directions of each combined update, so svd_rank must "
            f"be at most {min(limit, MAX_RANK)} ({module}, the smallest adapted matrix, has "
            f"min(out, in) = {limit}); got {rank}. svd_rank {min(total, limit)} already keeps "
            "the whole weighted sum."
        )
    return rank


def common_base(manifests: Mapping[str, AdapterManifest]) -> AdapterManifest:
    """The manifest of the first input, once every input is known to share its base model."""
    first_ref, first = next(iter(manifests.items()))
    for ref, manifest in manifests.items():
        if not manifest.same_base(first):
            raise BaseMismatchError(
                f"adapters of different base models cannot be combined: {first_ref} was trained "
                f"on {_base_label(first)} but {ref} on {_base_label(manifest)}. Transfer one of "
                "them to the other base first, or combine adapters of one base."
            )
    return first


def _base_label(manifest: AdapterManifest) -> str:
    return f"{manifest.base_model}@{manifest.base_revision or 'latest'}"


def smallest_matrix(checked: Mapping[str, ValidatedAdapter], base_dir: Path) -> tuple[str, int]:
    """The adapted module with the smallest min(out, in): the cap on an SVD rank."""
    shapes = base_weight_shapes(base_dir)
    best = ("", 1 << 62)
    for adapter in checked.values():
        for module in adapter.modules:
            found = find_module_weight(shapes, module)
            if found is not None and min(found[1]) < best[1]:
                best = (module, min(found[1]))
    return best


def _check_target_module_kinds(configs: Mapping[str, dict[str, Any]]) -> None:
    kinds = {ref: isinstance(cfg["target_modules"], str) for ref, cfg in configs.items()}
    if len(set(kinds.values())) > 1:
        regex = [ref for ref, is_str in kinds.items() if is_str]
        listed = [ref for ref, is_str in kinds.items() if not is_str]
        raise InvalidAdapterError(
            f"PEFT cannot combine adapters whose target_modules is a regex ({', '.join(regex)}) "
            f"with ones that list module names ({', '.join(listed)}); retrain one of them with "
            "the same kind of target_modules"
        )


def compose_adapters(
    spec: CompositionSpec, inputs: Mapping[str, Path], base_dir: Path, out_dir: Path
) -> AdapterManifest:
    """Combine the adapters `spec` names (their local directories in `inputs`) into `out_dir`."""
    refs = [a.ref for a in spec.adapters]
    missing = [ref for ref in refs if ref not in inputs]
    if missing:
        raise InvalidAdapterError(f"no adapter directory given for {', '.join(missing)}")
    manifests = {ref: read_manifest(inputs[ref]) for ref in refs}
    base = common_base(manifests)
    checked = {ref: validate_adapter_dir(inputs[ref], base_dir) for ref in refs}
    configs = {ref: checked[ref].config for ref in refs}
    _check_target_module_kinds(configs)
    rank = result_rank(
        spec.combination_type, configs, spec.svd_rank, smallest_matrix(checked, base_dir)
    )
    _combine_with_peft(spec, inputs, base_dir, out_dir)
    set_config_base(out_dir, base.base_model, base.base_revision)
    manifest = AdapterManifest(
        base_model=base.base_model,
        base_revision=base.base_revision,
        origin="composed",
        spec=spec.model_dump() | {"rank": rank},
        parents=refs,
    )
    write_manifest(out_dir, manifest)
    return manifest


def _combine_with_peft(
    spec: CompositionSpec, inputs: Mapping[str, Path], base_dir: Path, out_dir: Path
) -> None:
    """Load every input on the base, add the weighted adapter, save only the result."""
    from tailor.stages.package.loading import load_with_adapters

    # PEFT adapter names become module keys, which may not contain '.' or '@'.
    names = {f"input{i}": inputs[a.ref] for i, a in enumerate(spec.adapters)}
    model = load_with_adapters(base_dir, names)
    model.add_weighted_adapter(
        adapters=list(names),
        weights=[a.weight for a in spec.adapters],
        adapter_name=COMPOSED,
        combination_type=spec.combination_type,
        svd_rank=spec.svd_rank,
    )
    with tempfile.TemporaryDirectory(prefix="tailor-compose-") as tmp:
        model.save_pretrained(tmp, selected_adapters=[COMPOSED])
        saved = Path(tmp) / COMPOSED  # PEFT nests every adapter but "default" in a folder
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in (WEIGHTS_FILE, CONFIG_FILE):
            shutil.copyfile(saved / name, out_dir / name)
