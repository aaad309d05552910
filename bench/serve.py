"""Serving benchmark: HTTP overhead, multi-adapter throughput and memory, fairness between
teams and overload, in one run.

Baselines are measured in the same run: the engine called directly (for the HTTP stack), one
adapter for every client (for 20 adapters), the same throughput runs on an engine that
serves every adapter through PEFT's `adapter_names` forward (for the stacked LoRA path), one
team's completions without the other team's flood (for fairness) and the engine scheduling
first come, first served (the engine before fair shares).
Writes bench/results/serve.json and prints a table.
Run: `.venv/bin/python bench/serve.py [--requests 30] [--clients 20] [--only-fairness]
[--only-telemetry] [--only-latency]`.
"""

from __future__ import annotations

import argparse
import asyncio
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
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import psutil
import torch
import uvicorn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, func, select, text  # noqa: E402

from tailor.config import Settings  # noqa: E402
from tailor.db import migrate  # noqa: E402
from tailor.db.models import (  # noqa: E402
    AdapterVersion,
    Endpoint,
    Membership,
    Role,
    ServedCompletion,
    Team,
    User,
)
from tailor.db.notices import NotifiedCache  # noqa: E402
from tailor.db.session import READ_ONLY, make_engine, session_factory  # noqa: E402
from tailor.demo.tiny import tiny_base_cached  # noqa: E402
from tailor.gateway import GrantCache, Routing, routing_channel  # noqa: E402
from tailor.services.adapters.service import register_version  # noqa: E402
from tailor.services.tokens.service import authenticate, issue_token  # noqa: E402
from tailor.stages.serve.app import create_serving_app  # noqa: E402
from tailor.stages.serve.callers import BASE_MODEL, Caller, Lookup, lookup_from  # noqa: E402
from tailor.stages.serve.engine import TailorEngine  # noqa: E402
from tailor.stages.serve.generation import GenerationRequest  # noqa: E402
from tailor.stages.serve.spec import EndpointLimits  # noqa: E402
from tailor.storage import FileStore  # noqa: E402
from tailor.telemetry.recorder import Recorder  # noqa: E402

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PREFIX = "def parse_args(argv):\n    parser = argparse.ArgumentParser()\n    "
SUFFIX = "\n    return parser.parse_args(argv)\n"
TOKENS = 64
BENCH_TOKEN = "bench-token"
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


@dataclass
class Live:
    """A uvicorn server in a thread of this process, and its event loop."""

    server: uvicorn.Server
    url: str
    loop: asyncio.AbstractEventLoop

    def loop_cpu(self) -> float:
        """CPU seconds the event loop's thread has used so far (the GIL time it can take)."""

        async def now() -> float:
            return time.thread_time()

        return asyncio.run_coroutine_threadsafe(now(), self.loop).result()


