"""Settings: the one place every part reads its configuration from."""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_workspace() -> Path:
    return Path(os.environ.get("TAILOR_HOME", Path.cwd() / ".tailor")).resolve()


class Settings(BaseSettings):
    """Typed settings, read from `TAILOR_*` environment variables.

    Every field has an embedded default (SQLite, a server-less Celery broker and a
    `file://` store under the workspace), so a fresh machine needs no configuration.
    """

    model_config = SettingsConfigDict(env_prefix="TAILOR_", extra="ignore")

    workspace: Path = Field(default_factory=_default_workspace, description="Embedded state dir.")
    database_url: str = Field("", description="SQLAlchemy URL; SQLite in the workspace if empty.")
    broker_url: str = Field("", description="Celery broker; kombu's SQLAlchemy transport if empty.")
    result_backend: str = Field("", description="Celery result backend; SQLite if empty.")
    object_store_url: str = Field("", description="file:///dir or s3://bucket/prefix.")
    s3_endpoint_url: str | None = Field(None, description="S3 API endpoint (MinIO, Ceph, moto).")
    s3_region: str = "us-east-1"
    s3_access_key_id: SecretStr | None = None
    s3_secret_access_key: SecretStr | None = None
    secret_key: SecretStr | None = Field(
        None,
        description="Key that encrypts stored credentials; generated in the workspace if unset.",
    )
    api_url: str = Field("http://127.0.0.1:8000", description="Where the CLI finds the API.")
    serve_url: str = Field(
        "http://127.0.0.1:8001", description="Public base URL of the inference gateway."
    )
    broker_visibility_timeout_s: int = Field(
        6 * 3600,
        ge=1,
        description="Redis broker: a task whose worker vanished is redelivered after this long "
        "(longer than the longest job, or a slow job would run twice).",
    )
    harvest_parallelism: int = Field(2, ge=1, le=64, description="Repositories fetched at once.")
    harvest_timeout_s: int = Field(600, ge=1, description="Wall-time limit for one git fetch.")
    harvest_max_repo_mb: int = Field(2048, ge=1, description="Size cap for one repository.")
    git_allow_http: bool = Field(
        False, description="Also accept plain http:// repository URLs (internal git servers)."
    )
    serve_base_model: str = Field(
        "", description="Base model the gateway serves; the workspace's tiny model if empty."
    )
    serve_adapter_budget_mb: int = Field(512, ge=1, description="Memory for hot adapters.")
    serve_lookup_cache_s: int = Field(
        30,
        ge=0,
        le=3600,
        description="PostgreSQL: keep a token's and model's lookup until the database announces "
        "a change (a revocation holds within milliseconds) or for at most this long, should "
        "the announcements stop unnoticed; 0 = ask the database on every request.",
    )
    serve_stream_interval_ms: int = Field(
        20,
        ge=0,
        le=1000,
        description="A stream's chunks between its first and last go out at most this often, "
        "merged (fewer wake-ups of the event loop, less time taken from decoding); 0 = each.",
    )
    serve_requests_per_minute: int = Field(
        600, ge=1, description="Requests a team may make per minute at the gateway."
    )
    serve_tokens_per_minute: int = Field(
        600_000,
        ge=1,
        description="Tokens a team may use per minute at the gateway: prompt plus n * "
        "max_tokens held while a request runs, the unused part given back when it ends.",
    )
    serve_queue_timeout_s: float = Field(
        10.0,
        gt=0,
        description="A request that could not start within this long answers 503 with "
        "Retry-After (it costs the team nothing).",
    )
    serve_max_queued_per_team: int = Field(
        64,
        ge=1,
        description="Choices (n counts each) one team may have waiting to start; more answer "
        "503 with Retry-After.",
    )
    serve_write_timeout_s: float = Field(
        15.0,
        gt=0,
        description="A client that reads nothing of its response for this long is disconnected "
        "and its generation cancelled.",
    )
    auto_eval_fim_tasks: int = Field(
        200, ge=1, description="FIM tasks of the evaluation queued after every new version."
    )
    auto_eval_humaneval_subset: int = Field(
        20,
        ge=0,
        le=164,
        description="HumanEval problems of that evaluation (all 164 run on request).",
    )
    executor: str = Field("local", pattern="^(local|kubernetes)$", description="Where jobs run.")
    kubernetes_namespace_prefix: str = "tailor-team-"
    operator_token: SecretStr | None = Field(
        None,
        description="Bearer token the Kubernetes operator reports job status with "
        "(/v1/internal); the chart gives the API and the operator the same Secret. "
        "Unset: only platform-admin tokens may report.",
    )

    @model_validator(mode="after")
    def _fill_embedded_defaults(self) -> Settings:
        ws = self.workspace
        if not self.database_url:
            self.database_url = f"sqlite:///{ws / 'tailor.db'}"
        if not self.broker_url:
            self.broker_url = f"sqla+sqlite:///{ws / 'broker.db'}"
        if not self.result_backend:
            self.result_backend = f"db+sqlite:///{ws / 'results.db'}"
        if not self.serve_base_model:
            self.serve_base_model = str(ws / "models" / "tiny-starcoder")
        if not self.object_store_url:
            self.object_store_url = f"file://{ws / 'objects'}"
        return self

    def ensure_workspace(self) -> Path:
        """Create the workspace directory (private to the user) and return it."""
        self.workspace.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self.workspace

    def encryption_key(self) -> str:
        """The credential-encryption key: configured, or generated once and kept 0600."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        path = self.ensure_workspace() / "secret.key"
        if not path.exists():
            # O_EXCL: two processes starting at once must not overwrite each other's key.
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                return path.read_text().strip()
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(32))
        return path.read_text().strip()


@lru_cache
def get_settings() -> Settings:
    """Cached settings; tests override them with `get_settings.cache_clear()` or DI."""
    return Settings()
