"""Validate an adapter trained elsewhere: LoRA config, safetensors only, shapes fit the base."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tailor.stages.package.archive import extract_archive, is_archive, refuse_pickles
from tailor.stages.package.artifacts import set_config_base, write_manifest
from tailor.stages.package.errors import InvalidAdapterError, ShapeMismatchError
from tailor.stages.package.headers import TensorInfo, read_header
from tailor.stages.package.patterns import (
    canonical_config,
    check_patterns,
    is_module_name,
    pattern_value,
)
from tailor.stages.package.shapes import Shapes, base_weight_shapes, find_module_weight
from tailor.stages.package.spec import CONFIG_FILE, WEIGHTS_FILE, AdapterManifest

FLOAT_DTYPES = {"F16", "BF16", "F32", "F64"}
LORA_KEY = re.compile(
    r"^(?:base_model\.model\.)?(?P<module>.+)\."
    r"(?:(?P<linear>lora_[AB])\.weight|(?P<embedding>lora_embedding_[AB]))$"
)
MAX_REPORTED = 5


@dataclass(frozen=True)
class LoraPair:
    """The two factors of one adapted module, as the safetensors header names them."""

    module: str
    embedding: bool
    a: TensorInfo | None = None
    b: TensorInfo | None = None


@dataclass(frozen=True)
class ValidatedAdapter:
    """An adapter directory that passed every check, and what it adapts."""

    path: Path
    config: dict[str, Any]
    rank: int
    modules: tuple[str, ...]


def read_lora_config(adapter_dir: Path) -> dict[str, Any]:
    """`adapter_config.json`, checked to be a plain LoRA config that PEFT accepts."""
    path = adapter_dir / CONFIG_FILE
    if not path.is_file():
        raise InvalidAdapterError(
            f"the adapter has no {CONFIG_FILE}; a PEFT adapter directory holds {CONFIG_FILE} and "
            f"{WEIGHTS_FILE} (written by `model.save_pretrained(dir)`)"
        )
    try:
        config = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidAdapterError(f"{CONFIG_FILE} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise InvalidAdapterError(f"{CONFIG_FILE} must be a JSON object")
    _check_plain_lora(config)
    check_patterns(config)
    _check_peft_accepts(config)
    return config


def _check_plain_lora(config: dict[str, Any]) -> None:
    """Only plain LoRA serves everywhere Tailor serves (its engine and vLLM)."""
    peft_type = str(config.get("peft_type", "")).upper()
    if peft_type != "LORA":
        raise InvalidAdapterError(
            f"{CONFIG_FILE} has peft_type {config.get('peft_type')!r}; only LoRA adapters "
            "(peft_type 'LORA') can be imported"
        )
    rank = config.get("r")
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
        raise InvalidAdapterError(f"{CONFIG_FILE}: r must be a positive integer, got {rank!r}")
    alpha = config.get("lora_alpha")
    if not isinstance(alpha, int | float) or isinstance(alpha, bool) or alpha <= 0:
        raise InvalidAdapterError(f"{CONFIG_FILE}: lora_alpha must be positive, got {alpha!r}")
    targets = config.get("target_modules")
    if not targets or not isinstance(targets, str | list):
        raise InvalidAdapterError(f"{CONFIG_FILE}: target_modules must name the adapted modules")
    unsupported = {
        "use_dora": "DoRA",
        "modules_to_save": "modules_to_save (full copies of base modules)",
        "target_parameters": "target_parameters",
        "lora_bias": "LoRA bias terms",
    }
    for key, what in unsupported.items():
        if config.get(key):
            raise InvalidAdapterError(
                f"{CONFIG_FILE} sets {key}: {what} is not supported; import a plain LoRA adapter"
            )
    if config.get("bias", "none") != "none":
        raise InvalidAdapterError(
            f"{CONFIG_FILE} sets bias={config['bias']!r}: trained biases are not supported; "
            "import a LoRA adapter trained with bias='none'"
        )


def _check_peft_accepts(config: dict[str, Any]) -> None:
    """Build PEFT's own LoraConfig from the known fields, so PEFT's checks run too."""
    from peft import LoraConfig

    known = {f.name for f in dataclasses.fields(LoraConfig)}
    try:
        LoraConfig(**{k: v for k, v in config.items() if k in known and k != "peft_type"})
    except (TypeError, ValueError) as exc:
        raise InvalidAdapterError(f"PEFT rejects {CONFIG_FILE}: {exc}") from exc


def lora_pairs(tensors: dict[str, TensorInfo]) -> dict[str, LoraPair]:
    """Group header tensors into (A, B) per module; anything else is refused by name."""
    pairs: dict[str, LoraPair] = {}
    for name, info in sorted(tensors.items()):
        match = LORA_KEY.match(name)
        if not match:
            raise InvalidAdapterError(
                f"{WEIGHTS_FILE}: tensor {name!r} is not a LoRA factor (…lora_A.weight, "
                "…lora_B.weight); import a plain LoRA adapter"
            )
        if info.dtype not in FLOAT_DTYPES:
            raise InvalidAdapterError(
                f"{WEIGHTS_FILE}: tensor {name!r} has dtype {info.dtype}; LoRA factors are "
                "floating point (F16, BF16, F32)"
            )
        module, factor = match["module"], match["linear"] or match["embedding"]
        if not is_module_name(module):
            raise InvalidAdapterError(
                f"{WEIGHTS_FILE}: tensor {name!r} does not name a module (dotted parts of "
                "letters, digits and underscores)"
            )
        pair = pairs.get(module, LoraPair(module=module, embedding=bool(match["embedding"])))
        if factor.endswith("A"):
            pairs[module] = dataclasses.replace(pair, a=info)
        else:
            pairs[module] = dataclasses.replace(pair, b=info)
    for pair in pairs.values():
        if pair.a is None or pair.b is None:
            have, miss = ("lora_A", "lora_B") if pair.b is None else ("lora_B", "lora_A")
            raise InvalidAdapterError(
                f"{WEIGHTS_FILE}: module {pair.module!r} has {have} but no {miss}"
            )
    if not pairs:
        raise InvalidAdapterError(f"{WEIGHTS_FILE} holds no LoRA tensors")
    return pairs


def module_rank(config: dict[str, Any], module: str) -> int:
    """The rank a module has: the first `rank_pattern` key matching it (a glob), else `r`."""
    return int(pattern_value(config.get("rank_pattern") or {}, module, config["r"]))


def shape_problems(config: dict[str, Any], pairs: dict[str, LoraPair], base: Shapes) -> list[str]:
    """Every way the LoRA factors fail to fit the base: A is rxin, B is outxr."""
    problems: list[str] = []
    fan_in_fan_out = bool(config.get("fan_in_fan_out"))
    for module, pair in sorted(pairs.items()):
        if pair.a is None or pair.b is None:
            continue  # lora_pairs already refused half pairs
        found = find_module_weight(base, module)
        if found is None:
            problems.append(f"module {module!r} has no weight in the base model")
            continue
        weight_name, shape = found
        if len(shape) != 2:
            problems.append(f"module {module!r}: base {weight_name} is {shape}, not a matrix")
            continue
        rank = module_rank(config, module)
        if pair.embedding:  # Embedding(num, dim): A is rxnum, B is dimxr
            want_a, want_b = (rank, shape[0]), (shape[1], rank)
        else:  # Linear weight is outxin; Conv1D (fan_in_fan_out) stores inxout
            out_f, in_f = (shape[1], shape[0]) if fan_in_fan_out else shape
            want_a, want_b = (rank, in_f), (out_f, rank)
        for side, info, want in (("A", pair.a, want_a), ("B", pair.b, want_b)):
            if info.shape != want:
                problems.append(
                    f"{module}.lora_{side} is {info.shape} but must be {want} "
                    f"(base {weight_name} is {shape}, rank {rank})"
                )
    return problems


def validate_adapter_dir(adapter_dir: Path, base_dir: Path) -> ValidatedAdapter:
    """Check an adapter directory against the base model in `base_dir`; raise on the first fault."""
    refuse_pickles(adapter_dir)
    config = read_lora_config(adapter_dir)
    weights = adapter_dir / WEIGHTS_FILE
    if not weights.is_file():
        raise InvalidAdapterError(f"the adapter has no {WEIGHTS_FILE}; upload it too")
    pairs = lora_pairs(read_header(weights))
    problems = shape_problems(config, pairs, base_weight_shapes(base_dir))
    if problems:
        more = f" (and {len(problems) - MAX_REPORTED} more)" if len(problems) > MAX_REPORTED else ""
        raise ShapeMismatchError(
            f"the adapter does not fit base model {base_dir.name}: "
            + "; ".join(problems[:MAX_REPORTED])
            + more
            + ". Was it trained on a different base?"
        )
    return ValidatedAdapter(
        path=adapter_dir,
        config=canonical_config(config, pairs),
        rank=int(config["r"]),
        modules=tuple(sorted(pairs)),
    )


def write_canonical_config(adapter_dir: Path) -> None:
    """Rewrite an adapter directory's config with its patterns spelled as module names.

    For versions stored before imports were made canonical: PEFT must not meet their keys.
    """
    config = read_lora_config(adapter_dir)
    pairs = lora_pairs(read_header(adapter_dir / WEIGHTS_FILE))
    (adapter_dir / CONFIG_FILE).write_text(json.dumps(canonical_config(config, pairs), indent=2))


def validate_upload(upload: Path, base_dir: Path, work_dir: Path) -> ValidatedAdapter:
    """Validate an uploaded directory, tar or zip (unpacked safely under `work_dir`)."""
    if upload.is_dir():
        return validate_adapter_dir(upload, base_dir)
    if is_archive(upload):
        return validate_adapter_dir(extract_archive(upload, work_dir / "unpacked"), base_dir)
    if upload.is_file():
        # A lone weights file: judge its bytes first so a pickle gets the pickle message.
        read_header(upload)
        raise InvalidAdapterError(
            f"{upload.name} alone is not an adapter: upload a directory, tar or zip holding "
            f"{WEIGHTS_FILE} and {CONFIG_FILE}"
        )
    raise InvalidAdapterError(f"upload {upload} does not exist")


def import_adapter(
    upload: Path,
    base_dir: Path,
    out_dir: Path,
    *,
    base_model: str,
    base_revision: str | None = None,
    work_dir: Path,
) -> AdapterManifest:
    """Validate an upload; write a clean version directory (weights, config, manifest)."""
    checked = validate_upload(upload, base_dir, work_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(checked.path / WEIGHTS_FILE, out_dir / WEIGHTS_FILE)
    # The canonical config: what PEFT and every server load later names modules, not patterns.
    (out_dir / CONFIG_FILE).write_text(json.dumps(checked.config, indent=2))
    set_config_base(out_dir, base_model, base_revision)
    manifest = AdapterManifest(
        base_model=base_model,
        base_revision=base_revision,
        origin="imported",
        spec={
            "source": upload.name,
            "trained_on": checked.config.get("base_model_name_or_path"),
            "rank": checked.rank,
            "target_modules": checked.config["target_modules"],
        },
    )
    write_manifest(out_dir, manifest)
    return manifest
