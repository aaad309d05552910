"""Export: merge an adapter into its base and ship a standalone safetensors checkpoint.

The merge runs in float32 (so rounding comes only from the final cast) and the checkpoint
is saved in the base's own dtype, sharded by `max_shard_size`, with the base's tokenizer.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tailor.stages.package.artifacts import export_prefix, upload_dir
from tailor.stages.package.errors import ExportError, VersionNotFoundError
from tailor.stages.package.shapes import read_model_config
from tailor.stages.package.validate import validate_adapter_dir
from tailor.storage import ObjectStore

EXPORT_MANIFEST = "tailor_export.json"
MAX_LINK_EXPIRY_S = 7 * 24 * 3600  # S3 SigV4 presigned URLs live at most 7 days


@dataclass(frozen=True)
class MergedCheckpoint:
    """A merged export on local disk."""

    path: Path
    files: tuple[str, ...]
    shards: int
    dtype: str


def merge_adapter(
    base_dir: Path, adapter_dir: Path, out_dir: Path, *, max_shard_size: str = "5GB"
) -> MergedCheckpoint:
    """Merge the adapter into the base (`merge_and_unload`) and save model + tokenizer."""
    import torch
    from transformers import AutoTokenizer

    from tailor.stages.package.loading import load_with_adapters

    validate_adapter_dir(adapter_dir, base_dir)  # a clear error before PEFT's cryptic one
    try:
        tokenizer = AutoTokenizer.from_pretrained(base_dir)
    except (OSError, ValueError) as exc:
        raise ExportError(
            f"base model at {base_dir} has no loadable tokenizer ({exc}); a standalone export "
            "ships one, so save the tokenizer next to the base model"
        ) from exc
    config = read_model_config(base_dir)  # transformers 5 writes "dtype", 4.x "torch_dtype"
    dtype_name = str(config.get("dtype") or config.get("torch_dtype") or "float32")
    dtype = getattr(torch, dtype_name.removeprefix("torch."), None)
    if not isinstance(dtype, torch.dtype):
        raise ExportError(f"base config.json names an unknown dtype {dtype_name!r}")
    model = load_with_adapters(base_dir, {"default": adapter_dir})
    untie_adapted_head(model.get_base_model())
    merged = model.merge_and_unload()
    merged = merged.to(dtype)
    out_dir.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out_dir, max_shard_size=max_shard_size)
    tokenizer.save_pretrained(out_dir)
    files = tuple(sorted(p.name for p in out_dir.iterdir() if p.is_file()))
    shards = sum(name.endswith(".safetensors") for name in files)
    return MergedCheckpoint(path=out_dir, files=files, shards=shards, dtype=dtype_name)


def untie_adapted_head(model: Any) -> None:
    """Give an adapted output head its own copy of the weights it shares with the embedding.

    Merging LoRA into a head tied to the input embedding would change the embedding too, and
    the merged model would no longer compute what base + adapter computed.
    """
    import torch

    head, embedding = model.get_output_embeddings(), model.get_input_embeddings()
    layer = getattr(head, "base_layer", None)  # set by PEFT on an adapted module
    if layer is None or embedding is None or layer.weight is not embedding.weight:
        return
    layer.weight = torch.nn.Parameter(embedding.weight.detach().clone())
    model.config.tie_word_embeddings = False


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def upload_export(
    store: ObjectStore, team: str, name: str, version: int, checkpoint: MergedCheckpoint
) -> list[str]:
    """Upload a merged checkpoint under `teams/<team>/exports/<name>/<version>/`.

    Its `tailor_export.json` (file hashes, adapter, time) goes last and marks it complete.
    """
    record = {
        "adapter": f"{name}@{version}",
        "dtype": checkpoint.dtype,
        "files": {f: _sha256(checkpoint.path / f) for f in checkpoint.files},
        "created_at": datetime.now(UTC).isoformat(),
    }
    (checkpoint.path / EXPORT_MANIFEST).write_text(json.dumps(record, indent=2) + "\n")
    prefix = export_prefix(team, name, version)
    store.delete_prefix(prefix)  # a re-export replaces a partial or older one whole
    return upload_dir(store, checkpoint.path, prefix, last=EXPORT_MANIFEST)


def export_links(
    store: ObjectStore, team: str, name: str, version: int, expires_s: int = 3600
) -> dict[str, str]:
    """Presigned download URLs, by file name, for one team's complete export."""
    if not 1 <= expires_s <= MAX_LINK_EXPIRY_S:
        raise ExportError(f"link expiry must be 1..{MAX_LINK_EXPIRY_S} seconds, got {expires_s}")
    prefix = export_prefix(team, name, version)
    if not store.exists(prefix + EXPORT_MANIFEST):
        raise VersionNotFoundError(
            f"no finished export of adapter {name}@{version} for team {team}; export it first"
        )
    return {key[len(prefix) :]: store.presign_get(key, expires_s) for key in store.list(prefix)}
