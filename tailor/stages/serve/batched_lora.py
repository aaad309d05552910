"""Many LoRA adapters in one batched forward, the way punica, S-LoRA and vLLM serve them.

Every target layer (Linear or transformers' Conv1D) is wrapped once. The wrapper keeps the
LoRA weights of all hot adapters stacked in two tensors, one slot per adapter: `a[slot]` is
A transposed (`[in, rank]`) and `b[slot]` is B transposed with the adapter's scaling folded in
(`[rank, out]`). Ranks are padded with zeros to the largest hot rank, which adds exactly zero.
Slot 0 stays all zeros: rows of the base model use it. A forward gathers each row's slot and
applies `x @ a[slot] @ b[slot]` with two `bmm`s, so a batch costs the same whatever number of
adapters it mixes (PEFT's `adapter_names` loops over the adapters in every layer instead).

Adapters this path cannot reproduce exactly (DoRA, LoRA biases, trainable extra modules,
per-module alphas, embedding or convolution targets) are refused by `unsupported`, and the
caller serves them with PEFT.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
# PEFT's saved names: base_model.model.<module path>.lora_A.weight (adapter name stripped).
_KEY = re.compile(r"^base_model\.model\.(?P<path>.+)\.lora_(?P<ab>[AB])\.weight$")
# Config fields that change the forward beyond x @ A.T @ B.T * scaling: leave them to PEFT.
_FALLBACK_FIELDS = {
    "use_dora": "DoRA",
    "lora_bias": "LoRA bias",
    "modules_to_save": "modules_to_save",
    "alpha_pattern": "alpha_pattern",
    "layer_replication": "layer_replication",
    "target_parameters": "target_parameters",
    "trainable_token_indices": "trainable_token_indices",
    "use_qalora": "QALoRA",
    "alora_invocation_tokens": "aLoRA",
}


class Router:
    """Which slot each row of the running forward uses (set by `StackedLora.route`)."""

    def __init__(self) -> None:
        self.rows: torch.Tensor | None = None  # [batch] slot per row, when rows differ
        self.single: int = 0  # the one slot every row uses, when they agree (0: base)


class SlotLinear(nn.Module):
    """A target layer plus the stacked LoRA deltas of every hot adapter."""

    def __init__(self, inner: nn.Module, router: Router, in_features: int, out_features: int):
        super().__init__()
        self.inner = inner
        self.router = router
        self.in_features = in_features
        self.out_features = out_features
        weight = _weight(inner)
        # Buffers, not parameters: serving never trains them, and state_dict stays the base's.
        self.register_buffer("a", weight.new_zeros((1, in_features, 0)), persistent=False)
        self.register_buffer("b", weight.new_zeros((1, 0, out_features)), persistent=False)
        self.a: torch.Tensor
        self.b: torch.Tensor

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        """The inner layer's output plus each row's own adapter delta."""
        out = self.inner(x, *args, **kwargs)
        router = self.router
        if router.rows is None:
            slot = router.single
            if slot == 0 or slot >= self.a.shape[0]:
                return out  # base rows, or an adapter that does not target this layer
            return out + (x @ self.a[slot]) @ self.b[slot]
        rows = x.reshape(x.shape[0], -1, self.in_features)
        a = self.a.index_select(0, router.rows)
        b = self.b.index_select(0, router.rows)
        return out + torch.bmm(torch.bmm(rows, a), b).view(out.shape)

    def ensure(self, slots: int, rank: int) -> None:
        """Grow the stacks to hold `slots` slots of `rank` (new room is zeros)."""
        have_slots, have_rank = self.a.shape[0], self.a.shape[2]
        if slots <= have_slots and rank <= have_rank:
            return
        slots, rank = max(slots, have_slots), max(rank, have_rank)
        a = self.a.new_zeros((slots, self.in_features, rank))
        b = self.b.new_zeros((slots, rank, self.out_features))
        a[:have_slots, :, :have_rank] = self.a
        b[:have_slots, :have_rank, :] = self.b
        self.a, self.b = a, b

    def put(self, slot: int, lora_a: torch.Tensor, lora_b: torch.Tensor, scaling: float) -> None:
        """Write one adapter's A ([r, in]) and B ([out, r]) into `slot`."""
        rank = lora_a.shape[0]
        self.ensure(slot + 1, rank)
        self.clear(slot)
        self.a[slot, :, :rank] = lora_a.t().to(self.a)
        self.b[slot, :rank, :] = (lora_b.t() * scaling).to(self.b)

    def clear(self, slot: int) -> None:
        """Zero `slot` so that a row routed to it gets the base layer's output."""
        if slot < self.a.shape[0]:
            self.a[slot].zero_()
            self.b[slot].zero_()


def _weight(module: nn.Module) -> torch.Tensor:
    base = getattr(module, "base_layer", module)  # a PEFT layer wraps the base one
    weight = base.weight
    assert isinstance(weight, torch.Tensor)
    return weight


def _features(module: nn.Module) -> tuple[int, int] | None:
    """(in, out) of a Linear or Conv1D layer (Conv1D stores its weight fan-in first)."""
    from transformers.pytorch_utils import Conv1D

    base = getattr(module, "base_layer", module)
    if isinstance(base, nn.Linear):
        return base.in_features, base.out_features
    if isinstance(base, Conv1D):
        rows, cols = base.weight.shape
        return int(rows), int(cols)
    return None


