"""Domain errors: each carries its HTTP status and a stable problem type (RFC 9457)."""

from __future__ import annotations

from typing import Any, ClassVar

PROBLEM_BASE = "https://tailor.dev/problems/"


class TailorError(Exception):
    """An error a person can act on; the API renders it as problem+json."""

    status: ClassVar[int] = 500
    type_slug: ClassVar[str] = "internal"
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    @property
    def type_uri(self) -> str:
        """The problem's stable `type` URI."""
        return PROBLEM_BASE + self.type_slug


class NotFound(TailorError):
    status = 404
    type_slug = "not-found"
    title = "Not found"


class Unauthorized(TailorError):
    status = 401
    type_slug = "unauthorized"
    title = "Authentication required"


class Forbidden(TailorError):
    status = 403
    type_slug = "forbidden"
    title = "Not allowed"


class Conflict(TailorError):
    status = 409
    type_slug = "conflict"
    title = "Conflict"


class InvalidInput(TailorError):
    status = 422
    type_slug = "invalid-input"
    title = "Invalid input"


class BudgetExceeded(TailorError):
    """A team's monthly budget has reached its hard limit: no new training until it is raised."""

    status = 402
    type_slug = "budget-exceeded"
    title = "Budget exceeded"


class RateLimited(TailorError):
    status = 429
    type_slug = "rate-limited"
    title = "Too many requests"


class ClusterUnavailable(TailorError):
    """The Kubernetes API could not be reached or refused the call; nothing changed."""

    status = 503
    type_slug = "cluster-unavailable"
    title = "Cluster unavailable"


class UpstreamUnavailable(TailorError):
    status = 502
    type_slug = "upstream-unavailable"
    title = "A service Tailor depends on is unavailable"
