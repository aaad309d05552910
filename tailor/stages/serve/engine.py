"""TailorEngine: one base model per process, many LoRA adapters, continuous mixed-adapter batching.

A single worker thread owns the model. Requests become sequences (one per choice) that join
the running batch at the next decoding step: their prompts are prefilled together, their KV
caches are left-padded onto the batch's, and every step runs one forward for all rows, each
row on its own adapter: the adapters' LoRA weights are stacked per layer and gathered per row
(`batched_lora`), with PEFT's `adapter_names` for adapters only PEFT can run. Finished or
cancelled rows leave the batch at once, freeing their cache. Decoding is our own token loop so
that every choice has its own seed, stop rules and streaming sink.

Who joins the batch is `FairScheduler`'s decision: max-min fair rows per team, preempting a
row of a team that holds two more than a waiting team. A preempted row is swapped out, not
recomputed: its slice of the cache is set aside with it and merged back when it resumes, so
stepping aside costs it a copy, not a prefill of everything it generated, and its text is
what it would have been. The queue is bounded: a team may have
`max_queued_per_team` choices waiting (more are refused at submit, QueueFullError), and a
request none of whose choices started within `queue_timeout_s` is dropped (QueueTimeoutError
to its sink); both cost the batch nothing and tell the caller when to retry.
"""

from __future__ import annotations

import queue
import shutil
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tailor.fim import FimStyle
from tailor.stages.serve.generation import (
    ChunkSink,
    Generation,
    GenerationChunk,
    GenerationRequest,
    QueueFullError,
    QueueTimeoutError,
    TokenLogprob,
)
from tailor.stages.serve.lora_cache import (
    BASE,
    AdapterListener,
    LoraBackend,
    LoraCache,
    normalize_key,
)
from tailor.stages.serve.model_files import fetch_model
from tailor.stages.serve.postprocess import Postprocessor
from tailor.stages.serve.prompting import Prompter
from tailor.stages.serve.sampling import next_token, rng_for, token_logprobs
from tailor.stages.serve.scheduling import FairScheduler
from tailor.stages.serve.streaming import collect, stream_chunks
from tailor.storage import ObjectStore


class EngineClosedError(RuntimeError):
    """The engine is shutting down and takes no new requests."""


@dataclass(frozen=True)
class Finished:
    """How one choice ended (kept for a while, so operators and tests can see it)."""

    request_id: int
    index: int
    reason: str  # "stop" | "length" | "cancelled" | "error" | "queue_timeout"
    completion_tokens: int
    team: str = ""


@dataclass(frozen=True)
class Admitted:
    """One choice prefilled into the batch (`resumed`: after a preemption)."""

    request_id: int
    index: int
    team: str
    resumed: bool


@dataclass(eq=False)
class _Job:
    """What the choices of one request share: who asked and until when it may wait to start."""

    request_id: int
    team: str
    prompt_tokens: int
    start_by: float  # engine clock
    started: bool = False


@dataclass(eq=False)
class _Sequence:
    job: _Job
    index: int
    request: GenerationRequest
    prompt_ids: list[int]
    sink: ChunkSink
    post: Postprocessor
    rng: torch.Generator
    adapter_key: str | None
    ids: list[int] = field(default_factory=list)
    adapter_name: str = BASE
    cancelled: bool = False
    done: bool = False
    queued: bool = True  # counts against its team's queue until it first starts or ends
    parked: _Batch | None = None  # its cache while preempted

    @property
    def request_id(self) -> int:
        return self.job.request_id

    @property
    def team(self) -> str:
        return self.job.team

    @property
    def serial(self) -> int:
        return self.job.request_id

    @property
    def progress(self) -> int:
        return len(self.prompt_ids) + len(self.ids)


@dataclass
class _Batch:
    rows: list[_Sequence]
    cache: Any  # transformers DynamicCache, batch-first
    mask: torch.Tensor  # [rows, cached length]: 0 where a row is left padding


class _Ticket:
    def __init__(self, seqs: list[_Sequence]) -> None:
        self._seqs = seqs

    def cancel(self) -> None:
        for seq in self._seqs:
            seq.cancelled = True  # the worker drops the row at its next step

    def tokens_used(self) -> int:
        job = self._seqs[0].job
        return (job.prompt_tokens if job.started else 0) + sum(len(s.ids) for s in self._seqs)


