"""Serving benchmark: HTTP overhead, multi-adapter throughput and memory, in one run.

Baselines are measured in the same run: the engine called directly (for the HTTP stack), one
adapter for every client (for 20 adapters), and the same throughput runs on an engine that
serves every adapter through PEFT's `adapter_names` forward (for the stacked LoRA path).
Writes bench/results/serve.json and prints a table.
Run: `.venv/bin/python bench/serve.py [--requests 30] [--clients 20]`.
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing as mp
import os
import platform
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import torch
import uvicorn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tailor.serve.app import create_serving_app  # noqa: E402
from tailor.serve.engine import TailorEngine  # noqa: E402
from tailor.serve.generation import GenerationRequest  # noqa: E402
from tailor.serve.spec import EndpointLimits  # noqa: E402
from tailor.storage import FileStore  # noqa: E402
from tailor.train.tiny import tiny_base_cached  # noqa: E402

PREFIX = "def parse_args(argv):\n    parser = argparse.ArgumentParser()\n    "
SUFFIX = "\n    return parser.parse_args(argv)\n"
TOKENS = 64
FIXED = {"ignore_eos": True, "stop_at_block_end": False}  # exactly 64 tokens every time


def make_adapters(base: Path, store: FileStore, n: int) -> list[str]:
    """n LoRA adapters of the tiny base with random (distinct) weights, saved in the store."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base),
        LoraConfig(r=8, lora_alpha=16, target_modules=["c_attn", "c_proj", "c_fc"]),
    )
    keys = []
    for i in range(n):
        gen = torch.Generator().manual_seed(i)
        for name, param in model.named_parameters():
            if "lora_" in name:
                param.data = torch.randn(param.shape, generator=gen) * 0.3
        key = f"teams/bench/adapters/a{i}/1"
        with tempfile.TemporaryDirectory() as tmp:
            model.save_pretrained(tmp)
            for fname in ("adapter_model.safetensors", "adapter_config.json"):
                store.upload_file(Path(tmp) / fname, f"{key}/{fname}")
        keys.append(key)
    return keys


def serve(app: Any) -> tuple[uvicorn.Server, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    return server, f"http://127.0.0.1:{port}"


def start_stack(
    base: Path, store: FileStore, models: dict[str, str], lora: str
) -> tuple[TailorEngine, uvicorn.Server, Callable[[], Any]]:
    """An engine with the given LoRA backend behind a live server, and a client factory."""
    from openai import OpenAI

    engine = TailorEngine(str(base), store, lora_backend=lora)  # type: ignore[arg-type]
    app = create_serving_app(
        engine,
        authenticate={"bench-token": "bench"}.get,
        resolve_model=lambda team, model: models.get(model),
        limits=EndpointLimits(requests_per_minute=100_000, max_tokens=512, request_timeout_s=600),
    )
    server, url = serve(app)
    engine.wait_ready(120)

    def new_client() -> Any:
        return OpenAI(base_url=f"{url}/v1", api_key="bench-token", max_retries=0)

    return engine, server, new_client


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(lat: list[float], ttft: list[float]) -> dict[str, float]:
    ms = 1000.0
    return {
        "latency_p50_ms": pct(lat, 0.5) * ms,
        "latency_p95_ms": pct(lat, 0.95) * ms,
        "ttft_p50_ms": pct(ttft, 0.5) * ms,
        "ttft_p95_ms": pct(ttft, 0.95) * ms,
    }


Timing = tuple[float, float]  # (latency, time to first token) in seconds


def one_direct(engine: TailorEngine, key: str) -> Timing:
    """One 64-token FIM completion streamed from the engine itself (no HTTP)."""
    req = GenerationRequest(
        prompt=PREFIX,
        suffix=SUFFIX,
        adapter=key,
        max_new_tokens=TOKENS,
        temperature=0.0,
        **FIXED,
    )  # type: ignore[arg-type]
    start = time.perf_counter()
    first = None
    for _chunk in engine.stream(req):
        first = first or time.perf_counter()
    return time.perf_counter() - start, (first or start) - start


def one_http(client: Any, model: str, stream: bool = True) -> Timing:
    """The same completion through the OpenAI SDK and the whole HTTP stack."""
    start = time.perf_counter()
    first = None
    out = client.completions.create(
        model=model,
        prompt=PREFIX,
        suffix=SUFFIX,
        max_tokens=TOKENS,
        temperature=0,
        stream=stream,
        extra_body=FIXED,
    )
    for _chunk in out if stream else [out]:
        first = first or time.perf_counter()
    return time.perf_counter() - start, (first or start) - start


def _client_process(url: str, conn: Any) -> None:
    """A client in its own process, as an IDE is: runs `(model, stream)` asks, answers timings."""
    from openai import OpenAI

    client = OpenAI(base_url=url, api_key="bench-token", max_retries=0)
    while (ask := conn.recv()) is not None:
        conn.send(one_http(client, *ask))


class RemoteClient:
    """The OpenAI SDK in a child process (so its parsing does not share the server's GIL)."""

    def __init__(self, url: str) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_client_process, args=(url, child), daemon=True)
        self.proc.start()

    def time(self, model: str, stream: bool = True) -> Timing:
        self.conn.send((model, stream))
        timing: Timing = self.conn.recv()
        return timing

    def close(self) -> None:
        self.conn.send(None)
        self.proc.join(10)


