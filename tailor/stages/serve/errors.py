"""Serving errors: each carries its HTTP status and a stable problem type, rendered in the
shape the calling client understands (OpenAI's `{"error": {...}}`, TGI's `{"error": "..."}`),
with RFC 9457 problem fields beside them."""

from __future__ import annotations

from typing import Any

PROBLEM_BASE = "https://tailor.dev/problems/"


class ServeError(Exception):
    """A request the server refuses, with what the caller can do about it."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        members: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.param = status, code, message, param
        self.headers = headers or {}
        self.members = members or {}  # extra problem members (RFC 9457 extensions)

    @property
    def openai_type(self) -> str:
        """OpenAI's error `type` for this status."""
        if self.status == 401:
            return "authentication_error"
        if self.status == 429:
            return "rate_limit_error"
        if self.status >= 500:
            return "server_error"
        return "invalid_request_error"


def problem_fields(err: ServeError) -> dict[str, Any]:
    """RFC 9457 members: a stable type URI, title, status, detail."""
    return {
        "type": PROBLEM_BASE + err.code.replace("_", "-"),
        "title": err.code.replace("_", " "),
        "status": err.status,
        "detail": err.message,
        **err.members,
    }


def openai_error_body(err: ServeError) -> dict[str, Any]:
    """`{"error": {"message", "type", "param", "code"}}` plus the problem members."""
    body = problem_fields(err)
    body["error"] = {
        "message": err.message,
        "type": err.openai_type,
        "param": err.param,
        "code": err.code,
    }
    return body


def tgi_error_body(err: ServeError) -> dict[str, Any]:
    """TGI's `{"error": "...", "error_type": "..."}` plus the problem members."""
    body = problem_fields(err)
    body["error"] = err.message
    body["error_type"] = "validation" if err.status in (400, 404, 413, 422) else err.code
    return body


def overloaded(code: str, message: str, retry_after: str) -> ServeError:
    """503 for a request the server could not start in time: nothing was charged."""
    return ServeError(503, code, message, headers={"Retry-After": retry_after})


def model_not_found(model: str) -> ServeError:
    """404 for an unknown model or another team's (which must look the same)."""
    return ServeError(
        404,
        "model_not_found",
        f"the model {model!r} does not exist or you do not have access to it; "
        "GET /v1/models lists your team's models",
        param="model",
    )
