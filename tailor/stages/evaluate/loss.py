"""Eval loss and perplexity of a base model, with and without its LoRA adapter.

One copy of the base is loaded; the adapter is switched off (PEFT's `disable_adapter`)
to score the base, so both are measured on exactly the same tokens.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from tailor.stages.evaluate.scores import LossResult
from tailor.stages.serve.model_files import fetch_model
from tailor.storage import ObjectStore

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
_BATCH = 8


def download_adapter(store: ObjectStore, prefix: str, dest: Path) -> Path:
    """Fetch an adapter's files from the object store into dest."""
    prefix = prefix.rstrip("/")
    for name in ADAPTER_FILES:
        store.download_file(f"{prefix}/{name}", dest / name)
    return dest


def windows(ids: Sequence[int], length: int) -> list[list[int]]:
    """Consecutive windows of at most `length` tokens (each predicts all but its first)."""
    return [list(ids[i : i + length]) for i in range(0, len(ids) - 1, length - 1)]


class LossScorer:
    """Scores held-out text under the base model and, if given, base + adapter."""

    def __init__(
        self,
        base_ref: str,
        store: ObjectStore,
        adapter: str | None = None,
        *,
        loader: Callable[[str], Path] = fetch_model,
        device: str = "cpu",
    ) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = loader(base_ref)
        self.tokenizer: Any = AutoTokenizer.from_pretrained(path)
        model: Any = AutoModelForCausalLM.from_pretrained(path)
        self._workdir = Path(tempfile.mkdtemp(prefix="tailor-eval-loss-"))
        if adapter is not None:
            from peft import PeftModel

            files = download_adapter(store, adapter, self._workdir / "adapter")
            model = PeftModel.from_pretrained(model, str(files), is_trainable=False)
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        cfg = self.model.config
        self.context = int(getattr(cfg, "n_positions", None) or cfg.max_position_embeddings)
        self.has_adapter = adapter is not None

    def score(self, texts: Sequence[str], *, with_adapter: bool) -> LossResult:
        """Mean next-token loss over the texts (each ends with EOS, as in training)."""
        if with_adapter and not self.has_adapter:
            raise ValueError("no adapter was loaded to score with")
        eos = self.tokenizer.eos_token_id
        chunks: list[list[int]] = []
        for text in texts:
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"] + [eos]
            chunks.extend(windows(ids, self.context))
        total, count = 0.0, 0
        with torch.inference_mode(), self._adapter(with_adapter):
            for start in range(0, len(chunks), _BATCH):
                batch_loss, batch_tokens = self._batch_loss(chunks[start : start + _BATCH])
                total, count = total + batch_loss, count + batch_tokens
        return LossResult(loss=total / count if count else float("nan"), tokens=count)

    def close(self) -> None:
        """Remove the downloaded adapter files."""
        shutil.rmtree(self._workdir, ignore_errors=True)

    @contextlib.contextmanager
    def _adapter(self, enabled: bool) -> Iterator[None]:
        if self.has_adapter and not enabled:
            with self.model.disable_adapter():
                yield
        else:
            yield

    def _batch_loss(self, chunks: list[list[int]]) -> tuple[float, int]:
        width = max(len(c) for c in chunks)
        ids = torch.zeros((len(chunks), width), dtype=torch.long)
        mask = torch.zeros((len(chunks), width), dtype=torch.long)
        for row, chunk in enumerate(chunks):
            ids[row, : len(chunk)] = torch.tensor(chunk)
            mask[row, : len(chunk)] = 1
        logits = self.model(
            input_ids=ids.to(self.device), attention_mask=mask.to(self.device)
        ).logits.float()
        labels = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100).to(self.device)
        loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]),
            labels.reshape(-1),
            ignore_index=-100,
            reduction="sum",
        )
        return float(loss), int((labels != -100).sum())
