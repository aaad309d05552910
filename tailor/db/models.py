"""Tables of the platform core: teams, people, tokens, repositories, audit."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Enum, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tailor.db.base import Base, Timestamped, utcnow


class Role(enum.StrEnum):
    """A member's role in a team, strongest first."""

    owner = "owner"
    admin = "admin"
    member = "member"
    viewer = "viewer"

    @property
    def rank(self) -> int:
        """Higher is stronger."""
        return {"viewer": 0, "member": 1, "admin": 2, "owner": 3}[self.value]


class Team(Timestamped, Base):
    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    gpu_quota: Mapped[int] = mapped_column(default=0)
    # The rest of the Team resource's quota (ClusterQuota, camelCase as the CRD spells it).
    cluster_quota: Mapped[dict[str, Any]] = mapped_column(default=dict)
    publish_policy: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Completion telemetry keeps the prompt and completion text (redacted) only when opted in.
    telemetry_keeps_code: Mapped[bool] = mapped_column(default=False)


class User(Timestamped, Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    is_admin: Mapped[bool] = mapped_column(default=False)
    # A machine principal (CI, automation): made with its team token, never a person, never
    # signs in to the console; its e-mail is a reserved `.invalid` address no one can invite.
    is_machine: Mapped[bool] = mapped_column(default=False)


class Membership(Timestamped, Base):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("team_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[Role] = mapped_column(Enum(Role, name="role", native_enum=False, length=16))
    # "manual": added by a person, never touched by single sign-on; "groups": made from the
    # identity provider's groups, and changed or removed with them at each sign-in.
    source: Mapped[str] = mapped_column(String(16), default="manual")
    user: Mapped[User] = relationship(lazy="raise")


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # A team-bound token works only inside that team (IDE and CI tokens); None = all the user's.
    team_id: Mapped[int | None] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(default=list)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Who issued it: its own user, or for a machine token the person who created it.
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )


class Repository(Timestamped, Base):
    __tablename__ = "repositories"
    __table_args__ = (UniqueConstraint("team_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    url: Mapped[str] = mapped_column(String(2000))
    branch: Mapped[str] = mapped_column(String(255), default="main")
    include: Mapped[list[str]] = mapped_column(default=list)
    exclude: Mapped[list[str]] = mapped_column(default=list)
    credential_kind: Mapped[str] = mapped_column(String(16), default="none")
    # Fernet ciphertext; the key lives outside the database (settings / workspace file).
    credential_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    last_harvested_commit: Mapped[str | None] = mapped_column(String(64), default=None)


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_team_created", "team_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"))
    actor_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    actor: Mapped[str] = mapped_column(String(320), default="")
    action: Mapped[str] = mapped_column(String(100))
    resource: Mapped[str] = mapped_column(String(300), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class JobState(enum.StrEnum):
    """Where a job is in its life; the last three are final."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def final(self) -> bool:
        """No transition leaves a final state."""
        return self in (JobState.succeeded, JobState.failed, JobState.cancelled)


class Job(Timestamped, Base):
    """A unit of pipeline work (harvest, fine-tune, evaluation) and its observable state."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    state: Mapped[JobState] = mapped_column(
        Enum(JobState, name="job_state", native_enum=False, length=16),
        default=JobState.queued,
        index=True,
    )
    progress: Mapped[float] = mapped_column(default=0.0)
    message: Mapped[str] = mapped_column(String(500), default="")
    error: Mapped[str | None] = mapped_column(String(4000), default=None)
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    attempts: Mapped[int] = mapped_column(default=0)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    executor: Mapped[str] = mapped_column(String(32), default="local")
    executor_ref: Mapped[str | None] = mapped_column(String(255), default=None)
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    # The process running the current attempt (`tailor.jobs.workers`) and when it last said
    # so: what tells a live worker from a dead one.
    worker: Mapped[str | None] = mapped_column(String(255), default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)


class JobEvent(Base):
    """One line of a job's event log (state changes, stage messages, log lines)."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    level: Mapped[str] = mapped_column(String(16), default="info")
    message: Mapped[str] = mapped_column(String(4000))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class JobMetric(Base):
    """One point of a job's time series (loss, eval loss, learning rate, tokens/s...)."""

    __tablename__ = "job_metrics"
    __table_args__ = (Index("ix_job_metrics_job_name_step", "job_id", "name", "step"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    step: Mapped[int]
    name: Mapped[str] = mapped_column(String(64))
    value: Mapped[float]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Dataset(Timestamped, Base):
    """A harvested training set: shards and manifest under the team's object prefix."""

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="RESTRICT"))
    repositories: Mapped[list[str]] = mapped_column(default=list)
    stats: Mapped[dict[str, Any]] = mapped_column(default=dict)
    prefix: Mapped[str] = mapped_column(String(500), default="")


class Adapter(Timestamped, Base):
    """A named line of adapter versions of one team, all on the same base model."""

    __tablename__ = "adapters"
    __table_args__ = (UniqueConstraint("team_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    base_model: Mapped[str] = mapped_column(String(500))
    description: Mapped[str] = mapped_column(String(2000), default="")


class AdapterVersion(Base):
    """An immutable adapter version: files in the store, lineage and results in the row."""

    __tablename__ = "adapter_versions"
    __table_args__ = (UniqueConstraint("adapter_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    adapter_id: Mapped[int] = mapped_column(ForeignKey("adapters.id", ondelete="CASCADE"))
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    version: Mapped[int]
    base_model: Mapped[str] = mapped_column(String(500))
    base_revision: Mapped[str | None] = mapped_column(String(200), default=None)
    dataset_uid: Mapped[str | None] = mapped_column(String(32), default=None)
    job_id: Mapped[int | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), default=None
    )
    origin: Mapped[str] = mapped_column(String(32), default="trained")
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    evaluation: Mapped[dict[str, Any]] = mapped_column(default=dict)
    parents: Mapped[list[str]] = mapped_column(default=list)
    size_bytes: Mapped[int] = mapped_column(default=0)
    checksum: Mapped[str] = mapped_column(String(80), default="")
    prefix: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Endpoint(Timestamped, Base):
    """A team's published model name, pointing at one adapter version (promote / roll back)."""

    __tablename__ = "endpoints"
    __table_args__ = (UniqueConstraint("team_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    version_id: Mapped[int] = mapped_column(
        ForeignKey("adapter_versions.id", ondelete="RESTRICT"), index=True
    )
    previous_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("adapter_versions.id", ondelete="SET NULL"), default=None
    )
    backend: Mapped[str] = mapped_column(String(16), default="tailor")
    replicas: Mapped[int] = mapped_column(default=1)
    gate_overridden: Mapped[bool] = mapped_column(default=False)
    # Cluster mode: the in-cluster URL of its backend Service, as the operator reports it once
    # the endpoint is first ready (InferenceEndpoint status.url); None until then.
    backend_url: Mapped[str | None] = mapped_column(String(500), default=None)


class WebSession(Base):
    """A console sign-in: the cookie holds a random id, the row only its hash.

    It acts with its API token's identity and scopes, so revoking the token ends it too;
    signing out deletes the row.
    """

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token_id: Mapped[int] = mapped_column(
        ForeignKey("api_tokens.id", ondelete="CASCADE"), index=True
    )
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # "console" (a cookie) or "cli" (`tailor login --sso`: the hash is the refresh token's).
    kind: Mapped[str] = mapped_column(String(16), default="console")
    # A single sign-on session made its token for itself: ending the session revokes it.
    owns_token: Mapped[bool] = mapped_column(default=False)


class Identity(Base):
    """A person's account at the identity provider (issuer + subject), linked to a user."""

    __tablename__ = "identities"
    __table_args__ = (UniqueConstraint("issuer", "subject"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    issuer: Mapped[str] = mapped_column(String(500))
    subject: Mapped[str] = mapped_column(String(255))
    # The groups of the last sign-in, as the provider sent them.
    groups: Mapped[list[str]] = mapped_column(default=list)
    last_sign_in_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class GroupMapping(Base):
    """An identity-provider group whose members get `role` in `team` at sign-in."""

    __tablename__ = "group_mappings"
    __table_args__ = (UniqueConstraint("group_name", "team_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    group_name: Mapped[str] = mapped_column(String(255))
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    role: Mapped[Role] = mapped_column(Enum(Role, name="role", native_enum=False, length=16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SignInRequest(Base):
    """A console sign-in sent to the identity provider and not back yet.

    Found by its `state` (hashed), bound to the browser that started it, used once.
    """

    __tablename__ = "sign_in_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    state_hash: Mapped[str] = mapped_column(String(64), unique=True)
    browser_hash: Mapped[str] = mapped_column(String(64))
    nonce: Mapped[str] = mapped_column(String(128))
    code_verifier: Mapped[str] = mapped_column(String(128))
    next_path: Mapped[str] = mapped_column(String(2000))
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class BaseModelEntry(Timestamped, Base):
    """A base model of the platform's catalog: the name requests use, and where its files are.

    Only platform admins write it; every request names a base by `name` and the platform
    loads only `source` (a hub id, an s3:// prefix or a directory on the workers).
    """

    __tablename__ = "base_models"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(201), unique=True)
    source: Mapped[str] = mapped_column(String(1000))
    revision: Mapped[str | None] = mapped_column(String(200), default=None)
    family: Mapped[str] = mapped_column(String(64), default="")
    description: Mapped[str] = mapped_column(String(500), default="")
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )


class UploadSlot(Base):
    """An upload in flight: (user, slot) is unique, so a user holds at most N at once."""

    __tablename__ = "upload_slots"
    __table_args__ = (UniqueConstraint("user_id", "slot"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    slot: Mapped[int]
    # A slot whose API process died is taken over once this has passed.
    expires_at: Mapped[datetime]


class ServedCompletion(Base):
    """One completion the gateway served (its `cmpl-` id), without its text: who asked, for
    which version, in which language, how fast and how long."""

    __tablename__ = "served_completions"
    __table_args__ = (Index("ix_served_completions_team_created", "team_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    # None: the base model. A version deleted later leaves its completions counted as unknown.
    version_id: Mapped[int | None] = mapped_column(
        ForeignKey("adapter_versions.id", ondelete="SET NULL"), default=None
    )
    model: Mapped[str] = mapped_column(String(200))
    route: Mapped[str] = mapped_column(String(32))
    language: Mapped[str | None] = mapped_column(String(64), default=None)
    latency_ms: Mapped[float]
    prompt_tokens: Mapped[int] = mapped_column(default=0)
    completion_tokens: Mapped[int] = mapped_column(default=0)
    # Redacted as harvest redacts; None unless the team keeps code (`telemetry_keeps_code`).
    prompt_text: Mapped[str | None] = mapped_column(Text, default=None)
    completion_text: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CompletionEvent(Base):
    """What the editor did with a served completion: shown (view), kept (select), dismissed."""

    __tablename__ = "completion_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    completion_id: Mapped[str] = mapped_column(
        ForeignKey("served_completions.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    choice_index: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
