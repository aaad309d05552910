"""VLLMBackend: the same Generator over a vLLM OpenAI server started with `--enable-lora`.

Tailor builds the FIM prompt itself and sends token ids: vLLM's `/v1/completions` rejects
`suffix`, so it is never passed through. Adapters are copied from the object store into a
directory the vLLM server also sees (a shared volume in the pod) and registered at runtime
with `/v1/load_lora_adapter`; at most `max_loras` stay registered, least recently used out.
Post-processing (stop rules, block end, suffix overlap) runs here, as for the Tailor engine,
and closing the HTTP stream is how vLLM is told to stop generating.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from tailor.stages.serve.generation import (
    ChunkSink,
    Generation,
    GenerationChunk,
    GenerationRequest,
)
from tailor.stages.serve.lora_cache import (
    ADAPTER_FILES,
    AdapterListener,
    AdapterNotFoundError,
    normalize_key,
    store_prefix,
)
from tailor.stages.serve.postprocess import Postprocessor
from tailor.stages.serve.prompting import Prompter
from tailor.stages.serve.streaming import collect, stream_chunks
from tailor.storage import ObjectStore, StoreError


class VLLMError(RuntimeError):
    """The vLLM server refused or failed a call."""


class _VTicket:
    def __init__(self, prompt_tokens: int) -> None:
        self.cancelled = threading.Event()
        self.prompt_tokens = prompt_tokens
        self.generated = 0  # tokens relayed so far; once any arrived, the prompt was read

    def cancel(self) -> None:
        self.cancelled.set()

    def tokens_used(self) -> int:
        return (self.prompt_tokens if self.generated else 0) + self.generated


class VLLMBackend:
    """A Generator that forwards to vLLM, with Tailor's prompts and post-processing."""

    def __init__(
        self,
        base_url: str,
        prompter: Prompter,
        store: ObjectStore,
        adapter_dir: Path,
        *,
        served_model: str,
        max_loras: int = 8,
        api_key: str | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.prompter: Prompter | None = prompter
        self.store = store
        self.adapter_dir = adapter_dir
        self.served_model = served_model
        self.max_loras = max_loras
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = client or httpx.Client(headers=headers, timeout=httpx.Timeout(300.0))
        self.loras: OrderedDict[str, str] = OrderedDict()  # adapter key -> vLLM lora_name
        self.listeners: list[AdapterListener] = []
        self._lock = threading.Lock()
        self._serial = 0

    def start(self) -> VLLMBackend:
        """Nothing to load here: vLLM loads the base model itself."""
        return self

    def is_ready(self) -> bool:
        """Ready when vLLM answers its health probe."""
        try:
            return self.client.get(f"{self.base_url}/health", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def add_listener(self, listener: AdapterListener) -> None:
        """Call `listener(event, key)` when an adapter is registered or dropped in vLLM."""
        self.listeners.append(listener)

    # -- adapters -----------------------------------------------------------------------------

    def _lora_name(self, key: str) -> str:
        with self._lock:
            if key in self.loras:
                self.loras.move_to_end(key)
                return self.loras[key]
            while len(self.loras) >= self.max_loras:
                old_key, old_name = self.loras.popitem(last=False)
                self._post("/v1/unload_lora_adapter", {"lora_name": old_name})
                self._notify("evict", old_key)
            self._serial += 1
            name = f"tailor-lora-{self._serial}"
            path = self._copy_adapter(key, name)
            self._post("/v1/load_lora_adapter", {"lora_name": name, "lora_path": str(path)})
            self.loras[key] = name
            self._notify("load", key)
            return name

    def _copy_adapter(self, key: str, name: str) -> Path:
        dest = self.adapter_dir / name
        prefix = store_prefix(key)
        for fname in ADAPTER_FILES:
            try:
                self.store.download_file(f"{prefix}/{fname}", dest / fname)
            except StoreError as exc:
                raise AdapterNotFoundError(f"no adapter at {key!r}: {exc}") from exc
        return dest

    def _post(self, path: str, body: dict[str, Any]) -> None:
        resp = self.client.post(f"{self.base_url}{path}", json=body)
        if resp.status_code >= 400:
            raise VLLMError(f"vLLM {path} answered {resp.status_code}: {resp.text[:300]}")

    def _notify(self, event: str, key: str) -> None:
        for listener in self.listeners:
            listener(event, key)

    # -- requests -----------------------------------------------------------------------------

    def completion_body(
        self,
        request: GenerationRequest,
        lora_name: str | None,
        prompt_ids: list[int] | None = None,
    ) -> dict[str, Any]:
        """The JSON sent to vLLM: token-id prompt (FIM built here), never a `suffix`."""
        assert self.prompter is not None
        body: dict[str, Any] = {
            "model": lora_name or self.served_model,
            "prompt": prompt_ids if prompt_ids is not None else self.prompter.check_fits(request),
            "max_tokens": request.max_new_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "n": request.n,
            "stream": True,
            "stream_options": {"include_usage": True},
            "skip_special_tokens": True,
            "ignore_eos": request.ignore_eos,
        }
        if request.stop:
            body["stop"] = list(request.stop)
        if self.prompter.fim is not None:
            fim = self.prompter.fim
            body["stop_token_ids"] = [fim.prefix_id, fim.suffix_id, fim.middle_id]
        if request.seed is not None:
            body["seed"] = request.seed
        if request.logprobs is not None:
            body["logprobs"] = request.logprobs
        return body

    def submit(
        self, request: GenerationRequest, sink: ChunkSink, *, prompt_ids: list[int] | None = None
    ) -> _VTicket:
        """Start the request on a thread that relays vLLM's stream to `sink`."""
        assert self.prompter is not None
        if prompt_ids is None:
            prompt_ids = self.prompter.check_fits(request)  # fail fast, before any thread
        ticket = _VTicket(len(prompt_ids))
        threading.Thread(
            target=self._relay,
            args=(request, prompt_ids, sink, ticket),
            daemon=True,
            name="vllm-relay",
        ).start()
        return ticket

    def _relay(
        self, request: GenerationRequest, ids: list[int], sink: ChunkSink, ticket: _VTicket
    ) -> None:
        try:
            key = normalize_key(request.adapter) if request.adapter else None
            body = self.completion_body(request, self._lora_name(key) if key else None, ids)
            self._stream(body, request, sink, ticket)
        except Exception as exc:
            sink(exc)

    def _stream(
        self, body: dict[str, Any], request: GenerationRequest, sink: ChunkSink, ticket: _VTicket
    ) -> None:
        assert self.prompter is not None
        posts = [Postprocessor(self.prompter.options(request)) for _ in range(request.n)]
        texts = [""] * request.n
        counts = [0] * request.n
        open_ = set(range(request.n))
        prompt_tokens = len(body["prompt"])
        with self.client.stream("POST", f"{self.base_url}/v1/completions", json=body) as resp:
            if resp.status_code >= 400:
                raise VLLMError(f"vLLM answered {resp.status_code}: {resp.read()[:300]!r}")
            for choice in _sse_choices(resp.iter_lines()):
                if ticket.cancelled.is_set() or not open_:
                    return  # leaving the block closes the stream: vLLM aborts the request
                i = int(choice["index"])
                if i not in open_:
                    continue
                texts[i] += choice.get("text") or ""
                counts[i] += 1
                ticket.generated += 1
                delta, stopped = posts[i].feed(texts[i])
                reason = choice.get("finish_reason")
                if stopped or reason is not None:
                    if not stopped:
                        delta += posts[i].finish(texts[i])
                    open_.discard(i)
                    finish = "length" if reason == "length" and not stopped else "stop"
                    sink(
                        GenerationChunk(
                            index=i,
                            text=delta,
                            finish_reason=finish,
                            prompt_tokens=prompt_tokens,
                            completion_tokens=counts[i],
                        )
                    )
                elif delta:
                    sink(GenerationChunk(index=i, text=delta))

    def stream(self, request: GenerationRequest) -> Iterator[GenerationChunk]:
        """Chunks as they come; closing the iterator cancels the request."""
        return stream_chunks(self.submit, request)

    def generate(self, request: GenerationRequest) -> list[Generation]:
        """Whole post-processed generations, one per choice."""
        return collect(self.stream(request), request.n)


def _sse_choices(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """The `choices` entries of an OpenAI-style SSE stream, until `[DONE]`."""
    for line in lines:
        if not line.startswith("data:"):
            continue
        data = line[len("data:") :].strip()
        if data == "[DONE]":
            return
        payload = json.loads(data)
        if "error" in payload:
            raise VLLMError(f"vLLM stream error: {payload['error']}")
        yield from payload.get("choices") or []