def serve(app: Any) -> Live:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error")
    server = uvicorn.Server(config)
    loop = (config.get_loop_factory() or asyncio.new_event_loop)()  # uvloop, as uvicorn picks
    threading.Thread(target=loop.run_until_complete, args=(server.serve(),), daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    return Live(server, f"http://127.0.0.1:{port}", loop)


def serve_engine(
    engine: TailorEngine,
    models: dict[str, str],
    stream_interval_s: float = 0.02,
    lookup: Lookup | None = None,
    resources: Sequence[AbstractContextManager[object]] = (),
    telemetry: Recorder | None = None,
) -> Live:
    """The serving app over `engine` on a live server (bench token, no effective limits)."""
    app = create_serving_app(
        engine,
        lookup=lookup or lookup_from({BENCH_TOKEN: "bench"}.get, lambda t, m: models.get(m)),
        limits=EndpointLimits(requests_per_minute=100_000, max_tokens=512, request_timeout_s=600),
        stream_interval_s=stream_interval_s,
        resources=resources,
        telemetry=telemetry,
    )
    return serve(app)


def start_stack(
    base: Path, store: FileStore, models: dict[str, str], lora: str
) -> tuple[TailorEngine, Live, Callable[[], Any]]:
    """An engine with the given LoRA backend behind a live server, and a client factory."""
    from openai import OpenAI

    engine = TailorEngine(str(base), store, lora_backend=lora)  # type: ignore[arg-type]
    live = serve_engine(engine, models)
    engine.wait_ready(120)

    def new_client() -> Any:
        return OpenAI(base_url=f"{live.url}/v1", api_key=BENCH_TOKEN, max_retries=0)

    return engine, live, new_client


@dataclass
class BenchDatabase:
    """A fresh PostgreSQL schema with team `bench`, an IDE token and an endpoint per model."""

    engine: Engine
    token: str
    drop: Callable[[], None]


def bench_database(url: str, models: dict[str, str]) -> BenchDatabase:
    """Migrate a new schema and publish every model, as `tailor up` would have."""
    schema = f"bench_{os.getpid()}_{int(time.time())}"
    admin = make_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    scoped = f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    migrate.upgrade(scoped)
    engine = make_engine(scoped)
    with session_factory(engine).begin() as session:
        user = User(email="bench@example.com", name="Bench")
        team = Team(slug="bench", name="Bench")
        session.add_all([user, team])
        session.flush()
        session.add(Membership(team_id=team.id, user_id=user.id, role=Role.owner))
        _, token = issue_token(
            session, user, name="ide", scopes=["inference"], team_id=team.id, expires_at=None
        )
        for name in models:
            version = register_version(
                session,
                team_id=team.id,
                team_slug="bench",
                name=name,
                version=1,
                manifest={"base_model": "tiny"},
            )
            session.add(Endpoint(team_id=team.id, name=name, version_id=version.id))

    def drop() -> None:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    return BenchDatabase(engine, token, drop)


def two_transaction_lookup(engine: Engine) -> Lookup:
    """The gateway's lookup before this change: the token service, then the model, each in
    its own ORM session (the baseline for `Routing.lookup`'s one query)."""
    sessions = session_factory(engine)

    def lookup(token: str, model: str | None) -> Caller | None:
        with sessions.begin() as session:
            principal = authenticate(session, token)
            if principal.token_team_id is None or "inference" not in principal.scopes:
                return None
            slug = session.get_one(Team, principal.token_team_id).slug
        if model is None:
            return Caller(slug)
        with sessions() as session:
            team_id = session.scalar(select(Team.id).where(Team.slug == slug))
            version = session.scalar(
                select(AdapterVersion)
                .join(Endpoint, Endpoint.version_id == AdapterVersion.id)
                .where(Endpoint.team_id == team_id, Endpoint.name == model)
            )
            return (
                Caller(slug, version.prefix.rstrip("/")) if version else Caller(slug, known=False)
            )

    return lookup


def lookup_ms(lookup: Lookup, token: str, n: int = 300) -> float:
    """Median wall time of one lookup of model `a0`, in ms."""
    times = []
    for _ in range(n):
        start = time.perf_counter()
        caller = lookup(token, "a0")
        times.append(time.perf_counter() - start)
        assert caller is not None and caller.known
    return statistics.median(times) * 1e3


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


def one_lean(client: Any, body: dict[str, Any]) -> Timing:
    """The same streamed completion read as raw SSE lines (what llm-ls, a Rust client, does)."""
    start = time.perf_counter()
    first = None
    with client.stream("POST", "/completions", json=body) as response:
        for line in response.iter_lines():
            first = first or time.perf_counter()
            if line == "data: [DONE]":
                break
    return time.perf_counter() - start, (first or start) - start


def one_tabby(client: Any, model: str) -> Timing:
    """A completion as tabby-agent asks it (Tabby answers whole), under the model's endpoint."""
    body = {"language": "python", "segments": {"prefix": PREFIX, "suffix": SUFFIX}}
    start = time.perf_counter()
    client.post(f"/tabby/{model}/v1/completions", json=body).raise_for_status()
    return time.perf_counter() - start, time.perf_counter() - start


def one_ollama(client: Any, model: str, tokens: int) -> Timing:
    """A completion as Continue's ollama provider asks it, read as NDJSON lines."""
    options = {"temperature": 0, "num_predict": tokens}
    body = {"model": model, "prompt": PREFIX, "suffix": SUFFIX, "options": options}
    start = time.perf_counter()
    first = None
    with client.stream("POST", "/api/generate", json=body) as response:
        for _line in response.iter_lines():
            first = first or time.perf_counter()
    return time.perf_counter() - start, (first or start) - start


def _client_process(url: str, token: str, conn: Any) -> None:
    """A client in its own process, as an IDE is: runs `(model, mode, tokens)` asks, answers
    timings."""
    import httpx
    from openai import OpenAI

    sdk = OpenAI(base_url=url, api_key=token, max_retries=0)
    auth = {"Authorization": f"Bearer {token}"}
    lean = httpx.Client(base_url=url, headers=auth, timeout=600)
    root = httpx.Client(base_url=url.rstrip("/").removesuffix("/v1"), headers=auth, timeout=600)
    while (ask := conn.recv()) is not None:
        model, mode, tokens = ask
        if mode == "lean":
            body = {"model": model, "prompt": PREFIX, "suffix": SUFFIX, "max_tokens": tokens}
            conn.send(one_lean(lean, {**body, "temperature": 0, "stream": True, **FIXED}))
        elif mode == "tabby":
            conn.send(one_tabby(root, model))
        elif mode == "ollama":
            conn.send(one_ollama(root, model, tokens))
        else:
            conn.send(one_http(sdk, model, stream=mode == "stream"))


class RemoteClient:
    """Clients in a child process (so their parsing does not share the server's GIL)."""

    def __init__(self, url: str, token: str = BENCH_TOKEN) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_client_process, args=(url, token, child), daemon=True)
        self.proc.start()

    def time(self, model: str, mode: str = "stream", tokens: int = TOKENS) -> Timing:
        """One request: mode `stream` / `whole` (OpenAI SDK) or `lean` (raw SSE, `tokens`)."""
        self.conn.send((model, mode, tokens))
        timing: Timing = self.conn.recv()
        return timing

    def close(self) -> None:
        self.conn.send(None)
        self.proc.join(10)


