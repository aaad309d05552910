"""Completion telemetry through the gateway: completions recorded with who asked, editor events
against their ids, and the team's statistics (its own only)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest
from huggingface_hub import InferenceClient
from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session

from tailor.db.models import CompletionEvent, Role, ServedCompletion
from tailor.gateway import Routing
from tailor.services.tokens.service import authenticate
from tailor.stages.serve.app import create_serving_app
from tailor.stages.serve.engine import TailorEngine
from tailor.telemetry.recorder import Recorder
from tailor.telemetry.stats import team_telemetry
from tailor.tenancy import TeamAccess, team_for
from tests.conftest import SERVED_BASE, Tenant, create_tenant, create_token, create_version

from .conftest import FIM_PREFIX, FIM_SUFFIX, AdapterFactory, LiveServer, start_server
from .test_gateway import publish_version_1

SHORT = {"max_tokens": 2, "temperature": 0}


@dataclass
class Team:
    tenant: Tenant
    access: TeamAccess
    owner_token: str  # IDE tokens (inference scope) of the owner and of the viewer
    viewer_token: str


@pytest.fixture
def recorder(connection: Connection) -> Recorder:
    """A recorder writing in savepoints of the test's transaction; it writes when flushed."""

    @contextmanager
    def savepoint() -> Iterator[Connection]:
        with connection.begin_nested():
            yield connection

    return Recorder(savepoint, savepoint, interval_s=3600)


@pytest.fixture
def gateway(connection: Connection, engine: TailorEngine, recorder: Recorder) -> Iterator[str]:
    @contextmanager
    def savepoint() -> Iterator[Connection]:
        with connection.begin_nested():
            yield connection

    routing = Routing(savepoint, savepoint)
    app = create_serving_app(
        engine,
        lookup=routing.lookup,
        list_models=routing.models,
        base_name=SERVED_BASE,
        telemetry=recorder,
    )
    live: LiveServer = start_server(app)
    yield live.url
    live.stop()


def published_team(session: Session, adapters: AdapterFactory) -> Team:
    """A team serving endpoint `completion`, with IDE tokens for its owner and its viewer."""
    tenant = create_tenant(session)
    adapters.create(tenant.slug, "completion", "1", seed=31)
    create_version(session, tenant.team, "completion", 1)
    access, owner_token = publish_version_1(session, tenant)
    viewer_token = create_token(session, tenant.viewer, team=tenant.team, scopes=("inference",))
    session.commit()
    return Team(tenant, access, owner_token, viewer_token)


@pytest.fixture
def team(session: Session, adapters: AdapterFactory) -> Team:
    return published_team(session, adapters)


def openai_completion(url: str, token: str) -> str:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=token, max_retries=0)
    return client.completions.create(
        model="completion", prompt=FIM_PREFIX, suffix=FIM_SUFFIX, **SHORT
    ).id


def tabby_completion(url: str, token: str, **body: Any) -> str:
    segments = {"prefix": FIM_PREFIX, "suffix": FIM_SUFFIX, **body.pop("segments", {})}
    resp = post(url, "/tabby/completion/v1/completions", token, {"segments": segments, **body})
    assert resp.status_code == 200, resp.text
    return str(resp.json()["id"])


def post(url: str, path: str, token: str, body: dict[str, Any]) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.post(f"{url}{path}", json=body, headers=headers, timeout=60)


def feedback(url: str, token: str, cid: str, event: str) -> httpx.Response:
    return post(url, f"/v1/completions/{cid}/feedback", token, {"event": event})


def tabby_event(url: str, token: str, cid: str, kind: str) -> httpx.Response:
    body = {"type": kind, "completion_id": cid, "choice_index": 0}
    return post(url, "/tabby/completion/v1/events", token, body)


def tgi_completion(url: str, token: str) -> str:
    """A completion through huggingface_hub's TGI client, which keeps the body's extra `id`."""
    client = InferenceClient(model=f"{url}/tgi/completion", token=token)
    out = client.text_generation("def ", max_new_tokens=2, details=True)
    return str(out.id)  # type: ignore[attr-defined]


def ollama_completion(url: str, token: str, *, stream: bool) -> str:
    """A completion through Ollama's protocol; its id comes in the X-Completion-Id header."""
    body = {"model": "completion", "prompt": FIM_PREFIX, "suffix": FIM_SUFFIX, "stream": stream}
    resp = post(url, "/api/generate", token, {**body, "options": {"num_predict": 2}})
    assert resp.status_code == 200, resp.text
    return resp.headers["X-Completion-Id"]


def access_of(session: Session, tenant: Tenant) -> TeamAccess:
    return team_for(session, authenticate(session, tenant.owner_token), tenant.slug, Role.viewer)


