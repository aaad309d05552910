"""One endpoint pod on the cluster: the base model and one team's adapters, no database.

The operator mounts the endpoint's `EndpointSpec` as a file (its ConfigMap). The pod serves the
same routes as the gateway over a `TailorEngine`, but it cannot check team tokens (they live in
the database): it answers only the gateway, which sends the team's endpoint token (a random one
per team, in a Secret the Team handler makes in the team namespace and the pod reads as env)
after it has authenticated the caller's team token. The team is the spec's own; a token per
team, not one for the platform, so that no pod holds a secret that opens other teams' pods.

Promotion: the kubelet rewrites a mounted ConfigMap in place when it changes. The spec file is
re-read whenever its stat changes (checked on each request, a `stat` call), so a promoted
version's model name maps to the new adapter prefix at once; the engine downloads and hot-loads
it on first use. The pod is not restarted and the old version's requests finish on it.

Repository context: the spec carries the endpoint's budget (`context_tokens`, set from the
endpoint's context settings when the API applies the resource); the pod retrieves it from its
own team's code index (`teams/<team>/context/`, loaded in the background at start), so a
completion through the cluster gateway gets the same snippets as the embedded gateway gives.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from tailor.config import Settings
from tailor.stages.serve.callers import Caller
from tailor.stages.serve.generation import ChunkSink, GenerationRequest, Ticket
from tailor.stages.serve.lora_cache import normalize_key
from tailor.stages.serve.prompting import Prompter
from tailor.stages.serve.spec import EndpointSpec

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger(__name__)


class EndpointConfigError(ValueError):
    """The mounted endpoint spec is missing or invalid."""


def read_spec(path: Path) -> EndpointSpec:
    """The EndpointSpec in `path` (the operator's ConfigMap file)."""
    try:
        return EndpointSpec.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise EndpointConfigError(f"cannot read the endpoint spec {path}: {exc}") from exc
    except ValidationError as exc:
        raise EndpointConfigError(f"invalid endpoint spec in {path}: {exc}") from exc


def _signature(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)  # follows the kubelet's ..data symlink swap
    return st.st_ino, st.st_mtime_ns, st.st_size


class MountedSpec:
    """The endpoint spec of a mounted file, re-read when the file changes."""

    def __init__(
        self, path: Path, on_change: Callable[[EndpointSpec], object] | None = None
    ) -> None:
        self.path = path
        self.on_change = on_change
        self._lock = threading.Lock()
        self._signature = _signature(path)
        self._spec = read_spec(path)

    def current(self) -> EndpointSpec:
        """The spec as the file says now; a change that does not validate keeps the last one."""
        try:
            signature = _signature(self.path)
        except OSError:
            return self._spec  # mid-swap: the kubelet replaces the link atomically
        if signature == self._signature:
            return self._spec
        with self._lock:
            if signature != self._signature:
                try:
                    spec = read_spec(self.path)
                except EndpointConfigError as exc:
                    log.warning("keeping the last endpoint spec: %s", exc)
                    self._signature = signature
                    return self._spec
                if (spec.team, spec.base_model) != (self._spec.team, self._spec.base_model):
                    # The operator rolls the pods for a new base; a team never changes.
                    log.warning("keeping the last endpoint spec: team and base are fixed")
                else:
                    self._spec = spec
                    if self.on_change:  # the new versions start downloading now
                        self.on_change(spec)
                self._signature = signature
        return self._spec


def adapter_keys(spec: EndpointSpec) -> dict[str, str]:
    """Model name -> the engine's adapter key (the version's store prefix)."""
    return {a.name: normalize_key(a.prefix) for a in spec.adapters}


def gateway_lookup(mounted: MountedSpec, token: str) -> Callable[[str, str | None], Caller | None]:
    """The pod's lookup: the gateway's token only, for the spec's team and adapters (with the
    spec's repository-context budget, retrieved from the spec's team's index only)."""
    expected = token.encode()

    def lookup(sent: str, model: str | None) -> Caller | None:
        if not hmac.compare_digest(sent.encode(), expected):
            return None
        spec = mounted.current()
        if model is None:
            return Caller(spec.team)
        key = adapter_keys(spec).get(model)
        if not key:
            return Caller(spec.team, known=False)
        return Caller(spec.team, key, context_tokens=spec.context_tokens)

    return lookup


class Backend:
    """What the pod serves: a backend that is ready once its base and first adapters are."""

    def __init__(self, engine: Any, initial: list[str]) -> None:
        self.engine = engine
        self.initial = initial  # adapter keys

    @property
    def prompter(self) -> Prompter | None:
        prompter: Prompter | None = self.engine.prompter
        return prompter

    @prompter.setter
    def prompter(self, value: Prompter | None) -> None:
        self.engine.prompter = value

    def start(self) -> Any:
        return self.engine.start()

    def is_ready(self) -> bool:
        """Base loaded and every adapter the pod started with downloaded."""
        if not self.engine.is_ready():
            return False
        # prefetch joins a download under way and retries a failed one (a store outage at
        # start must not leave the pod unready for good).
        futures = [self.engine.adapters.prefetch(key) for key in self.initial]
        return all(f.done() and f.exception() is None for f in futures)

    def submit(
        self, request: GenerationRequest, sink: ChunkSink, *, prompt_ids: list[int] | None = None
    ) -> Ticket:
        ticket: Ticket = self.engine.submit(request, sink, prompt_ids=prompt_ids)
        return ticket

    def add_listener(self, listener: Callable[[str, str], None]) -> None:
        self.engine.add_listener(listener)


def create_endpoint_app(settings: Settings, config_path: Path) -> FastAPI:
    """The serving app of one endpoint pod (`tailor serve-endpoint`)."""
    from tailor.stages.context.store import TeamIndexes
    from tailor.stages.serve.app import create_serving_app
    from tailor.stages.serve.engine import TailorEngine
    from tailor.storage import get_store

    secret = settings.serve_endpoint_token
    token = secret.get_secret_value() if secret else ""
    if not token:
        raise EndpointConfigError(
            "TAILOR_SERVE_ENDPOINT_TOKEN is not set: an endpoint pod answers only the gateway, "
            "with the token of the Secret the operator references"
        )
    store = get_store(settings)
    engine = TailorEngine(
        read_spec(config_path).base_model,
        store,
        adapter_budget_bytes=settings.serve_adapter_budget_mb << 20,
        queue_timeout_s=settings.serve_queue_timeout_s,
        max_queued_per_team=settings.serve_max_queued_per_team,
    )

    def prefetch(spec: EndpointSpec) -> list[Future[Path]]:
        return [engine.adapters.prefetch(key) for key in adapter_keys(spec).values()]

    mounted = MountedSpec(config_path, on_change=prefetch)
    spec = mounted.current()
    prefetch(spec)
    # The team's code index, for the spec's context budget: loaded now, not by a request.
    contexts = TeamIndexes(store, refresh_s=settings.serve_context_refresh_s)
    contexts.preload(lambda: [spec.team])
    return create_serving_app(
        Backend(engine, list(adapter_keys(spec).values())),
        lookup=gateway_lookup(mounted, token),
        list_models=lambda team: sorted(adapter_keys(mounted.current())),
        limits=lambda team: mounted.current().limits,
        base_name=spec.base_model,
        stream_interval_s=settings.serve_stream_interval_ms / 1000,
        contexts=contexts,
    )