class EngineClock:
    """Records, for each request the engine gets, the time from submit to its last chunk."""

    def __init__(self, engine: TailorEngine) -> None:
        self.last: float = 0.0
        submit = engine.submit

        def timed(request: GenerationRequest, sink: Any, **kw: Any) -> Any:
            start = time.perf_counter()

            def sink_timed(item: Any) -> None:
                self.last = time.perf_counter() - start
                sink(item)

            return submit(request, sink_timed, **kw)

        engine.submit = timed  # type: ignore[method-assign]


PATHS = (
    "direct",
    "http",
    "http_gateway",
    "http_gateway_uncached",
    "http_lean",
    "http_every_chunk",
    "http_non_streaming",
    "http_tabby",
    "http_ollama",
)


def latencies(
    engine: TailorEngine,
    key: str,
    remote: RemoteClient,
    every: RemoteClient,
    gateway: RemoteClient,
    uncached: RemoteClient,
    loops: list[Live],
    n: int,
) -> dict[str, list[tuple[float, float, float, float]]]:
    """n rounds of every path: (latency, first token, engine time, loop CPU) per request.

    Interleaved, so the machine's drifting load hits every path alike and each HTTP request
    can be paired with the direct one of its round.
    """
    clock = EngineClock(engine)
    asks: dict[str, Callable[[], Timing]] = {
        "direct": lambda: one_direct(engine, key),
        "http": lambda: remote.time("a0"),
        "http_gateway": lambda: gateway.time("a0"),
        "http_gateway_uncached": lambda: uncached.time("a0"),
        "http_lean": lambda: remote.time("a0", "lean"),
        "http_every_chunk": lambda: every.time("a0"),
        "http_non_streaming": lambda: remote.time("a0", "whole"),
        "http_tabby": lambda: remote.time("a0", "tabby"),
        "http_ollama": lambda: remote.time("a0", "ollama"),
    }
    paths: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name in PATHS}
    for _ in range(n):
        for name in PATHS:
            cpu = sum(live.loop_cpu() for live in loops)
            latency, ttft = asks[name]()
            cpu = sum(live.loop_cpu() for live in loops) - cpu
            paths[name].append((latency, ttft, clock.last, cpu))
    return paths


def paired_ms(path: list[Any], direct: list[Any], which: int = 0) -> list[float]:
    """Per round, HTTP minus direct in ms: latency (which=0), first token (1), engine time (2)."""
    return [(h[which] - d[which]) * 1e3 for h, d in zip(path, direct, strict=True)]


def overhead_ms(path: list[Any], direct: list[Any], which: int = 0) -> float:
    """Median over rounds of (HTTP - direct), in ms."""
    return statistics.median(paired_ms(path, direct, which))


def iqr(values: list[float]) -> list[float]:
    """The 25th and 75th percentiles: how far the machine's noise spreads a paired figure."""
    return [pct(values, 0.25), pct(values, 0.75)]


def summarize(timings: list[Any]) -> dict[str, float]:
    return summary([t[0] for t in timings], [t[1] for t in timings])


def http_figures(path: list[Any], direct: list[Any]) -> dict[str, Any]:
    """One HTTP path against the direct one: its latencies and where the extra time went."""
    return {
        **summarize(path),
        "overhead_p50_ms": overhead_ms(path, direct),
        "overhead_iqr_ms": iqr(paired_ms(path, direct)),
        "ttft_overhead_p50_ms": overhead_ms(path, direct, which=1),
        "outside_engine_p50_ms": statistics.median(t[0] - t[2] for t in path) * 1e3,
        "engine_slowdown_p50_ms": overhead_ms(path, direct, which=2),
        "engine_slowdown_iqr_ms": iqr(paired_ms(path, direct, which=2)),
        "event_loop_cpu_ms_per_request": statistics.mean(t[3] for t in path) * 1e3,
    }


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


# -- fairness between teams, and overload ------------------------------------------------------

FLOOD_TOKEN, IDE_TOKEN = "flood-token", "ide-token"
VICTIM_TOKENS = 16  # an ordinary IDE completion
# The reviewer's flood: requests of 16 choices, 480 tokens each.
FLOOD = {"model": BASE_MODEL, "prompt": PREFIX, "n": 16, "max_tokens": 480, **FIXED}
CAPACITY_S = 15.0  # closed-loop time that measures the overload's capacity
NO_LIMITS = EndpointLimits(
    requests_per_minute=100_000,
    tokens_per_minute=10**9,
    max_tokens=512,
    request_timeout_s=600,
)


def two_team_stack(
    base: Path, store: FileStore, *, fair: bool, queued: int, queue_timeout_s: float
) -> tuple[TailorEngine, Live]:
    """An engine serving its base model to teams `flood` and `ide`, rate limits out of the way."""
    engine = TailorEngine(
        str(base), store, fair=fair, max_queued_per_team=queued, queue_timeout_s=queue_timeout_s
    )
    tokens = {FLOOD_TOKEN: "flood", IDE_TOKEN: "ide"}
    app = create_serving_app(
        engine, lookup=lookup_from(tokens.get, lambda t, m: None), limits=NO_LIMITS
    )
    live = serve(app)
    engine.wait_ready(120)
    return engine, live