def latencies(
    engine: TailorEngine, key: str, client: Any, remote: RemoteClient, n: int
) -> dict[str, list[Timing]]:
    """n rounds of: direct, HTTP (SDK in this process), HTTP (SDK in a child), non-streaming.

    Interleaved, so the machine's drifting load hits every path alike and each HTTP request
    can be paired with the direct one of its round.
    """
    paths: dict[str, list[Timing]] = {"direct": [], "http": [], "http_client_in_process": []}
    paths["http_non_streaming"] = []
    for _ in range(n):
        paths["direct"].append(one_direct(engine, key))
        paths["http"].append(remote.time("a0"))
        paths["http_client_in_process"].append(one_http(client, "a0"))
        paths["http_non_streaming"].append(remote.time("a0", stream=False))
    return paths


def overhead_ms(path: list[Timing], direct: list[Timing], which: int = 0) -> float:
    """Median over rounds of (HTTP - direct), in ms: latency (which=0) or first token (1)."""
    return statistics.median(h[which] - d[which] for h, d in zip(path, direct, strict=True)) * 1e3


def summarize(timings: list[Timing]) -> dict[str, float]:
    return summary([t[0] for t in timings], [t[1] for t in timings])


def throughput(
    client_factory: Callable[[], Any], models: list[str], per_client: int
) -> tuple[float, float]:
    """Completion tokens per wall second and per server CPU second, one client per model.

    Server CPU = the process's CPU time minus what the client threads spent themselves: it
    counts the work serving costs and barely moves with the other load on the machine.
    """
    tokens = [0] * len(models)
    client_cpu = [0.0] * len(models)
    barrier = threading.Barrier(len(models) + 1)

    def run(i: int) -> None:
        client = client_factory()
        barrier.wait()
        cpu = time.thread_time()
        for _ in range(per_client):
            out = client.completions.create(
                model=models[i],
                prompt=PREFIX,
                suffix=SUFFIX,
                max_tokens=TOKENS,
                temperature=0,
                extra_body=FIXED,
            )
            tokens[i] += out.usage.completion_tokens
        client_cpu[i] = time.thread_time() - cpu

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(models))]
    for t in threads:
        t.start()
    barrier.wait()
    start, cpu = time.perf_counter(), time.process_time()
    for t in threads:
        t.join()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu - sum(client_cpu)
    return sum(tokens) / wall, sum(tokens) / cpu


def compare_throughput(
    client_factory: Callable[[], Any], args: argparse.Namespace
) -> dict[str, float]:
    """1 adapter vs `clients` adapters: medians over alternating rounds, and round ratios.

    The two loads alternate for `rounds` rounds, so the machine's drifting load hits both;
    the first many-adapter round includes loading the adapters.
    """
    one: list[tuple[float, float]] = []
    many: list[tuple[float, float]] = []
    models = [f"a{i}" for i in range(args.clients)]
    for _ in range(args.rounds):
        one.append(throughput(client_factory, ["a0"] * args.clients, args.per_client))
        many.append(throughput(client_factory, models, args.per_client))
    med = statistics.median
    return {
        "throughput_1_adapter_tok_s": med(t[0] for t in one),
        "throughput_20_adapters_tok_s": med(t[0] for t in many),
        "throughput_ratio_20_vs_1": med(m[0] / o[0] for o, m in zip(one, many, strict=True)),
        "tok_per_server_cpu_s_1_adapter": med(t[1] for t in one),
        "tok_per_server_cpu_s_20_adapters": med(t[1] for t in many),
        "cpu_efficiency_ratio_20_vs_1": med(m[1] / o[1] for o, m in zip(one, many, strict=True)),
    }