def test_a_hundred_completions_give_the_teams_acceptance_rate_by_member(
    gateway: str, team: Team, recorder: Recorder, session: Session, adapters: AdapterFactory
) -> None:
    # The owner completes through the OpenAI SDK and keeps every third; the viewer through
    # Tabby's protocol (language told), seen, then keeping every second.
    owner_ids = [openai_completion(gateway, team.owner_token) for _ in range(60)]
    viewer_ids = [tabby_completion(gateway, team.viewer_token, language="go") for _ in range(40)]
    for i, cid in enumerate(owner_ids):
        resp = feedback(gateway, team.owner_token, cid, "select" if i % 3 == 0 else "dismiss")
        assert resp.status_code == 200 and resp.json()["recorded"] is True
    for i, cid in enumerate(viewer_ids):
        assert tabby_event(gateway, team.viewer_token, cid, "view").status_code == 200
        kind = "select" if i % 2 == 0 else "dismiss"
        assert tabby_event(gateway, team.viewer_token, cid, kind).status_code == 200
    other = published_team(session, adapters)
    recorder.flush()

    stats = team_telemetry(session, team.access)
    by_member = {s.key: (s.completions, s.accepted, s.acceptance_rate) for s in stats.by_member}
    assert (stats.total.completions, stats.total.accepted) == (100, 40)
    assert stats.total.acceptance_rate == pytest.approx(0.40)
    assert by_member == {
        team.tenant.owner.email: (60, 20, pytest.approx(20 / 60)),
        team.tenant.viewer.email: (40, 20, pytest.approx(0.5)),
    }
    assert {s.key: s.completions for s in stats.by_language} == {"go": 40, "unknown": 60}
    assert [s.key for s in stats.by_version] == ["completion:v1"]
    assert sum(stats.latency_counts) == 100
    assert team_telemetry(session, access_of(session, other.tenant)).total.completions == 0


def test_an_event_for_another_teams_completion_is_404_and_records_nothing(
    gateway: str, team: Team, recorder: Recorder, session: Session, adapters: AdapterFactory
) -> None:
    cid = openai_completion(gateway, team.owner_token)
    other = published_team(session, adapters)
    recorder.flush()
    assert feedback(gateway, other.owner_token, cid, "select").status_code == 404
    assert tabby_event(gateway, other.owner_token, cid, "select").status_code == 404
    recorder.flush()
    assert session.scalar(select(func.count()).select_from(CompletionEvent)) == 0


def test_an_event_for_a_completion_not_yet_written_is_recorded(
    gateway: str, team: Team, recorder: Recorder, session: Session
) -> None:
    cid = openai_completion(gateway, team.owner_token)
    assert feedback(gateway, team.owner_token, cid, "select").status_code == 200
    recorder.flush()
    kinds = session.scalars(
        select(CompletionEvent.kind).where(CompletionEvent.completion_id == cid)
    )
    assert list(kinds) == ["select"]


def test_an_unknown_completion_id_is_404(gateway: str, team: Team) -> None:
    resp = feedback(gateway, team.owner_token, "cmpl-nonexistent", "dismiss")
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "completion_not_found"


def test_the_language_comes_from_the_path_when_the_client_names_none(
    gateway: str, team: Team, recorder: Recorder, session: Session
) -> None:
    cid = tabby_completion(gateway, team.owner_token, segments={"filepath": "src/app/main.rs"})
    recorder.flush()
    row = session.get(ServedCompletion, cid)
    assert row is not None and row.language == "rust"


def test_no_code_text_is_stored(
    gateway: str, team: Team, recorder: Recorder, session: Session
) -> None:
    cid = openai_completion(gateway, team.owner_token)
    recorder.flush()
    row = session.get(ServedCompletion, cid)
    assert row is not None and (row.prompt_text, row.completion_text) == (None, None)
    assert FIM_PREFIX.strip() not in " ".join(str(v) for v in vars(row).values())


SECRET_PREFIX = 'token = "ghp_R4nd0mT0k3nV4lu3F0rT3st1ngAbCdEf1234"\n' + FIM_PREFIX


def test_a_team_that_keeps_code_gets_it_redacted(
    gateway: str, team: Team, recorder: Recorder, session: Session
) -> None:
    team.tenant.team.telemetry_keeps_code = True
    session.commit()
    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key=team.owner_token, max_retries=0)
    out = client.completions.create(
        model="completion", prompt=SECRET_PREFIX, suffix=FIM_SUFFIX, **SHORT
    )
    recorder.flush()
    row = session.get(ServedCompletion, out.id)
    assert row is not None and row.prompt_text is not None
    assert "ghp_" not in row.prompt_text and "<TOKEN>" in row.prompt_text
    assert FIM_SUFFIX in row.prompt_text and row.completion_text == out.choices[0].text


def test_tgi_and_ollama_clients_get_ids_their_feedback_can_name(
    gateway: str, team: Team, recorder: Recorder, session: Session
) -> None:
    ids = [
        tgi_completion(gateway, team.owner_token),
        ollama_completion(gateway, team.owner_token, stream=False),
        ollama_completion(gateway, team.owner_token, stream=True),
    ]
    for cid in ids:
        resp = feedback(gateway, team.owner_token, cid, "select")
        assert resp.status_code == 200 and resp.json()["recorded"] is True, resp.text
    recorder.flush()
    stats = team_telemetry(session, team.access)
    assert (stats.total.completions, stats.total.accepted) == (3, 3)