class Outcome(NamedTuple):
    """One request of a load: its status, whether it said when to retry, its time to the first
    SSE line (a 200's), and when it ended (the load process's clock)."""

    status: int
    retry_after: bool
    ttft: float | None
    ended: float


async def _timed_post(client: Any, body: dict[str, Any]) -> Outcome:
    start = time.perf_counter()
    async with client.stream("POST", "/completions", json={**body, "stream": True}) as response:
        first = None
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                first = first or time.perf_counter() - start
        ok = response.status_code == 200
        retry = "retry-after" in response.headers
        return Outcome(response.status_code, retry, first if ok else None, time.perf_counter())


def _load_process(url: str, token: str, plan: dict[str, Any], conn: Any) -> None:
    """Load from a child process: `closed` (N clients re-sending until told to stop) or `open`
    (arrivals at a fixed rate for a while, whatever the answers); sends back every outcome."""
    import httpx

    async def main() -> list[Outcome]:
        outcomes: list[Outcome] = []
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(
            base_url=url, headers=headers, timeout=600, limits=limits
        ) as client:

            async def one() -> None:
                try:
                    outcomes.append(await _timed_post(client, plan["body"]))
                except httpx.HTTPError:
                    outcomes.append(Outcome(0, False, None, time.perf_counter()))

            if plan["mode"] == "open":
                tasks = []
                start = time.perf_counter()
                for i in range(round(plan["rate"] * plan["seconds"])):
                    await asyncio.sleep(max(0.0, start + i / plan["rate"] - time.perf_counter()))
                    tasks.append(asyncio.create_task(one()))
                await asyncio.gather(*tasks)
                return outcomes
            stop = asyncio.Event()

            async def loop() -> None:
                while not stop.is_set():
                    await one()
                    if outcomes[-1].status != 200:
                        await asyncio.sleep(0.05)

            loops = [asyncio.create_task(loop()) for _ in range(plan["clients"])]
            await asyncio.get_running_loop().run_in_executor(None, conn.recv)
            stop.set()
            for task in loops:
                task.cancel()  # requests in flight are dropped: the server cancels them
            await asyncio.gather(*loops, return_exceptions=True)
            return outcomes

    conn.send("ready")  # the imports took seconds: the parent's clock starts now
    conn.send(asyncio.run(main()))


class Load:
    """`_load_process` running; `result()` stops a closed loop and answers every outcome."""

    def __init__(self, url: str, token: str, **plan: Any) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_load_process, args=(url, token, plan, child), daemon=True)
        self.proc.start()
        self.closed = plan["mode"] == "closed"
        if self.conn.recv() != "ready":
            raise RuntimeError("the load process did not start")

    def result(self) -> list[Outcome]:
        if self.closed:
            self.conn.send("stop")
        outcomes: list[Outcome] = self.conn.recv()
        self.proc.join(30)
        return outcomes


def victim_timings(victim: RemoteClient, n: int) -> list[Timing]:
    return [victim.time(BASE_MODEL, "lean", VICTIM_TOKENS) for _ in range(n)]


def step_ms(timings: list[Timing]) -> float:
    """Median time per token after the first, in ms."""
    return statistics.median((t[0] - t[1]) / (VICTIM_TOKENS - 1) for t in timings) * 1e3


def statuses(outcomes: list[Outcome]) -> dict[str, int]:
    return dict(sorted(Counter(str(o.status) for o in outcomes).items()))


