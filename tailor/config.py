"""Settings: the one place every part reads its configuration from."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_workspace() -> Path:
    return Path(os.environ.get("TAILOR_HOME", Path.cwd() / ".tailor")).resolve()


# Soft time limit of one attempt, by job kind: the job then fails with a reason naming it.
DEFAULT_TIME_LIMITS_S = {
    "harvest": 4 * 3600,
    "finetune": 72 * 3600,
    "evaluation": 6 * 3600,
    "adapter-compose": 2 * 3600,
    "adapter-transfer": 2 * 3600,
    "adapter-import": 2 * 3600,
    "adapter-export": 4 * 3600,
    "served-check": 3600,
}
# Defaults the job life cycle also uses where no settings are passed (runners called directly).
JOB_STALE_AFTER_S = 90.0
JOB_MAX_ATTEMPTS = 3
# Files at the top of the workspace that hold data or secrets (their SQLite journals too).
PRIVATE_FILES = ("tailor.db*", "broker.db*", "results.db*", "secret.key", "*.log")


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
    ready_file: Path | None = Field(
        None,
        description="File a Celery worker or beat creates once it serves and removes on "
        "shutdown: what the chart's readiness probes test.",
    )
    alive_file: Path | None = Field(
        None,
        description="File a Celery worker touches every alive_interval_s while its consumer's "
        "event loop turns: what the chart's liveness probe checks the age of.",
    )
    alive_interval_s: float = Field(30.0, gt=0, description="How often the alive file is touched.")
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
        "http://127.0.0.1:8001",
        description="Public base URL of the inference gateway: what `/ide`, the endpoints' "
        "`url` and the console hand to IDEs (the chart sets the gateway's ingress URL).",
    )
    broker_visibility_timeout_s: int = Field(
        6 * 3600,
        ge=1,
        description="Redis broker: a task whose worker vanished is redelivered after this long; "
        "a redelivery of a job that a live worker runs does nothing, and the reaper requeues "
        "a job whose worker is gone sooner (TAILOR_JOB_STALE_AFTER_S).",
    )
    time_limits_s: dict[str, int] = Field(
        default_factory=lambda: dict(DEFAULT_TIME_LIMITS_S),
        description="Soft time limit of one attempt by job kind, as JSON "
        "('{\"harvest\": 7200}'; kinds not named keep their default): the job then stops and "
        "fails with a reason naming the limit.",
    )
    time_limit_grace_s: int = Field(
        300,
        ge=1,
        description="Hard limit = soft limit + this: a worker still busy then is killed and the "
        "job fails (the backstop for a task stuck where it cannot clean up).",
    )
    job_heartbeat_s: float = Field(
        10.0, gt=0, description="How often a worker records that it still runs its job."
    )
    job_stale_after_s: float = Field(
        JOB_STALE_AFTER_S,
        gt=0,
        description="A running job whose worker recorded nothing for this long is taken for "
        "orphaned (worker killed, machine gone): cancel ends it at once, the reaper requeues "
        "it. Workers on the same machine as the API are checked by process instead.",
    )
    job_cancel_poll_s: float = Field(
        1.0, gt=0, le=60, description="How often a running job looks for a cancel request."
    )
    job_cancel_grace_s: float = Field(
        30.0,
        gt=0,
        description="A cancelled job that has not stopped at its own checks after this long is "
        "ended and its task interrupted; after twice this long its worker process is replaced.",
    )
    job_max_attempts: int = Field(
        JOB_MAX_ATTEMPTS,
        ge=1,
        le=100,
        description="A job whose worker died this many times fails instead of running again.",
    )
    job_reaper_interval_s: float = Field(
        60.0, gt=0, description="How often each worker looks for jobs whose worker is gone."
    )
    harvest_parallelism: int = Field(2, ge=1, le=64, description="Repositories fetched at once.")
    harvest_timeout_s: int = Field(600, ge=1, description="Wall-time limit for one git fetch.")
    harvest_fanout_min_repos: int = Field(
        2,
        ge=1,
        description="A harvest of this many repositories or more is fanned out over the workers "
        "(one part per repository, then a reduce); fewer run as one task.",
    )
    harvest_part_poll_s: float = Field(
        0.5, gt=0, description="How often a fanned-out harvest looks at its parts' states."
    )

    harvest_max_repo_mb: int = Field(2048, ge=1, description="Size cap for one repository.")
    git_allow_http: bool = Field(
        False, description="Also accept plain http:// repository URLs (internal git servers)."
    )
    git_allow_loopback: bool = Field(
        False,
        description="Let git reach loopback addresses (the embedded demo's git server on this "
        "machine); never on a shared platform.",
    )
    git_allowed_networks: list[str] = Field(
        default_factory=list,
        description="Private networks (CIDR, JSON list) where the company's git servers live; "
        "other private, link-local, metadata and reserved addresses stay refused.",
    )
    serve_base_model: str = Field(
        "tiny-starcoder",
        description="Catalog name of the base model the gateway serves; endpoints published "
        "to it must be on this base (`tailor base build-tiny` registers the tiny one).",
    )
    serve_endpoint_token: SecretStr | None = Field(
        None,
        description="Endpoint pods (`tailor serve-endpoint`): the bearer token the gateway "
        "sends; the pod has no database to check team tokens, so it answers only the gateway.",
    )
    endpoint_token_key: SecretStr | None = Field(
        None,
        description="Cluster mode: the key each team's endpoint-pod token is derived from "
        "(`security.endpoint_token`); the gateway and the operator need the same one (the "
        "chart's Secret key `endpoint-token-key`).",
    )
    gateway_backend_timeout_s: float = Field(
        300.0,
        gt=0,
        description="Cluster mode: the gateway's read timeout on an endpoint pod (a stream's "
        "gap between two chunks, or a whole answer).",
    )
    gateway_path_prefix: str = Field(
        "",
        pattern=r"^(/[A-Za-z0-9._~-]+)*/?$",
        description="Cluster mode: a path the gateway's routes are served under as well (an "
        "ingress path on the API's host, e.g. `/gateway`); empty = the root only.",
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
    serve_context_refresh_s: float = Field(
        30.0,
        ge=0,
        le=3600,
        description="How often the gateway checks whether a team's code index (repository "
        "context, rebuilt after each harvest) changed; a removed repository's code leaves "
        "completions within this long after the rebuild.",
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
    telemetry_retention_days: int = Field(
        90,
        ge=1,
        description="Served completions and their editor events older than this are deleted "
        "(by each worker's periodic sweep).",
    )
    telemetry_flush_interval_s: float = Field(
        1.0,
        gt=0,
        description="How often the gateway writes the completions it served, in one batch.",
    )
    auto_eval_fim_tasks: int = Field(
        200, ge=1, description="FIM tasks of the evaluation queued after every new version."
    )
    served_check_after_publish: bool = Field(
        True,
        description="On one machine, queue the served check of every endpoint published.",
    )
    served_check_fim_tasks: int = Field(
        50,
        ge=1,
        description="FIM tasks (the evaluation's first ones) the check after publish sends to "
        "the endpoint over HTTP and compares with the evaluated adapter's completions.",
    )
    auto_eval_humaneval_subset: int = Field(
        20,
        ge=0,
        le=164,
        description="HumanEval problems of that evaluation (all 164 run on request).",
    )
    console_session_hours: int = Field(
        12,
        ge=1,
        le=24 * 30,
        description="A console sign-in lasts this long at most (signing out or revoking its "
        "API token ends it sooner).",
    )
    oidc_issuer: str = Field(
        "",
        description="Single sign-on: the OpenID Connect provider's issuer URL (its discovery "
        "document is <issuer>/.well-known/openid-configuration); empty = no single sign-on, "
        "API-token sign-in only.",
    )
    oidc_client_id: str = Field("", description="Tailor's client id at the provider.")
    oidc_client_secret: SecretStr | None = Field(
        None, description="Tailor's client secret at the provider (a confidential client)."
    )
    oidc_scopes: list[str] = Field(
        default_factory=lambda: ["openid", "email", "profile", "groups"],
        description="Scopes asked for, as JSON; `openid` is required, `email` gives the "
        "address people are known by.",
    )
    oidc_groups_claim: str = Field(
        "groups",
        min_length=1,
        description="ID-token claim listing the person's groups (mapped to teams by an admin).",
    )
    oidc_admin_groups: list[str] = Field(
        default_factory=list,
        description="Groups (JSON list) whose members are platform admins when they sign in "
        "through the provider; follows their groups at each sign-in.",
    )
    oidc_clock_skew_s: int = Field(
        60, ge=0, le=600, description="Tolerated clock difference with the provider (exp, iat)."
    )
    oidc_display_name: str = Field(
        "single sign-on", description="The provider's name on the console's sign-in button."
    )
    oidc_redirect_url: str = Field(
        "",
        description="The console's callback as registered at the provider "
        "(https://<tailor>/console/sso/callback); empty = from the request's own URL, which "
        "behind a TLS-terminating proxy needs uvicorn's --proxy-headers.",
    )
    oidc_timeout_s: float = Field(10.0, gt=0, description="Each call to the provider.")
    cli_session_days: int = Field(
        30,
        ge=1,
        le=365,
        description="A `tailor login --sso` session can be refreshed for this long; its access "
        "token lasts TAILOR_CLI_ACCESS_MINUTES and is replaced at each refresh.",
    )
    cli_access_minutes: int = Field(60, ge=1, le=24 * 60, description="See cli_session_days.")
    adapter_upload_max_file_mb: int = Field(
        2048, ge=1, description="Largest file of an adapter upload, as sent (streamed, 413)."
    )
    adapter_upload_max_total_mb: int = Field(
        2048, ge=1, description="Largest adapter upload, all its files together, as sent."
    )
    adapter_upload_max_unpacked_mb: int = Field(
        2048, ge=1, description="Largest total an uploaded archive may unpack to (bytes counted)."
    )
    adapter_upload_max_ratio: int = Field(
        100, ge=1, description="Largest unpacked/packed ratio of an uploaded archive (zip bombs)."
    )
    adapter_upload_max_members: int = Field(
        64, ge=2, description="Most members an uploaded archive may hold."
    )
    adapter_uploads_per_user: int = Field(
        2,
        ge=1,
        description="Adapter uploads one user may have in flight at once, across API "
        "processes; more answer 429 with Retry-After.",
    )
    adapter_upload_slot_s: int = Field(
        3600,
        ge=60,
        description="An upload slot whose API process died is free again after this long.",
    )
    executor: str = Field("local", pattern="^(local|kubernetes)$", description="Where jobs run.")
    kubernetes_namespace_prefix: str = "tailor-team-"
    cluster_gpus_per_node: int = Field(
        8,
        ge=1,
        le=64,
        description="Cluster mode: GPUs on one node of the default GPU type (the chart sets it "
        "from gpu.types); a fine-tune of more GPUs must fill whole nodes.",
    )
    cluster_max_nodes: int = Field(
        64, ge=1, le=1024, description="Cluster mode: most nodes one fine-tune may span."
    )
    default_gpu_type: str = Field(
        "nvidia-a100-80gb",
        pattern=r"^[a-z0-9][a-z0-9.-]{0,62}$",
        description="Cluster mode: the GPU type a team without its own (cluster_quota.gpu_type) "
        "trains on; the chart's gpu.defaultType. Estimates and prices use it.",
    )
    local_gpu_type: str = Field(
        "local-gpu",
        pattern=r"^[a-z0-9][a-z0-9.-]{0,62}$",
        description="The GPU type local jobs are recorded and priced as when they run on this "
        "machine's GPUs (a CPU-only run records no GPU).",
    )
    currency: str = Field("USD", min_length=1, max_length=8, description="Prices' currency.")
    team_resync_interval_s: float = Field(
        300.0,
        ge=10,
        description="Cluster mode: how often Celery beat re-applies every team's Team resource "
        "and reports Teams the database does not know.",
    )
    metrics_token: SecretStr | None = Field(
        None,
        description="Bearer token Prometheus sends for /metrics (API and gateway); unset: "
        "/metrics answers only callers on the same machine, not through a proxy (its series "
        "name every team and adapter).",
    )
    internal_refuse_forwarded: bool = Field(
        True,
        description="Answer 404 on /v1/internal to a request a proxy forwarded (it carries "
        "X-Forwarded-For or Forwarded): the Ingress exposes no internal route. Turn off only "
        "where in-cluster calls themselves pass a proxy that adds these headers (a mesh).",
    )
    job_token_key: SecretStr | None = Field(
        None,
        description="Cluster mode: the key each fine-tune's job token is derived from "
        "(`security.job_token`); its pods send their events to /v1/internal/jobs/<id>/events "
        "with it. The API and the operator need the same one (the chart's Secret key "
        "`job-token-key`). Unset: cluster pods report no events, only their phase.",
    )
    operator_token: SecretStr | None = Field(
        None,
        description="Bearer token the Kubernetes operator reports job status with "
        "(/v1/internal); the chart gives the API and the operator the same Secret. "
        "Unset: only platform-admin tokens may report.",
    )

    @field_validator("git_allowed_networks")
    @classmethod
    def _networks_are_cidrs(cls, networks: list[str]) -> list[str]:
        for net in networks:
            ipaddress.ip_network(net, strict=False)  # ValueError names the bad one
        return networks

    @model_validator(mode="after")
    def _oidc_complete(self) -> Settings:
        if not self.oidc_issuer:
            return self
        check_issuer_url(self.oidc_issuer)
        if not self.oidc_client_id:
            raise ValueError("TAILOR_OIDC_ISSUER is set: set TAILOR_OIDC_CLIENT_ID too")
        if "openid" not in self.oidc_scopes:
            raise ValueError("TAILOR_OIDC_SCOPES must include 'openid'")
        return self

    @field_validator("time_limits_s", mode="after")
    @classmethod
    def _known_time_limits(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(value) - set(DEFAULT_TIME_LIMITS_S))
        if unknown:
            raise ValueError(f"unknown job kinds {unknown}: use {sorted(DEFAULT_TIME_LIMITS_S)}")
        if any(limit < 1 for limit in value.values()):
            raise ValueError("time limits are whole seconds, at least 1")
        return {**DEFAULT_TIME_LIMITS_S, **value}

    @model_validator(mode="after")
    def _heartbeats_fit_in_staleness(self) -> Settings:
        # Two missed heartbeats must not make a live worker look gone.
        if self.job_stale_after_s <= 2 * self.job_heartbeat_s:
            raise ValueError(
                "TAILOR_JOB_STALE_AFTER_S must be more than twice TAILOR_JOB_HEARTBEAT_S"
            )
        return self

    @model_validator(mode="after")
    def _fill_embedded_defaults(self) -> Settings:
        ws = self.workspace
        if not self.database_url:
            self.database_url = f"sqlite:///{ws / 'tailor.db'}"
        if not self.broker_url:
            self.broker_url = f"sqla+sqlite:///{ws / 'broker.db'}"
        if not self.result_backend:
            self.result_backend = f"db+sqlite:///{ws / 'results.db'}"
        if not self.object_store_url:
            self.object_store_url = f"file://{ws / 'objects'}"
        return self

    def ensure_workspace(self) -> Path:
        """Create the workspace directory, private to the user (0700), and return it.

        An existing workspace is made private too, with the files at its top that hold data
        or secrets (0600): older versions left them readable by every local user.
        """
        self.workspace.mkdir(parents=True, exist_ok=True, mode=0o700)
        _restrict(self.workspace, 0o700)
        for pattern in PRIVATE_FILES:
            for path in self.workspace.glob(pattern):
                if path.is_file() and not path.is_symlink():
                    _restrict(path, 0o600)
        return self.workspace

    def time_limit_s(self, kind: str) -> int:
        """The soft time limit of one attempt of a job of `kind`."""
        return self.time_limits_s.get(kind, max(self.time_limits_s.values()))

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


def check_issuer_url(url: str) -> None:
    """An issuer is an https URL without query or fragment; plain http only on loopback
    (a provider on this machine), where no one on the network can alter its keys."""
    parts = urlsplit(url)
    if parts.query or parts.fragment or not parts.hostname:
        raise ValueError(f"TAILOR_OIDC_ISSUER {url!r} is not an issuer URL (https://host/path)")
    if parts.scheme == "https":
        return
    loopback = parts.hostname == "localhost"
    with contextlib.suppress(ValueError):  # a host name, not an address
        loopback = loopback or ipaddress.ip_address(parts.hostname).is_loopback
    if parts.scheme != "http" or not loopback:
        raise ValueError(f"TAILOR_OIDC_ISSUER {url!r} must use https")


def _restrict(path: Path, mode: int) -> None:
    # Only what this user owns: a shared parent or someone else's file is not ours to change.
    st = path.stat()
    if st.st_uid == os.getuid() and st.st_mode & 0o777 != mode:
        path.chmod(mode)


@lru_cache
def get_settings() -> Settings:
    """Cached settings; tests override them with `get_settings.cache_clear()` or DI."""
    return Settings()