class TailorEngine:
    """The in-process Generator: base model + hot-swapped LoRA adapters from the object store."""

    def __init__(
        self,
        model_ref: str,
        store: ObjectStore,
        *,
        loader: Callable[[str], Path] = fetch_model,
        adapter_budget_bytes: int = 512 * 2**20,
        max_batch_size: int = 16,
        fim_style: FimStyle | None = None,
        device: str = "cpu",
        lora_backend: LoraBackend = "batched",
        queue_timeout_s: float = 10.0,
        max_queued_per_team: int = 64,
        fair: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.model_ref = model_ref
        self.loader = loader
        self.device = torch.device(device)
        self.max_batch_size = max_batch_size
        self.fim_style = fim_style
        self.queue_timeout_s = queue_timeout_s
        self.max_queued_per_team = max_queued_per_team
        self.clock = clock
        self.prompter: Prompter | None = None
        self.finished: deque[Finished] = deque(maxlen=1024)
        self.admitted: deque[Admitted] = deque(maxlen=1024)
        self.preemptions = 0
        self._workdir = Path(tempfile.mkdtemp(prefix="tailor-serve-"))
        self.adapters = LoraCache(
            store, adapter_budget_bytes, self._workdir / "adapters", backend=lora_backend
        )
        self._inbox: queue.SimpleQueue[_Sequence] = queue.SimpleQueue()
        self._waiting: FairScheduler[_Sequence] = FairScheduler(fair=fair)
        self._queued: Counter[str] = Counter()  # choices waiting to start, per team
        self._rows: list[_Sequence] = []  # the batch's rows as of the last step
        self._active = 0
        self._ready = threading.Event()
        self._closing = threading.Event()
        self._load_error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._serial = 0
        self._lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> TailorEngine:
        """Load the base model and begin serving, in the worker thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="tailor-engine", daemon=True)
            self._thread.start()
        return self

    def is_ready(self) -> bool:
        """True once the base model is loaded and requests can be served."""
        return self._ready.is_set() and self._load_error is None and not self._closing.is_set()

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until the base model is loaded; re-raise a loading failure."""
        self.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"base model {self.model_ref!r} not loaded after {timeout}s")
        if self._load_error is not None:
            raise RuntimeError(f"loading {self.model_ref!r} failed") from self._load_error

    def close(self, timeout: float = 30.0) -> None:
        """Take no new requests, finish the running ones (up to `timeout`), free the model."""
        self._closing.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.adapters.close()
        shutil.rmtree(self._workdir, ignore_errors=True)

    def add_listener(self, listener: AdapterListener) -> None:
        """Call `listener(event, adapter_key)` on every adapter load and eviction."""
        self.adapters.listeners.append(listener)

    def active_sequences(self) -> int:
        """Choices submitted and not yet finished."""
        return self._active

    def batch_shares(self) -> dict[str, int]:
        """Rows of the running batch per team."""
        return dict(Counter(seq.team for seq in self._rows if not seq.done))

    # -- the Generator contract --------------------------------------------------------------

    def submit(
        self, request: GenerationRequest, sink: ChunkSink, *, prompt_ids: list[int] | None = None
    ) -> _Ticket:
        """Queue a request; its chunks go to `sink` from the worker thread.

        `prompt_ids` are the request's, when the caller has counted them already. Raises
        QueueFullError when the team has too many choices waiting.
        """
        if self._closing.is_set():
            raise EngineClosedError("the engine is shutting down")
        self.wait_ready()
        assert self.prompter is not None
        if prompt_ids is None:
            prompt_ids = self.prompter.check_fits(request)
        key = normalize_key(request.adapter) if request.adapter else None
        team = request.team
        with self._lock:
            queued = self._queued[team]
            # A team with nothing waiting may always queue one request, however many choices.
            if queued and queued + request.n > self.max_queued_per_team:
                raise QueueFullError(
                    f"team {team!r} already has {queued} choices waiting to start "
                    f"(at most {self.max_queued_per_team}); retry shortly",
                    self.queue_timeout_s,
                )
            self._queued[team] += request.n
            self._serial += 1
            rid = self._serial
            self._active += request.n
        if key is not None:
            self.adapters.prefetch(key)
        job = _Job(rid, team, len(prompt_ids), self.clock() + self.queue_timeout_s)
        seqs = [
            _Sequence(
                job,
                i,
                request,
                prompt_ids,
                sink,
                Postprocessor(self.prompter.options(request)),
                rng_for(request.seed, i),
                key,
            )
            for i in range(request.n)
        ]
        for seq in seqs:
            self._inbox.put(seq)
        return _Ticket(seqs)

    def stream(self, request: GenerationRequest) -> Iterator[GenerationChunk]:
        """Chunks as they come; closing the iterator cancels the request."""
        return stream_chunks(self.submit, request)

    def generate(self, request: GenerationRequest) -> list[Generation]:
        """Whole post-processed generations, one per choice."""
        return collect(self.stream(request), request.n)

    # -- the worker --------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._load_base()
        except BaseException as exc:  # reported by wait_ready / readiness
            self._load_error = exc
            self._ready.set()
            return
        self._ready.set()
        batch: _Batch | None = None
        with torch.inference_mode():
            while True:
                self._collect()
                batch = self._schedule(batch)
                if batch is not None:
                    batch = self._step(batch)
                    self._rows = batch.rows if batch is not None else []
                    continue
                self._rows = []
                if self._closing.is_set() and self._inbox.empty() and not self._waiting:
                    return
                self._collect(wait_s=0.05)  # nothing to run: wait for a request

    def _load_base(self) -> None:
        import peft  # noqa: F401  (imported now: it takes seconds, a first request should not)
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = self.loader(self.model_ref)
        tokenizer = AutoTokenizer.from_pretrained(path)
        model: Any = AutoModelForCausalLM.from_pretrained(path)
        model = model.to(self.device).eval()
        cfg = model.config
        context = getattr(cfg, "n_positions", None) or getattr(cfg, "max_position_embeddings", None)
        self.prompter = Prompter(tokenizer, int(context or 2048), self.fim_style)
        self.adapters.attach(model)

    def _collect(self, wait_s: float = 0.0) -> None:
        """Queue what was submitted (waiting up to `wait_s` for something); drop the cancelled
        and the expired from the queues."""
        try:
            if wait_s:
                self._waiting.push(self._inbox.get(timeout=wait_s))
            while True:
                self._waiting.push(self._inbox.get_nowait())
        except queue.Empty:
            pass
        if not self._waiting:
            return
        now = self.clock()
        for seq in self._waiting.remove_if(lambda s: s.cancelled or _expired(s, now)):
            if seq.cancelled:
                self._finish(seq, "cancelled")
            else:
                self._expire(seq)

    def _schedule(self, batch: _Batch | None) -> _Batch | None:
        """Preempt and admit as the scheduler plans; prefill the admitted.

        The newcomers are prefilled before the batch is cut for the preempted rows: their first
        tokens go out first, not after a copy of every running row's cache.
        """
        if not self._waiting:
            return batch
        running = batch.rows if batch is not None else []
        plan = self._waiting.plan(running, self.max_batch_size, self._startable)
        leaving = set(map(id, plan.preempt))
        staying = [r for r in running if id(r) not in leaving]
        bound = self._bind(plan.admit, staying)
        fresh = self._prefill_or_fail([s for s in bound if s.parked is None])
        if plan.preempt and batch is not None:
            batch = self._preempt(batch, plan.preempt)
        for seq in bound:
            if seq.parked is not None:  # resumed: its cache rejoins, nothing is recomputed
                batch = seq.parked if batch is None else _merge(batch, seq.parked)
                seq.parked = None
        if fresh is None:
            return batch
        return self._prune(fresh if batch is None else _merge(batch, fresh))

    def _startable(self, seq: _Sequence) -> bool:
        """True once the choice's adapter files are downloaded (or it needs none)."""
        return seq.adapter_key is None or self.adapters.download(seq.adapter_key).done()

    def _preempt(self, batch: _Batch, seqs: list[_Sequence]) -> _Batch | None:
        """Take rows out of the batch, each with its slice of the cache, back to the fronts of
        their teams' queues."""
        leaving = set(map(id, seqs))
        for row, seq in enumerate(batch.rows):
            if id(seq) in leaving:
                seq.parked = _row(batch, row)
                self._waiting.push(seq, front=True)
        self.preemptions += len(seqs)
        return self._keep(batch, [i for i, s in enumerate(batch.rows) if id(s) not in leaving])

    def _bind(self, seqs: list[_Sequence], running: list[_Sequence]) -> list[_Sequence]:
        """The admitted whose adapters are bound (the others failed), started."""
        bound: list[_Sequence] = []
        for seq in seqs:
            if self._bind_adapter(seq, {r.adapter_name for r in running + bound}):
                bound.append(seq)
        for seq in bound:
            self._start(seq)
        return bound

    def _prefill_or_fail(self, seqs: list[_Sequence]) -> _Batch | None:
        if not seqs:
            return None
        try:
            return self._prefill(seqs)
        except Exception as exc:
            self._fail(seqs, exc)
            return None

    def _start(self, seq: _Sequence) -> None:
        self.admitted.append(Admitted(seq.request_id, seq.index, seq.team, bool(seq.ids)))
        seq.job.started = True
        self._dequeue(seq)

    def _dequeue(self, seq: _Sequence) -> None:
        """The choice no longer counts against its team's queue (it started, or it ended)."""
        if seq.queued:
            seq.queued = False
            with self._lock:
                self._queued[seq.team] -= 1
                if not self._queued[seq.team]:
                    del self._queued[seq.team]

    def _expire(self, seq: _Sequence) -> None:
        waited = self.queue_timeout_s
        error = QueueTimeoutError(
            f"the server is overloaded: this request could not start within {waited:g}s; "
            "retry shortly",
            waited,
        )
        self._fail([seq], error, reason="queue_timeout")

    def _bind_adapter(self, seq: _Sequence, pinned: set[str]) -> bool:
        if seq.adapter_key is None:
            return True
        try:
            seq.adapter_name = self.adapters.acquire(seq.adapter_key, pinned)
        except Exception as exc:
            self._fail([seq], exc)
            return False
        return True

    def _forward(
        self,
        rows: list[_Sequence],
        ids: torch.Tensor,
        mask: torch.Tensor,
        positions: torch.Tensor,
        cache: Any,
    ) -> torch.Tensor:
        with self.adapters.routing([r.adapter_name for r in rows]) as extra:
            out = self.adapters.model(
                input_ids=ids.to(self.device),
                attention_mask=mask.to(self.device),
                position_ids=positions.to(self.device),
                past_key_values=cache,
                use_cache=True,
                **extra,
            )
        return out.logits[:, -1, :]

    def _prefill(self, seqs: list[_Sequence]) -> _Batch:
        from transformers import DynamicCache

        width = max(len(s.prompt_ids) for s in seqs)
        ids = torch.zeros((len(seqs), width), dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, seq in enumerate(seqs):
            ids[row, width - len(seq.prompt_ids) :] = torch.tensor(seq.prompt_ids)
            mask[row, width - len(seq.prompt_ids) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache()
        logits = self._forward(seqs, ids, mask, positions, cache)
        for row, seq in enumerate(seqs):
            self._take(seq, logits[row])
        return _Batch(seqs, cache, mask)

    def _step(self, batch: _Batch) -> _Batch | None:
        rows = batch.rows
        ids = torch.tensor([[s.ids[-1]] for s in rows], dtype=torch.long)
        positions = torch.tensor([[len(s.prompt_ids) + len(s.ids) - 1] for s in rows])
        mask = torch.cat([batch.mask, torch.ones((len(rows), 1), dtype=torch.long)], dim=1)
        try:
            logits = self._forward(rows, ids, mask, positions, batch.cache)
        except Exception as exc:
            self._fail(rows, exc)
            return None
        for row, seq in enumerate(rows):
            self._take(seq, logits[row])
        return self._prune(_Batch(rows, batch.cache, mask))

    # -- one token of one sequence -----------------------------------------------------------

    def _take(self, seq: _Sequence, logits: torch.Tensor) -> None:
        """Choose seq's next token, stream what is safe to send, finish it if it is done."""
        if seq.cancelled:
            self._finish(seq, "cancelled")
            return
        assert self.prompter is not None
        req = seq.request
        specials = self.prompter.special_ids
        token = next_token(
            logits, req.temperature, req.top_p, seq.rng, banned=specials if req.ignore_eos else ()
        )
        if token in specials:
            self._finish(seq, "stop")  # EOS or a FIM token: the middle is complete
            return
        seq.ids.append(token)
        lps = self._logprobs(logits, token, req.logprobs)
        text = self.prompter.decode(seq.ids)
        delta, stopped = seq.post.feed(text)
        full = len(seq.prompt_ids) + len(seq.ids) >= self.prompter.context_length
        if stopped:
            self._finish(seq, "stop", delta, lps)
        elif len(seq.ids) >= req.max_new_tokens or full:
            self._finish(seq, "length", delta, lps)
        elif delta or lps:
            self._send(seq, GenerationChunk(index=seq.index, text=delta, logprobs=lps))

    def _logprobs(self, logits: torch.Tensor, token: int, top: int | None) -> list[TokenLogprob]:
        if top is None:
            return []
        assert self.prompter is not None
        lp, best = token_logprobs(logits, token, top)
        decode = self.prompter.decode
        return [
            TokenLogprob(token=decode([token]), logprob=lp, top={decode([i]): v for i, v in best})
        ]

    def _finish(
        self, seq: _Sequence, reason: str, delta: str = "", lps: list[TokenLogprob] | None = None
    ) -> None:
        if seq.done:
            return
        seq.done = True
        seq.parked = None
        self._dequeue(seq)
        with self._lock:
            self._active -= 1
        self.finished.append(Finished(seq.request_id, seq.index, reason, len(seq.ids), seq.team))
        if reason == "cancelled":
            return  # nobody is listening
        assert self.prompter is not None
        if seq.post.cut is None:
            delta += seq.post.finish(self.prompter.decode(seq.ids))
        self._send(
            seq,
            GenerationChunk(
                index=seq.index,
                text=delta,
                finish_reason="length" if reason == "length" else "stop",
                prompt_tokens=len(seq.prompt_ids),
                completion_tokens=len(seq.ids),
                logprobs=lps or [],
            ),
        )

    def _send(self, seq: _Sequence, item: GenerationChunk | Exception) -> None:
        try:
            seq.sink(item)
        except Exception:  # the listener is gone (closed event loop): stop generating for it
            seq.cancelled = True

    def _fail(self, seqs: list[_Sequence], exc: Exception, reason: str = "error") -> None:
        for seq in seqs:
            if not seq.done:
                seq.done = True
                seq.parked = None
                self._dequeue(seq)
                with self._lock:
                    self._active -= 1
                self.finished.append(
                    Finished(seq.request_id, seq.index, reason, len(seq.ids), seq.team)
                )
                self._send(seq, exc)

    def _prune(self, batch: _Batch) -> _Batch | None:
        """Drop finished rows (and the padding columns no row needs any more)."""
        for seq in batch.rows:
            if seq.cancelled and not seq.done:
                self._finish(seq, "cancelled")
        return self._keep(batch, [i for i, s in enumerate(batch.rows) if not s.done])

    def _keep(self, batch: _Batch, keep: list[int]) -> _Batch | None:
        """The batch with only rows `keep` (and the padding columns no row needs any more)."""
        if not keep:
            return None
        if len(keep) < len(batch.rows):
            index = torch.tensor(keep, dtype=torch.long)
            batch.cache.batch_select_indices(index.to(self.device))
            batch = _Batch([batch.rows[i] for i in keep], batch.cache, batch.mask[index])
        first = int(batch.mask.any(dim=0).long().argmax().item())
        if first > 0:
            for layer in batch.cache.layers:
                layer.keys = layer.keys[..., first:, :]
                layer.values = layer.values[..., first:, :]
            batch.mask = batch.mask[:, first:]
        return batch


def _expired(seq: _Sequence, now: float) -> bool:
    """A choice of a request none of whose choices started in time (a preempted one started)."""
    return not seq.job.started and now > seq.job.start_by


def _row(batch: _Batch, row: int) -> _Batch:
    """A one-row batch holding a copy of row `row`'s cache and mask."""
    from transformers import DynamicCache

    one = slice(row, row + 1)
    kvs = [(layer.keys[one].clone(), layer.values[one].clone()) for layer in batch.cache.layers]
    return _Batch([batch.rows[row]], DynamicCache(kvs), batch.mask[one].clone())


def _merge(old: _Batch, new: _Batch) -> _Batch:
    """One batch from two: the shorter cache is left-padded (masked) to the longer one's length."""
    width = max(old.mask.shape[1], new.mask.shape[1])

    def pad(t: torch.Tensor, dim: int) -> torch.Tensor:
        missing = width - t.shape[dim]
        if missing == 0:
            return t
        shape = list(t.shape)
        shape[dim] = missing
        return torch.cat([t.new_zeros(shape), t], dim=dim)

    for a, b in zip(old.cache.layers, new.cache.layers, strict=True):
        a.keys = torch.cat([pad(a.keys, -2), pad(b.keys, -2)], dim=0)
        a.values = torch.cat([pad(a.values, -2), pad(b.values, -2)], dim=0)
    mask = torch.cat([pad(old.mask, 1), pad(new.mask, 1)], dim=0)
    return _Batch(old.rows + new.rows, old.cache, mask)