def two_teams(base: Path, store: FileStore, args: argparse.Namespace) -> dict[str, Any]:
    """The ide team's time to first token alone, then while the flood team floods: with fair
    scheduling, and (fewer requests: each waits out the flood) first come, first served."""
    out: dict[str, Any] = {}
    for name, fair, n in (("fair", True, args.victims), ("fifo", False, args.fifo_victims)):
        engine, live = two_team_stack(base, store, fair=fair, queued=100_000, queue_timeout_s=600)
        victim = RemoteClient(f"{live.url}/v1", IDE_TOKEN)
        victim_timings(victim, 3)  # warm-up
        idle = victim_timings(victim, n // 2) if fair else []
        flood = Load(f"{live.url}/v1", FLOOD_TOKEN, mode="closed", clients=10, body=FLOOD)
        deadline = time.monotonic() + 60
        while engine.batch_shares().get("flood", 0) < engine.max_batch_size:
            if time.monotonic() > deadline:
                raise RuntimeError("the flood never filled the batch")
            time.sleep(0.05)
        time.sleep(2.0)  # a steady state: flood requests queued behind the running ones
        flooded = victim_timings(victim, n)
        flood_outcomes = flood.result()
        if fair:
            idle += victim_timings(victim, n - n // 2)
            out["victim_idle"] = summarize(idle)
        out[f"victim_flooded_{name}"] = summarize(flooded)
        # The time of one decoding step of the batch, as the victim's later tokens see it: the
        # floor of what a newcomer waits for the step in progress to end.
        out[f"victim_step_ms_flooded_{name}"] = step_ms(flooded)
        if fair:
            out["victim_step_ms_idle"] = step_ms(idle)
        out[f"flood_statuses_{name}"] = statuses(flood_outcomes)
        out[f"preemptions_{name}"] = engine.preemptions
        victim.close()
        live.server.should_exit = True
        engine.close()
    idle_s, flooded_s = out["victim_idle"], out["victim_flooded_fair"]
    out["ttft_ratio_p50"] = flooded_s["ttft_p50_ms"] / idle_s["ttft_p50_ms"]
    out["ttft_ratio_p95"] = flooded_s["ttft_p95_ms"] / idle_s["ttft_p95_ms"]
    out["ttft_ratio_p50_fifo"] = out["victim_flooded_fifo"]["ttft_p50_ms"] / idle_s["ttft_p50_ms"]
    return out


def overload(base: Path, store: FileStore, args: argparse.Namespace) -> dict[str, Any]:
    """Open-loop arrivals at twice the capacity measured just before, with the gateway's default
    queue bounds: what share is shed with 503 + Retry-After, how long the admitted wait."""
    settings = Settings.model_fields
    queued = settings["serve_max_queued_per_team"].default
    timeout_s = settings["serve_queue_timeout_s"].default
    engine, live = two_team_stack(base, store, fair=True, queued=queued, queue_timeout_s=timeout_s)
    body = {"model": BASE_MODEL, "prompt": PREFIX, "max_tokens": args.overload_tokens, **FIXED}
    url = f"{live.url}/v1"
    closed = Load(url, IDE_TOKEN, mode="closed", clients=engine.max_batch_size, body=body)
    time.sleep(CAPACITY_S)
    # Steady state: completions per second between the first and the last (the first wave
    # starts together, and the requests cut off at the end are not counted).
    ends = sorted(o.ended for o in closed.result() if o.status == 200)
    if len(ends) < 2 * engine.max_batch_size:
        raise RuntimeError(f"only {len(ends)} requests served in {CAPACITY_S}s: lengthen it")
    capacity = (len(ends) - 1) / (ends[-1] - ends[0])
    rate = 2 * capacity
    seconds = args.overload_seconds
    got = Load(url, IDE_TOKEN, mode="open", rate=rate, seconds=seconds, body=body).result()
    live.server.should_exit = True
    engine.close()
    shed = [o for o in got if o.status == 503]
    ttft = [o.ttft for o in got if o.ttft is not None]
    return {
        "completion_tokens": args.overload_tokens,
        "queue_timeout_s": timeout_s,
        "max_queued_per_team": queued,
        "capacity_requests_per_s": capacity,
        "arrival_requests_per_s": rate,
        "requests": len(got),
        "statuses": statuses(got),
        "share_503": len(shed) / len(got),
        "share_of_503_with_retry_after": sum(o.retry_after for o in shed) / len(shed)
        if shed
        else None,
        "admitted_ttft_p50_ms": pct(ttft, 0.5) * 1e3 if ttft else None,
        "admitted_ttft_p95_ms": pct(ttft, 0.95) * 1e3 if ttft else None,
        "admitted_ttft_max_ms": max(ttft) * 1e3 if ttft else None,
    }


def telemetry_overhead(base: Path, store: FileStore, args: argparse.Namespace) -> dict[str, Any]:
    """The gateway as deployed (PostgreSQL lookup, cached) without and with completion
    telemetry, interleaved request by request: what recording costs a completion."""
    keys = make_adapters(base, store, 1)
    models = {"a0": keys[0]}
    engine = TailorEngine(str(base), store, lora_backend="batched")
    db = bench_database(args.database_url, models)
    cache: GrantCache = NotifiedCache(db.engine, routing_channel(db.engine))
    routing = Routing.on(db.engine, cache)
    read_only = db.engine.execution_options(**{READ_ONLY: True})
    recorder = Recorder(read_only.begin, db.engine.begin, interval_s=1.0)
    plain_live = serve_engine(engine, models, lookup=routing.lookup, resources=[cache])
    recorded_live = serve_engine(engine, models, lookup=routing.lookup, telemetry=recorder)
    engine.wait_ready(120)
    clients = {
        name: (RemoteClient(f"{live.url}/v1", db.token), live)
        for name, live in (("http_gateway", plain_live), ("http_gateway_telemetry", recorded_live))
    }
    for _ in range(3):
        for client, _live in clients.values():
            client.time("a0")
    clock = EngineClock(engine)
    rows: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name in clients}
    for _ in range(args.requests):
        for name, (client, live) in clients.items():
            cpu = live.loop_cpu()
            latency, ttft = client.time("a0")
            rows[name].append((latency, ttft, clock.last, live.loop_cpu() - cpu))
    for client, _live in clients.values():
        client.close()
    recorder.flush()
    with db.engine.connect() as conn:
        recorded = conn.scalar(select(func.count()).select_from(ServedCompletion))
    for live in (plain_live, recorded_live):
        live.server.should_exit = True
    time.sleep(0.5)
    db.drop()
    engine.close()
    outside = {
        name: statistics.median(t[0] - t[2] for t in timings) * 1e3
        for name, timings in rows.items()
    }
    loop_cpu = {
        name: statistics.mean(t[3] for t in timings) * 1e3 for name, timings in rows.items()
    }
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average": os.getloadavg(),
        "method": f"{args.requests} rounds, each one streamed {TOKENS}-token completion (OpenAI "
        "SDK in a child process) through the gateway on PostgreSQL without telemetry and one "
        "with it (recorder flushing every 1 s), interleaved; outside_engine = client latency "
        "minus the engine's own time for the same request; event_loop_cpu = CPU time of the "
        "server's event-loop thread per request (robust to the machine's noise)",
        "outside_engine_p50_ms": outside,
        "event_loop_cpu_ms_per_request": loop_cpu,
        "telemetry_cost_p50_ms": outside["http_gateway_telemetry"] - outside["http_gateway"],
        "completions_recorded": recorded,
        "goals": {"http_overhead_p50_ms_max": 5.0},
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
    parser.add_argument("--database-url", default=POSTGRES, help="PostgreSQL for the gateway")
    parser.add_argument("--victims", type=int, default=30, help="ide requests per phase")
    parser.add_argument("--fifo-victims", type=int, default=1, help="the same, first come first")
    parser.add_argument("--overload-tokens", type=int, default=128, help="tokens per request")
    parser.add_argument("--overload-seconds", type=float, default=30.0, help="open-loop length")
    parser.add_argument(
        "--only-fairness", action="store_true", help="run the two-team and overload parts only"
    )
    parser.add_argument(
        "--only-telemetry", action="store_true", help="run the telemetry overhead part only"
    )
    parser.add_argument(
        "--only-latency",
        action="store_true",
        help="run the latency paths only (OpenAI SDK, lean SSE, Tabby, Ollama, gateway)",
    )
    args = parser.parse_args()
    base = tiny_base_cached(Path(os.environ.get("TAILOR_TEST_CACHE", "/tmp/tailor-test-cache")))
    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    store = FileStore(work / "objects")
    out = ROOT / "bench" / "results" / "serve.json"
    # --only-fairness / --only-telemetry / --only-latency: the other figures stay as the last
    # full run left them.
    if args.only_latency:
        result = json.loads(out.read_text())
        merge_latency(result, latency_only(base, store, args))
        out.write_text(json.dumps(result, indent=2) + "\n")
        print_table(result)
        return
    if args.only_telemetry:
        result = json.loads(out.read_text())
        result["telemetry"] = telemetry_overhead(base, store, args)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result["telemetry"], indent=2))
        return
    if args.only_fairness:
        result = json.loads(out.read_text())
    else:
        result = measure(base, store, args)
        result["telemetry"] = telemetry_overhead(base, store, args)
    result["fairness"] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average": os.getloadavg(),
        "method": "two teams on one engine (16-row batch), tiny model, lean SSE clients in child "
        f"processes. two_teams: team ide sends {args.victims} ordinary {VICTIM_TOKENS}-token FIM "
        "completions one after another, alone (half before, half after the flood) and while "
        "team flood keeps 10 requests of n=16, max_tokens=480 going (closed loop, rate limits "
        "and queue bounds out of the way: the reviewer's flood); the same flood against the "
        "engine scheduling first come, first served (`fifo`, the engine before this change) "
        f"with {args.fifo_victims} ide requests. overload: capacity measured with 16 closed-loop "
        f"clients of {args.overload_tokens}-token completions for {CAPACITY_S:g}s, then "
        "open-loop arrivals (one team) at twice "
        f"that for {args.overload_seconds:g}s with the gateway's default queue bounds",
        "two_teams": two_teams(base, store, args),
        "overload": overload(base, store, args),
        "goals": {"victim_ttft_ratio_max": 2.0},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)


