"""Settings read from ``CIC_*`` environment variables.

Every value is validated at start: a bad value stops the program with one line per problem
naming the variable, so an operator never chases a stack trace to find a typo.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from fleet.errors import SettingsError

_DEFAULT_HOME = Path("~/.cicfleet")


class Settings(BaseSettings):
    """The control plane's configuration; one instance is passed to everything that needs it."""

    model_config = SettingsConfigDict(env_prefix="CIC_", extra="ignore", frozen=True)

    home: Path = Field(default=_DEFAULT_HOME, description="State directory (SQLite, tokens, logs)")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; unset means a SQLite file in CIC_HOME"
    )
    redis_url: str | None = Field(default=None, description="Redis URL; unset means in-process")
    redis_prefix: str = Field(default="cic", min_length=1, description="Prefix of every Redis key")
    admin_token: SecretStr | None = Field(default=None, description="Bearer token of /admin")
    url: str | None = Field(default=None, description="Control plane URL the CLI talks to")
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    key_cache_seconds: float = Field(default=5.0, ge=0, le=300)
    upstream_connect_timeout: float = Field(default=5.0, gt=0)
    upstream_timeout: float = Field(default=600.0, gt=0, description="Whole-request read bound")
    retry_after_seconds: int = Field(default=5, ge=1, description="Retry-After when no node")
    skypilot_api_server: str | None = Field(
        default=None, description="SkyPilot API server the skypilot provider talks to"
    )
    skypilot_tasks_dir: Path | None = Field(
        default=None, description="Directory of per-region SkyPilot task YAMLs (tasks/ default)"
    )
    leader_lock_id: int = Field(
        default=0x0C1CF1EE7, description="PostgreSQL advisory lock key of the leader election"
    )
    leader_retry_seconds: float = Field(default=1.0, gt=0, le=60)
    queue_wait_seconds: float = Field(
        default=120.0, ge=0, description="How long a request waits for a pool's first node"
    )
    queue_wait_max: int = Field(
        default=256, ge=0, description="Requests that may wait at once for a pool's first node"
    )
    usage_flush_seconds: float = Field(default=0.5, gt=0)
    usage_batch_size: int = Field(default=2000, ge=1)
    stripe_api_key: SecretStr | None = None
    stripe_api_base: str | None = None
    stripe_webhook_secret: SecretStr | None = None
    # Metering and billing (docs/billing.md).
    usage_journal_dir: Path | None = Field(
        default=None, description="Durable usage journal; unset means CIC_HOME/usage-journal"
    )
    usage_journal_fsync: bool = Field(
        default=True, description="fdatasync each journal group (off only for benchmarks)"
    )
    usage_journal_commit_ms: float = Field(
        default=5.0, ge=0, le=100, description="Least time between two journal syncs"
    )
    billing_enforce_quota: bool | None = Field(
        default=None,
        description="429 insufficient_quota without credit or payment method; "
        "unset means only when CIC_STRIPE_API_KEY is set",
    )
    billing_quota_cache_seconds: float = Field(default=15.0, ge=0, le=3600)
    billing_aggregate_seconds: float = Field(default=60.0, gt=0, description="Aggregation period")
    billing_export_seconds: float = Field(default=300.0, gt=0, description="Stripe export period")
    billing_export_delay_seconds: float = Field(
        default=300.0, ge=0, description="An hour is exported this long after it ends"
    )
    billing_export_lookback_hours: int = Field(default=48, ge=1, le=24 * 35)
    billing_dunning_grace_seconds: float = Field(
        default=3 * 86400.0, ge=0, description="Failed payment to suspension"
    )
    billing_meter_prefix: str = Field(
        default="cic", pattern=r"^[a-z][a-z0-9_]{0,31}$", description="Stripe meter event names"
    )
    limits_on_redis_error: Literal["open", "closed"] = Field(
        default="open",
        description="Redis down: 'open' limits per replica in process, 'closed' answers 503",
    )
    replicas: int = Field(
        default=1, ge=1, description="Control-plane replicas; fail-open limits divide by it"
    )
    limits_lease_seconds: float = Field(
        default=30.0, ge=1, description="A dead replica's concurrency slots return after this"
    )
    limits_refresh_seconds: float = Field(
        default=5.0, ge=0, description="How soon other replicas see a changed limit"
    )
    limits_redis_timeout: float = Field(
        default=2.0, gt=0, description="Longest wait on Redis before limits fail open/closed"
    )
    # Fleet: registry, routing and reconciler.
    heartbeat_interval: float = Field(default=5.0, gt=0, description="Agent heartbeat period")
    unhealthy_after_beats: int = Field(default=3, ge=1, description="Missed beats to unhealthy")
    terminate_after_beats: int = Field(default=10, ge=2, description="Missed beats to terminated")
    heartbeat_flush_seconds: float = Field(default=1.0, gt=0, description="Heartbeat DB batching")
    drain_timeout: float = Field(default=300.0, gt=0, description="Drain deadline in seconds")
    launch_timeout: float = Field(default=900.0, gt=0, description="Launch to ready, at most")
    reconcile_interval: float = Field(default=10.0, gt=0, description="Reconciler period")
    reconcile: bool = Field(default=True, description="Run the reconciler in this process")
    eject_after_failures: int = Field(default=3, ge=1, description="Upstream failures to eject")
    eject_seconds: float = Field(default=30.0, gt=0, description="Ejection cooldown")
    cluster_prefix: str = Field(default="cic", pattern=r"^[a-z][a-z0-9]{0,15}$")
    region: str | None = Field(
        default=None, description="This replica's region: routing prefers nodes there"
    )
    shutdown_grace_seconds: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        description="On SIGTERM, how long open requests may run before they are ended",
    )
    local_engine_command: str | None = Field(
        default=None,
        description="Command a local node runs instead of the simulator, e.g. "
        "'vllm serve {model} --port {port}'",
    )
    console_session_seconds: float = Field(
        default=12 * 3600, ge=60, le=30 * 86400, description="Web console sign-in lifetime"
    )
    console_link_seconds: float = Field(
        default=15 * 60, ge=30, le=7 * 86400, description="Lifetime of a one-time login link"
    )

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [o.strip() for o in value.split(",") if o.strip()]
        return value

    @field_validator("database_url", "redis_url", mode="after")
    @classmethod
    def _check_scheme(cls, value: str | None, info: object) -> str | None:
        if value is None or value == "":
            return None
        allowed = {
            "database_url": ("sqlite+aiosqlite://", "postgresql+asyncpg://", "postgresql://"),
            "redis_url": ("redis://", "rediss://", "unix://"),
        }[info.field_name]  # type: ignore[attr-defined]
        if not value.startswith(allowed):
            raise ValueError(f"must start with one of {', '.join(allowed)}")
        return value

    @property
    def effective_database_url(self) -> str:
        """The database to use: PostgreSQL URLs get the asyncpg driver, default is SQLite."""
        if self.database_url is None:
            return f"sqlite+aiosqlite:///{self.home / 'cicfleet.db'}"
        if self.database_url.startswith("postgresql://"):
            return "postgresql+asyncpg://" + self.database_url.removeprefix("postgresql://")
        return self.database_url

    @property
    def effective_usage_journal_dir(self) -> Path:
        return self.usage_journal_dir or self.home / "usage-journal"

    @property
    def quota_enforced(self) -> bool:
        if self.billing_enforce_quota is not None:
            return self.billing_enforce_quota
        return self.stripe_api_key is not None

    @property
    def is_embedded_database(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    @property
    def effective_url(self) -> str:
        """Where the CLI finds the control plane."""
        if self.url:
            return self.url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"

    @property
    def admin_token_file(self) -> Path:
        """Where an embedded control plane keeps a generated admin token for the local CLI."""
        return self.home / "admin_token"


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment plus ``overrides``, turning validation errors into
    one :class:`SettingsError` with a line per bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            name = f"CIC_{field.upper()}"
            raw = os.environ.get(name, err.get("input"))
            lines.append(f"{name}: {err['msg']} (got {raw!r})")
        raise SettingsError("invalid configuration:\n  " + "\n  ".join(lines)) from None