def rss_mb() -> float:
    gc.collect()
    return float(psutil.Process().memory_info().rss) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=30, help="sequential requests per path")
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients = adapters")
    parser.add_argument("--per-client", type=int, default=3, help="requests per client")
    parser.add_argument("--rounds", type=int, default=3, help="alternating throughput rounds")
    args = parser.parse_args()
    base = tiny_base_cached(Path(os.environ.get("TAILOR_TEST_CACHE", "/tmp/tailor-test-cache")))
    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    store = FileStore(work / "objects")
    keys = make_adapters(base, store, args.clients)
    models = {f"a{i}": k for i, k in enumerate(keys)}
    rss_start = rss_mb()
    engine, server, new_client = start_stack(base, store, models, "batched")
    client = new_client()
    remote = RemoteClient(str(client.base_url))
    for _ in range(3):  # warm-up: adapter a0 loaded, code paths hot
        one_http(client, "a0")
        remote.time("a0")
    rss_one = rss_mb()
    paths = latencies(engine, keys[0], client, remote, args.requests)
    remote.close()
    direct = paths["direct"]
    stacked = compare_throughput(new_client, args)
    stacked_mb = engine.adapters.stacked.nbytes / 2**20 if engine.adapters.stacked else 0.0
    rss_many = rss_mb()
    server.should_exit = True
    engine.close()
    engine, server, new_client = start_stack(base, store, models, "peft")
    new_client().completions.create(model="a0", prompt=PREFIX, max_tokens=4)  # load a0
    peft = compare_throughput(new_client, args)
    server.should_exit = True
    engine.close()

    adapter_mb = (store.root / keys[0] / "adapter_model.safetensors").stat().st_size / 2**20
    result = {
        "benchmark": "serve",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "device": "cpu",
        },
        "setup": {
            "model": "tiny GPTBigCode (tailor.train.tiny)",
            "completion_tokens": TOKENS,
            "requests_per_path": args.requests,
            "latency_method": "paths interleaved round by round; overhead = median over rounds "
            "of (HTTP - direct); `http` runs the OpenAI SDK in a child process, as an IDE "
            "client is; `http_client_in_process` runs it in the server's process (the "
            "method of the first version of this benchmark)",
            "clients": args.clients,
            "requests_per_client": args.per_client,
            "throughput_rounds": args.rounds,
            "adapter_mb_each": round(adapter_mb, 3),
        },
        "baseline": {
            "engine_direct": summarize(direct),
            "throughput_1_adapter_tok_s": stacked["throughput_1_adapter_tok_s"],
            "tok_per_server_cpu_s_1_adapter": stacked["tok_per_server_cpu_s_1_adapter"],
            "rss_mb_1_adapter": rss_one,
            # The engine before stacked LoRA: every adapter through PEFT's adapter_names.
            "peft_adapter_names": peft,
        },
        "figures": {
            "http": summarize(paths["http"]),
            "http_overhead_p50_ms": overhead_ms(paths["http"], direct),
            "ttft_overhead_p50_ms": overhead_ms(paths["http"], direct, which=1),
            "http_client_in_process": summarize(paths["http_client_in_process"]),
            "http_client_in_process_overhead_p50_ms": overhead_ms(
                paths["http_client_in_process"], direct
            ),
            "http_non_streaming_latency_p50_ms": summarize(paths["http_non_streaming"])[
                "latency_p50_ms"
            ],
            "http_non_streaming_overhead_p50_ms": overhead_ms(paths["http_non_streaming"], direct),
            "throughput_20_adapters_tok_s": stacked["throughput_20_adapters_tok_s"],
            "throughput_ratio_20_vs_1": stacked["throughput_ratio_20_vs_1"],
            "tok_per_server_cpu_s_20_adapters": stacked["tok_per_server_cpu_s_20_adapters"],
            "cpu_efficiency_ratio_20_vs_1": stacked["cpu_efficiency_ratio_20_vs_1"],
            "throughput_20_adapters_stacked_vs_peft": stacked["throughput_20_adapters_tok_s"]
            / peft["throughput_20_adapters_tok_s"],
            "rss_mb_20_adapters": rss_many,
            "rss_growth_mb_1_to_20": rss_many - rss_one,
            "stacked_lora_mb_20_adapters": stacked_mb,
            "rss_mb_base_model_loaded": rss_one - rss_start,
        },
        "goals": {"http_overhead_p50_ms_max": 5.0, "throughput_ratio_min": 0.8},
        "vllm": "not measured: no GPU was available to this task (vLLM needs one)",
    }
    out = ROOT / "bench" / "results" / "serve.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)