def latency_paths(
    engine: TailorEngine,
    live: Live,
    new_client: Callable[[], Any],
    keys: list[str],
    models: dict[str, str],
    args: argparse.Namespace,
) -> tuple[dict[str, list[Any]], dict[str, float], float]:
    """Every path's timings, interleaved round by round (see `latencies`), the gateway's lookup
    times and the process's RSS with one adapter loaded."""
    remote = RemoteClient(str(new_client().base_url))
    every_live = serve_engine(engine, models, stream_interval_s=0.0)
    every = RemoteClient(f"{every_live.url}/v1")
    db = bench_database(args.database_url, models)
    cache: GrantCache = NotifiedCache(db.engine, routing_channel(db.engine))
    cached = Routing.on(db.engine, cache)
    gateway_live = serve_engine(engine, models, lookup=cached.lookup, resources=[cache])
    gateway = RemoteClient(f"{gateway_live.url}/v1", db.token)
    uncached_live = serve_engine(engine, models, lookup=Routing.on(db.engine).lookup)
    uncached = RemoteClient(f"{uncached_live.url}/v1", db.token)
    clients = (remote, every, gateway, uncached)
    for _ in range(3):  # warm-up: adapter a0 loaded, code paths hot
        for client in clients:
            client.time("a0")
        for mode in ("lean", "whole", "tabby", "ollama"):
            remote.time("a0", mode)
    rss_one = rss_mb()
    loops = [live, every_live, gateway_live, uncached_live]
    paths = latencies(engine, keys[0], remote, every, gateway, uncached, loops, args.requests)
    for client in clients:
        client.close()
    routing = {
        "cached_ms": lookup_ms(cached.lookup, db.token),
        "one_query_ms": lookup_ms(Routing.on(db.engine).lookup, db.token),
        "two_transactions_before_ms": lookup_ms(two_transaction_lookup(db.engine), db.token),
    }
    for server in (every_live, gateway_live, uncached_live):
        server.server.should_exit = True
    db.drop()
    return paths, routing, rss_one


