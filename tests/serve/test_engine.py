"""The engine on its own: seeds, mixed-adapter batches, the adapter LRU, cancellation."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tailor.stages.serve.engine import TailorEngine
from tailor.stages.serve.generation import GenerationRequest
from tailor.stages.serve.lora_cache import AdapterNotFoundError
from tailor.storage import FileStore

from .conftest import AdapterFactory, Registry


def req(adapter: str | None, prompt: str = "def f(x):\n", **kw: object) -> GenerationRequest:
    return GenerationRequest(
        prompt=prompt,
        adapter=adapter,
        max_new_tokens=16,  # type: ignore[arg-type]
        ignore_eos=True,
        stop_at_block_end=False,
        **kw,
    )


def test_same_seed_same_text_other_seed_other_text(engine: TailorEngine) -> None:
    a = engine.generate(req(None, temperature=1.0, seed=1))[0].text
    b = engine.generate(req(None, temperature=1.0, seed=1))[0].text
    c = engine.generate(req(None, temperature=1.0, seed=2))[0].text
    assert a == b != c


def test_concurrent_requests_for_different_adapters_get_their_own_outputs(
    engine: TailorEngine, registry: Registry
) -> None:
    keys = [None, registry.published[("acme", "py")], registry.published[("beta", "go")]] * 2
    prompts = ["import os\n", "class A:\n", "x = [", "def g():\n", "for i in", "# note\n"]
    solo = [
        engine.generate(req(k, p, temperature=0.9, seed=i))[0].text
        for i, (k, p) in enumerate(zip(keys, prompts, strict=True))
    ]
    together: dict[int, str] = {}

    def run(i: int) -> None:
        together[i] = engine.generate(req(keys[i], prompts[i], temperature=0.9, seed=i))[0].text

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(keys))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [together[i] for i in range(len(keys))] == solo
    assert len(set(solo[:3])) == 3  # base and both adapters really differ


def test_unknown_adapter_is_reported(engine: TailorEngine) -> None:
    with pytest.raises(AdapterNotFoundError):
        engine.generate(req("teams/acme/adapters/missing/1"))


def test_cold_adapters_are_evicted_within_the_budget(tiny_base: Path, tmp_path: Path) -> None:
    store = FileStore(tmp_path / "objects")
    factory = AdapterFactory(tiny_base, store)
    keys = [factory.create("acme", f"a{i}", "1", seed=i) for i in range(4)]
    size = (store.root / keys[0] / "adapter_model.safetensors").stat().st_size
    events: list[tuple[str, str]] = []
    eng = TailorEngine(str(tiny_base), store, adapter_budget_bytes=int(2.5 * size)).start()
    eng.add_listener(lambda event, key: events.append((event, key)))
    try:
        first = [eng.generate(req(k))[0].text for k in keys]
        again = eng.generate(req(keys[0]))[0].text
    finally:
        eng.close()
    assert len(eng.adapters.hot) == 2 and eng.adapters.used_bytes <= 2.5 * size
    assert ("evict", keys[0]) in events and events.count(("load", keys[0])) == 2
    assert again == first[0]


def test_closing_a_stream_stops_generation(engine: TailorEngine) -> None:
    stream = engine.stream(GenerationRequest(prompt="x", max_new_tokens=400, ignore_eos=True))
    next(stream)
    stream.close()
    deadline = time.monotonic() + 10
    while engine.active_sequences() and time.monotonic() < deadline:
        time.sleep(0.01)
    last = engine.finished[-1]
    assert engine.active_sequences() == 0
    assert last.reason == "cancelled" and last.completion_tokens < 400