def print_table(r: dict[str, Any]) -> None:
    d, f = r["baseline"]["engine_direct"], r["figures"]
    h, p = f["http"], r["baseline"]["peft_adapter_names"]
    rows = [
        (
            "latency p50 / p95 (ms), 64-token FIM",
            f"{d['latency_p50_ms']:.1f} / {d['latency_p95_ms']:.1f}",
            f"{h['latency_p50_ms']:.1f} / {h['latency_p95_ms']:.1f}",
        ),
        (
            "time to first token p50 / p95 (ms)",
            f"{d['ttft_p50_ms']:.1f} / {d['ttft_p95_ms']:.1f}",
            f"{h['ttft_p50_ms']:.1f} / {h['ttft_p95_ms']:.1f}",
        ),
        ("HTTP overhead p50 (ms, goal <= 5): stream", "", f"{f['http_overhead_p50_ms']:.2f}"),
        (
            "  same, SDK client inside the server process",
            "",
            f"{f['http_client_in_process_overhead_p50_ms']:.2f}",
        ),
        ("time to first token overhead p50 (ms)", "", f"{f['ttft_overhead_p50_ms']:.2f}"),
        (
            "HTTP overhead p50 (ms): non-streaming",
            "",
            f"{f['http_non_streaming_overhead_p50_ms']:.2f}",
        ),
        (
            "throughput tok/s: 1 adapter | 20 adapters",
            f"{r['baseline']['throughput_1_adapter_tok_s']:.0f}",
            f"{f['throughput_20_adapters_tok_s']:.0f}  "
            f"(x{f['throughput_ratio_20_vs_1']:.2f}, goal >= 0.8)",
        ),
        (
            "  same, every adapter through PEFT (before)",
            f"{p['throughput_1_adapter_tok_s']:.0f}",
            f"{p['throughput_20_adapters_tok_s']:.0f}  (x{p['throughput_ratio_20_vs_1']:.2f})",
        ),
        (
            "tokens per server CPU s: 1 | 20 adapters",
            f"{r['baseline']['tok_per_server_cpu_s_1_adapter']:.0f}",
            f"{f['tok_per_server_cpu_s_20_adapters']:.0f}  "
            f"(x{f['cpu_efficiency_ratio_20_vs_1']:.2f})",
        ),
        (
            "  same, every adapter through PEFT (before)",
            f"{p['tok_per_server_cpu_s_1_adapter']:.0f}",
            f"{p['tok_per_server_cpu_s_20_adapters']:.0f}  "
            f"(x{p['cpu_efficiency_ratio_20_vs_1']:.2f})",
        ),
        (
            "process RSS MB: 1 adapter | 20 adapters",
            f"{r['baseline']['rss_mb_1_adapter']:.0f}",
            f"{f['rss_mb_20_adapters']:.0f}  (+{f['rss_growth_mb_1_to_20']:.1f})",
        ),
    ]
    print(f"{'measure':46} {'baseline (direct / 1)':>24} {'Tailor HTTP / 20':>34}")
    for name, base, fig in rows:
        print(f"{name:46} {base:>24} {fig:>34}")
    print(f"vLLM: {r['vllm']}")


if __name__ == "__main__":
    main()