def latency_only(base: Path, store: FileStore, args: argparse.Namespace) -> dict[str, Any]:
    """The latency paths and the gateway lookups again (baseline: the engine called directly
    in the same rounds), merged into the last full run's figures by `main`."""
    keys = make_adapters(base, store, 1)
    models = {"a0": keys[0]}
    engine, live, new_client = start_stack(base, store, models, "batched")
    paths, routing, _rss = latency_paths(engine, live, new_client, keys, models, args)
    live.server.should_exit = True
    engine.close()
    direct = paths["direct"]
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average": os.getloadavg(),
        "requests_per_path": args.requests,
        "engine_direct": summarize(direct),
        "figures": {name: http_figures(paths[name], direct) for name in PATHS[1:]},
        "routing": routing,
    }


def merge_latency(result: dict[str, Any], latency: dict[str, Any]) -> None:
    """The latency part of `result` replaced by a run of its own (the rest stays)."""
    result["baseline"]["engine_direct"] = latency["engine_direct"]
    result["baseline"]["gateway_lookup_two_transactions_ms"] = latency["routing"][
        "two_transactions_before_ms"
    ]
    result["baseline"]["gateway_lookup_one_query_ms"] = latency["routing"]["one_query_ms"]
    result["figures"].update(latency["figures"])
    result["figures"]["gateway_lookup_cached_ms"] = latency["routing"]["cached_ms"]
    result["latency_run"] = {
        k: latency[k] for k in ("date", "load_average", "requests_per_path")
    } | {"note": "latency paths and lookups from this run; throughput, memory from `date`'s"}


def measure(base: Path, store: FileStore, args: argparse.Namespace) -> dict[str, Any]:
    """HTTP overhead, gateway lookups, multi-adapter throughput and memory: the figures before
    the two-team part."""
    keys = make_adapters(base, store, args.clients)
    models = {f"a{i}": k for i, k in enumerate(keys)}
    rss_start = rss_mb()
    engine, live, new_client = start_stack(base, store, models, "batched")
    paths, routing, rss_one = latency_paths(engine, live, new_client, keys, models, args)
    direct = paths["direct"]
    stacked = compare_throughput(new_client, args)
    stacked_mb = engine.adapters.stacked.nbytes / 2**20 if engine.adapters.stacked else 0.0
    rss_many = rss_mb()
    live.server.should_exit = True
    engine.close()
    engine, live, new_client = start_stack(base, store, models, "peft")
    new_client().completions.create(model="a0", prompt=PREFIX, max_tokens=4)  # load a0
    peft = compare_throughput(new_client, args)
    live.server.should_exit = True
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
            "model": "tiny GPTBigCode (tailor.demo.tiny)",
            "completion_tokens": TOKENS,
            "requests_per_path": args.requests,
            "latency_method": "paths interleaved round by round, clients in a child process "
            "as an IDE is; overhead = median over rounds of (HTTP - direct); "
            "outside_engine = client latency minus the engine's own time (submit to last "
            "chunk) for the same request; engine_slowdown = median over rounds of the "
            "engine's own time under HTTP minus direct. `http`: OpenAI SDK, streamed, chunks "
            "between the first and last sent at most every 20 ms (the default), token and model "
            "looked up in a dictionary; `http_gateway`: the same through the gateway's lookup "
            "on PostgreSQL as deployed (kept until the database announces a change); "
            "`http_gateway_uncached`: the same asking PostgreSQL per request (one query, "
            "TAILOR_SERVE_LOOKUP_CACHE_S=0); `http_lean`: "
            "the same read as raw SSE lines with httpx (llm-ls, which llm-vscode uses, is a "
            "Rust client); `http_every_chunk`: OpenAI SDK, every chunk sent as it comes (the "
            "serving app before this change); `http_non_streaming`: OpenAI SDK, stream=false; "
            "`http_tabby`: tabby-agent's body to /tabby/a0/v1/completions with httpx (whole; "
            "Tabby's protocol cannot ask for exactly 64 tokens, so its answer ends where the "
            "model's block does and only its outside_engine figure compares); `http_ollama`: "
            "Continue's /api/generate body, NDJSON lines read with httpx (num_predict 64, no "
            "ignore_eos: the same caveat); "
            "event_loop_cpu = CPU time of the servers' event-loop threads per request (what the "
            "loop can take of the GIL the engine's thread decodes with; robust to the machine's "
            "noise where the engine's wall time is not)",
            "clients": args.clients,
            "requests_per_client": args.per_client,
            "throughput_rounds": args.rounds,
            "adapter_mb_each": round(adapter_mb, 3),
        },
        "baseline": {
            "engine_direct": summarize(direct),
            "gateway_lookup_two_transactions_ms": routing["two_transactions_before_ms"],
            "gateway_lookup_one_query_ms": routing["one_query_ms"],
            "throughput_1_adapter_tok_s": stacked["throughput_1_adapter_tok_s"],
            "tok_per_server_cpu_s_1_adapter": stacked["tok_per_server_cpu_s_1_adapter"],
            "rss_mb_1_adapter": rss_one,
            # The engine before stacked LoRA: every adapter through PEFT's adapter_names.
            "peft_adapter_names": peft,
        },
        "figures": {
            **{name: http_figures(paths[name], direct) for name in PATHS[1:]},
            "gateway_lookup_cached_ms": routing["cached_ms"],
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
        "goals": {
            "http_overhead_p50_ms_max": 5.0,
            "http_overhead_figure": "outside_engine_p50_ms of `http_lean` (the HTTP stack), of "
            "`http` (the same plus the OpenAI Python SDK's own work) and of `http_gateway` (the "
            "same plus the gateway's token and model lookup, as deployed); Tabby's and "
            "Ollama's paths (`http_tabby`, `http_ollama`) are held to the same goal",
            "throughput_ratio_min": 0.8,
        },
        "vllm": "not measured: no GPU was available to this task (vLLM needs one)",
    }
    return result