def read_config(path: Path) -> dict[str, Any]:
    """The adapter's adapter_config.json."""
    config: dict[str, Any] = json.loads((path / CONFIG_FILE).read_text())
    return config


def unsupported(config: dict[str, Any]) -> str | None:
    """Why an adapter config needs PEFT's own forward, or None if the stacked path is exact."""
    if str(config.get("peft_type", "LORA")).upper() != "LORA":
        return f"peft_type {config.get('peft_type')!r}"
    for name, what in _FALLBACK_FIELDS.items():
        if config.get(name):
            return what
    return None


class StackedLora:
    """Slot-indexed LoRA weights for every target layer of one model."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.router = Router()
        self.layers: dict[str, SlotLinear] = {}
        self._free: list[int] = []
        self._next = 1  # slot 0 is the base model's zeros
        self._capacity = 1
        self._attached = True

    def load(self, path: Path) -> int:
        """Load the adapter saved under `path` into a free slot and return the slot.

        Raises ValueError (taking no slot) when the adapter needs PEFT's forward.
        """
        from safetensors.torch import load_file

        config = read_config(path)
        reason = unsupported(config)
        if reason is not None:
            raise ValueError(f"{reason} needs PEFT's forward")
        pairs = self._pairs(load_file(str(path / WEIGHTS_FILE)))
        # Wrap (or find) every target first: an unknown layer refuses the adapter before any
        # slot is written. A layer wrapped for nothing only carries zeros.
        layers = {p: self._layer(p) for p in pairs}
        slot = self._free.pop() if self._free else self._take_new()
        alpha = float(config.get("lora_alpha", 8))
        rslora = bool(config.get("use_rslora", False))
        for module_path, (lora_a, lora_b) in pairs.items():
            rank = lora_a.shape[0]
            scaling = alpha / math.sqrt(rank) if rslora else alpha / rank
            layers[module_path].put(slot, lora_a, lora_b, scaling)
        return slot

    def _take_new(self) -> int:
        slot = self._next
        self._next += 1
        if slot >= self._capacity:
            # Grow every layer's stacks together (a quarter at a time, so loading n adapters
            # copies O(n) slots, not O(n^2)), keeping slot indices valid in all of them.
            self._capacity = max(slot + 1, math.ceil(self._capacity * 1.25))
            for layer in self.layers.values():
                layer.ensure(self._capacity, 0)
        return slot

    def unload(self, slot: int) -> None:
        """Forget the adapter in `slot`; the slot is reused by the next load."""
        for layer in self.layers.values():
            layer.clear(slot)
        self._free.append(slot)

    @property
    def nbytes(self) -> int:
        """Bytes held by the stacks (free slots and rank padding included)."""
        return sum(
            layer.a.nelement() * layer.a.element_size()
            + layer.b.nelement() * layer.b.element_size()
            for layer in self.layers.values()
        )

    @contextmanager
    def route(self, slots: list[int]) -> Iterator[None]:
        """Run the forward inside with row i of the batch on adapter `slots[i]`."""
        router = self.router
        if all(s == slots[0] for s in slots):
            router.single = slots[0]
        else:
            device = next(iter(self.layers.values())).a.device if self.layers else None
            router.rows = torch.tensor(slots, dtype=torch.long, device=device)
        try:
            yield
        finally:
            router.rows, router.single = None, 0

    @contextmanager
    def detached(self) -> Iterator[None]:
        """The model with its original layers back in place (PEFT injects into those)."""
        for module_path, layer in self.layers.items():
            _set_module(self.model, module_path, layer.inner)
        self._attached = False
        try:
            yield
        finally:
            for module_path, layer in self.layers.items():
                layer.inner = _get_module(self.model, module_path)
                _set_module(self.model, module_path, layer)
            self._attached = True

    def _pairs(self, tensors: dict[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, ...]]:
        found: dict[str, dict[str, torch.Tensor]] = {}
        for key, tensor in tensors.items():
            match = _KEY.match(key)
            if match is None:
                raise ValueError(f"weight {key!r} is not a LoRA A/B matrix")
            found.setdefault(match["path"], {})[match["ab"]] = tensor
        pairs: dict[str, tuple[torch.Tensor, ...]] = {}
        for module_path, ab in found.items():
            if set(ab) != {"A", "B"} or ab["A"].shape[0] != ab["B"].shape[1]:
                raise ValueError(f"{module_path}: LoRA A and B do not pair up")
            pairs[module_path] = (ab["A"], ab["B"])
        return pairs

    def _layer(self, module_path: str) -> SlotLinear:
        """The wrapper at `module_path`, wrapping the layer there on first use."""
        layer = self.layers.get(module_path)
        if layer is not None:
            return layer
        assert self._attached, "load adapters with the wrappers attached"
        try:
            inner = _get_module(self.model, module_path)
        except AttributeError:
            raise ValueError(f"the base model has no layer {module_path!r}") from None
        features = _features(inner)
        if features is None:
            raise ValueError(f"{module_path}: {type(inner).__name__} is not Linear or Conv1D")
        layer = SlotLinear(inner, self.router, *features)
        layer.ensure(self._capacity, 0)
        _set_module(self.model, module_path, layer)
        self.layers[module_path] = layer
        return layer


def _get_module(root: nn.Module, dotted: str) -> nn.Module:
    return root.get_submodule(dotted)


def _set_module(root: nn.Module, dotted: str, module: nn.Module) -> None:
    parent, _, name = dotted.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, module)
