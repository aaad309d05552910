"""Hot LoRA adapters on one base model: fetched from the object store on first use, kept in an
LRU within a memory budget, evicted when cold. Only the engine's worker thread touches the
model; downloads run beside it so a slow store never stalls generation.

Adapters live in the stacked slots of `StackedLora` (one batched LoRA op per layer whatever
the mix of adapters in a batch). An adapter that path cannot reproduce exactly (DoRA, ...) is
loaded into PEFT instead and its rows go through PEFT's `adapter_names` forward, in the same
batch. `backend="peft"` sends every adapter to PEFT (the benchmark's baseline).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tailor.stages.serve.batched_lora import StackedLora, read_config, unsupported
from tailor.storage import ObjectStore, StoreError, check_key

log = logging.getLogger(__name__)
LoraBackend = Literal["batched", "peft"]

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
BASE = "__base__"  # PEFT's name for "no adapter" in a mixed batch

AdapterListener = Callable[[str, str], None]  # (event: "load" | "evict", adapter key)


def normalize_key(key: str) -> str:
    """An adapter key is its object-store prefix, written without a trailing slash."""
    return check_key(key.strip().rstrip("/"))


# A key may end in `@<version id>`: a team deleted and re-created under the same slug
# stores its versions under the same prefixes again, and a long-running gateway must not
# take the new version for the old one it still holds.
def store_prefix(key: str) -> str:
    """The object-store prefix an adapter key names."""
    return check_key(key.partition("@")[0])


class AdapterNotFoundError(LookupError):
    """No adapter files under the key the registry named."""


@dataclass
class _Hot:
    name: str  # how running sequences name it: "slotN" (stacked) or "loraN" (in PEFT)
    nbytes: int
    slot: int = 0  # its stacked slot; 0 when PEFT serves it


class LoraCache:
    """The adapters loaded into one model, least recently used first."""

    def __init__(
        self,
        store: ObjectStore,
        budget_bytes: int,
        workdir: Path,
        backend: LoraBackend = "batched",
    ) -> None:
        self.store = store
        self.budget_bytes = budget_bytes
        self.workdir = workdir
        self.backend = backend
        self.model: Any = None  # what the engine calls: the base, or the PeftModel around it
        self.stacked: StackedLora | None = None
        self.hot: OrderedDict[str, _Hot] = OrderedDict()
        self.listeners: list[AdapterListener] = []
        self._downloads: dict[str, Future[Path]] = {}
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="adapter-fetch")
        self._serial = 0

    def attach(self, model: Any) -> None:
        """Serve adapters on `model` (the base model, once loaded)."""
        self.model = model
        self.stacked = StackedLora(model)

    @property
    def used_bytes(self) -> int:
        """Bytes of adapter weights loaded now."""
        return sum(h.nbytes for h in self.hot.values())

    def prefetch(self, key: str) -> Future[Path]:
        """Start (or join) the download of an adapter's files; a failed one is retried."""
        fut = self._downloads.get(key)
        if fut is None or (fut.done() and fut.exception() is not None):
            fut = self._pool.submit(self._download, key)
            self._downloads[key] = fut
        return fut

    def download(self, key: str) -> Future[Path]:
        """The download under way or done for key (started if there is none); never retried."""
        fut = self._downloads.get(key)
        return fut if fut is not None else self.prefetch(key)

    def _dir(self, key: str) -> Path:
        return self.workdir / hashlib.sha256(key.encode()).hexdigest()[:24]

    def _download(self, key: str) -> Path:
        prefix = store_prefix(key)
        dest = self._dir(key)
        for fname in ADAPTER_FILES:
            if not (dest / fname).is_file():
                try:
                    self.store.download_file(f"{prefix}/{fname}", dest / fname)
                except StoreError as exc:
                    raise AdapterNotFoundError(f"no adapter at {prefix!r}: {exc}") from exc
        return dest

    def acquire(self, key: str, pinned: set[str]) -> str:
        """The name of a downloaded adapter, loading it (and evicting cold ones) if needed.

        `pinned` are names in use by running sequences: they are never evicted.
        """
        if key in self.hot:
            self.hot.move_to_end(key)
            return self.hot[key].name
        path = self.download(key).result()
        nbytes = (path / "adapter_model.safetensors").stat().st_size
        self._evict_for(nbytes, pinned)
        self.hot[key] = self._load(key, path, nbytes)
        self._notify("load", key)
        return self.hot[key].name

    def _load(self, key: str, path: Path, nbytes: int) -> _Hot:
        assert self.stacked is not None, "attach() the base model first"
        self._serial += 1
        if self.backend == "batched":
            reason = unsupported(read_config(path))
            if reason is None:
                try:
                    slot = self.stacked.load(path)
                except ValueError as exc:
                    reason = str(exc)
                else:
                    return _Hot(f"slot{slot}", nbytes, slot)
            log.info("adapter %s is served by PEFT: %s", key, reason)
        name = f"lora{self._serial}"
        self._load_peft(path, name)
        return _Hot(name, nbytes)

    def _load_peft(self, path: Path, name: str) -> None:
        from peft import PeftModel

        assert self.stacked is not None
        with self.stacked.detached():  # PEFT injects into the original layers
            if isinstance(self.model, PeftModel):
                self.model.load_adapter(str(path), adapter_name=name, is_trainable=False)
            else:
                self.model = PeftModel.from_pretrained(
                    self.model, str(path), adapter_name=name, is_trainable=False
                )
        self.model.eval()

    def _unload(self, hot: _Hot) -> None:
        assert self.stacked is not None
        if hot.slot:
            self.stacked.unload(hot.slot)
            return
        with self.stacked.detached():
            if any(not h.slot for h in self.hot.values() if h is not hot):
                self.model.delete_adapter(hot.name)
            else:  # PEFT's last adapter: back to the bare base model
                self.model = self.model.unload()

    @property
    def peft_in_use(self) -> bool:
        """True while some hot adapter is served by PEFT."""
        return any(not h.slot for h in self.hot.values())

    @contextmanager
    def routing(self, names: list[str]) -> Iterator[dict[str, Any]]:
        """Route row i of the next forward to adapter `names[i]` (BASE: none).

        Yields the keyword arguments the model call needs (PEFT's `adapter_names`).
        """
        assert self.stacked is not None
        by_name = {h.name: h for h in self.hot.values()}
        slots = [by_name[n].slot if n in by_name else 0 for n in names]
        extra: dict[str, Any] = {}
        if self.peft_in_use:
            # Stacked rows and base rows are "no adapter" for PEFT.
            peft = [n if n in by_name and not by_name[n].slot else BASE for n in names]
            extra["adapter_names"] = peft
        with self.stacked.route(slots):
            yield extra

    def _evict_for(self, incoming: int, pinned: set[str]) -> None:
        for key in list(self.hot):
            if self.used_bytes + incoming <= self.budget_bytes:
                return
            hot = self.hot[key]
            if hot.name in pinned:
                continue  # a running sequence uses it
            self._unload(hot)
            del self.hot[key]
            self._downloads.pop(key, None)
            shutil.rmtree(self._dir(key), ignore_errors=True)
            self._notify("evict", key)

    def _notify(self, event: str, key: str) -> None:
        for listener in self.listeners:
            listener(event, key)

    def close(self) -> None:
        """Stop downloads; the files go with the work directory."""
        self._pool.shutdown(wait=False, cancel_futures=True)
