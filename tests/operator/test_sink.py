"""The status sink that tells the Tailor API, against a real HTTP server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from tailor_operator.sink import HttpStatusSink, SinkUnavailable


class FakeApi(BaseHTTPRequestHandler):
    """The lead's internal endpoint, reduced to recording what it receives."""

    received: list[dict[str, Any]] = []
    answer = 204

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeApi.received.append(
            {"path": self.path, "auth": self.headers.get("Authorization"), "body": body}
        )
        self.send_response(FakeApi.answer)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def api_url() -> Iterator[str]:
    FakeApi.received, FakeApi.answer = [], 204
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


CONDITIONS = [{"type": "Running", "status": "True", "reason": "Running"}]


def test_a_job_status_is_posted_with_the_operator_token(
    api_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAILOR_OPERATOR_TOKEN", "op-secret")
    sink = HttpStatusSink.from_env(api_url)

    sink.report("FineTuneJob", "ns", "ft-1", "job-42", "Running", "Running", CONDITIONS)

    [request] = FakeApi.received
    assert request["path"] == "/v1/internal/jobs/job-42/status"
    assert request["auth"] == "Bearer op-secret"
    assert request["body"] == {"phase": "Running", "reason": "Running", "conditions": CONDITIONS}


def test_resources_without_a_job_id_are_not_posted(api_url: str) -> None:
    HttpStatusSink(api_url).report("InferenceEndpoint", "ns", "ep", None, "Ready", None, [])

    assert FakeApi.received == []


def test_an_endpoints_url_is_posted_for_the_gateway(api_url: str) -> None:
    url = "http://ep.tailor-team-search.svc.cluster.local"

    HttpStatusSink(api_url).report("InferenceEndpoint", "ns", "ep", None, "Ready", None, [], url)

    [request] = FakeApi.received
    assert request["path"] == "/v1/internal/endpoints/ns/ep/status"
    assert request["body"] == {"phase": "Ready", "reason": None, "conditions": [], "url": url}


def test_a_server_error_is_worth_retrying(api_url: str) -> None:
    FakeApi.answer = 503

    with pytest.raises(SinkUnavailable, match="503"):
        HttpStatusSink(api_url).report("FineTuneJob", "ns", "ft", "job-1", "Failed", None, [])


def test_an_unreachable_api_is_worth_retrying() -> None:
    sink = HttpStatusSink("http://127.0.0.1:9", timeout_s=2)

    with pytest.raises(SinkUnavailable, match="unreachable"):
        sink.report("FineTuneJob", "ns", "ft", "job-1", "Failed", None, [])


def test_a_rejected_status_is_not_retried(api_url: str) -> None:
    FakeApi.answer = 404

    HttpStatusSink(api_url).report("FineTuneJob", "ns", "ft", "job-gone", "Failed", None, [])

    assert len(FakeApi.received) == 1