def _span(figures: dict[str, Any], what: str) -> str:
    low, high = figures["engine_slowdown_iqr_ms" if what == "engine" else "overhead_iqr_ms"]
    return f"{low:+.0f}..{high:+.0f}"


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
        *(
            (
                f"HTTP overhead p50 (ms): {label}",
                "",
                f"outside engine {f[name]['outside_engine_p50_ms']:.2f}; engine "
                f"{f[name]['engine_slowdown_p50_ms']:+.1f} [{_span(f[name], 'engine')}]; "
                f"total {f[name]['overhead_p50_ms']:+.1f} [{_span(f[name], 'overhead')}]; "
                f"loop CPU {f[name]['event_loop_cpu_ms_per_request']:.1f}",
            )
            for name, label in (
                ("http", "SDK, stream (goal <= 5)"),
                ("http_gateway", "SDK, stream, gateway (cached lookup)"),
                ("http_gateway_uncached", "SDK, stream, gateway (query per request)"),
                ("http_lean", "lean SSE client"),
                ("http_every_chunk", "SDK, every chunk (before)"),
                ("http_non_streaming", "SDK, non-streaming"),
                ("http_tabby", "Tabby completion (whole)"),
                ("http_ollama", "Ollama generate (NDJSON)"),
            )
        ),
        ("time to first token overhead p50 (ms)", "", f"{h['ttft_overhead_p50_ms']:.2f}"),
        (
            "gateway lookup (ms): 2 txns | 1 query | cached",
            f"{r['baseline']['gateway_lookup_two_transactions_ms']:.2f}",
            f"{r['baseline']['gateway_lookup_one_query_ms']:.2f} | "
            f"{f['gateway_lookup_cached_ms']:.3f}",
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
    print(f"{'measure':46} {'baseline (direct / 1)':>22} {'Tailor HTTP / 20':>58}")
    for name, base, fig in rows:
        print(f"{name:46} {base:>22} {fig:>58}")
    print(f"vLLM: {r['vllm']}")
    print_fairness(r["fairness"])


def print_fairness(f: dict[str, Any]) -> None:
    t, o = f["two_teams"], f["overload"]
    idle, fair, fifo = t["victim_idle"], t["victim_flooded_fair"], t["victim_flooded_fifo"]

    def ttft(s: dict[str, float]) -> str:
        return f"{s['ttft_p50_ms']:.1f} / {s['ttft_p95_ms']:.1f}"

    rows = [
        ("ide TTFT p50 / p95 (ms), alone", ttft(idle)),
        (
            "ide TTFT under the flood, fair scheduling",
            f"{ttft(fair)}  (x{t['ttft_ratio_p50']:.2f} / x{t['ttft_ratio_p95']:.2f}, goal <= 2)",
        ),
        ("ide TTFT under the flood, first come first served", ttft(fifo)),
        (
            "a decoding step (ms): alone | under the flood",
            f"{t['victim_step_ms_idle']:.1f} | {t['victim_step_ms_flooded_fair']:.1f}",
        ),
        (
            "overload: capacity -> arrivals (req/s)",
            f"{o['capacity_requests_per_s']:.1f} -> {o['arrival_requests_per_s']:.1f}",
        ),
        (
            "overload: 503 share | with Retry-After",
            f"{o['share_503']:.2f} | {o['share_of_503_with_retry_after'] or 0:.2f}  "
            f"{o['statuses']}",
        ),
        (
            "overload: admitted TTFT p50 / p95 / max (ms)",
            f"{o['admitted_ttft_p50_ms']:.0f} / {o['admitted_ttft_p95_ms']:.0f} / "
            f"{o['admitted_ttft_max_ms']:.0f}",
        ),
    ]
    for name, fig in rows:
        print(f"{name:50} {fig:>76}")


if __name__ == "__main__":
    main()
