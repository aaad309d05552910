"""Twenty adapters from one process: memory grows by the adapters, each request gets its own."""

from __future__ import annotations

import ctypes
import gc
from pathlib import Path

import openai
import psutil

from .conftest import AdapterFactory, LiveServer, Registry

N = 20


def rss() -> int:
    """Resident bytes once freed memory is handed back to the system.

    Without the trim, what glibc keeps of freed scratch (stack copies while the slots grow, the
    decode's caches) counts as held, and how much it keeps differs from one machine to the next.
    """
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    return int(psutil.Process().memory_info().rss)


def test_twenty_adapters_cost_their_size_and_keep_their_outputs(
    server: LiveServer, registry: Registry, tiny_base: Path, adapters: AdapterFactory
) -> None:
    big = AdapterFactory(tiny_base, adapters.store, rank=32)
    keys = [big.create("bulk", f"m{i}", "1", seed=100 + i) for i in range(N)]
    for i, key in enumerate(keys):
        registry.published[("bulk", f"m{i}")] = key
    adapter_bytes = sum(
        (adapters.store.root / k / "adapter_model.safetensors").stat().st_size for k in keys
    )
    base_bytes = (tiny_base / "model.safetensors").stat().st_size
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="tok-bulk", max_retries=0)

    def complete(i: int) -> str:
        out = client.completions.create(
            model=f"m{i}",
            prompt="def main():\n",
            max_tokens=12,
            temperature=0,
            extra_body={"ignore_eos": True, "stop_at_block_end": False},
        )
        return out.choices[0].text

    complete(0)  # warm the path with one adapter loaded
    before = rss()
    first = [complete(i) for i in range(N)]
    grown = rss() - before
    # Alternate between adapters on consecutive requests: each answer is its own adapter's.
    order = [i for pair in zip(range(N), reversed(range(N)), strict=True) for i in pair]
    assert all(complete(i) == first[i] for i in order)
    assert len(set(first)) == N
    assert grown < 2 * adapter_bytes + 8 * 2**20, (grown, adapter_bytes)
    assert grown < (N - 1) * base_bytes / 2  # nothing like a base model per adapter
