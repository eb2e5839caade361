"""Kefu's settings: dataclasses read once from the environment (``KEFU_*``).

Two modes:

* ``embedded`` (the default): SQLite in the data folder, in-process workers and
  pub/sub, recordings on local disk.  Development secrets are created on first
  start and kept in ``<data dir>/secrets`` so tokens survive a restart.
* ``production``: PostgreSQL with row-level security, Redis, explicit secrets.
  A missing secret or database URL stops start-up with a clear message.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal, Mapping

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

Mode = Literal["embedded", "production"]
METRICS_TOKEN_MIN = 16


class SettingsError(RuntimeError):
    """Raised at start-up when the environment cannot produce valid settings."""


@dataclass(frozen=True)
class DatabaseSettings:
    # The application's connection: in production a role that owns nothing and
    # is subject to row-level security.
    url: str
    # The one explicit, audited path for platform-wide work (onboarding,
    # log-in tenant resolution, invoicing): a role allowed to see all tenants.
    platform_url: str
    # The schema owner, used only by migrations.
    migration_url: str
    # Role names the migrations grant privileges to (PostgreSQL only).
    app_role: str = "kefu_app"
    platform_role: str = "kefu_platform"
    pool_size: int = 10

    @property
    def is_postgres(self) -> bool:
        return self.url.startswith("postgresql")


@dataclass(frozen=True)
class AuthSettings:
    signing_key_pem: bytes = field(repr=False)
    issuer: str
    access_token_ttl_s: int = 900
    refresh_token_ttl_s: int = 30 * 24 * 3600
    login_max_failures: int = 5
    login_lockout_s: int = 900
    invitation_ttl_s: int = 7 * 24 * 3600


@dataclass(frozen=True)
class Settings:
    mode: Mode
    data_dir: Path
    host: str
    port: int
    public_url: str
    db: DatabaseSettings
    auth: AuthSettings
    redis_url: str | None
    recordings_dir: Path
    max_body_bytes: int = 1024 * 1024
    tenant_retention_days: int = 90
    # How often a worker queues the purge of closed tenants past retention.
    purge_interval_s: int = 3600
    # Media: ICE servers handed to browsers and to aiortc.  Empty on loopback.
    ice_servers: tuple[str, ...] = ()
    # aioice leaves loopback out of its host candidates; allow it for
    # single-machine set-ups and tests.
    media_allow_loopback: bool = True
    ring_timeout_s: int = 20
    # This process's media-node name, recorded on its calls.  When a node starts
    # it ends its own calls left live by a crash, so every process that answers
    # calls needs a name of its own that survives its restarts.
    node_id: str = "embedded"
    # Load balancers / reverse proxies whose X-Forwarded-For / -Proto uvicorn
    # trusts (KEFU_TRUSTED_PROXIES); empty: the socket peer is the client.
    trusted_proxies: tuple[str, ...] = ()
    # TURN (coturn with use-auth-secret): browsers get time-limited credentials
    # derived from this shared secret (KEFU_TURN_SECRET) for KEFU_TURN_URLS.
    turn_urls: tuple[str, ...] = ()
    turn_secret: str | None = None
    turn_ttl_s: int = 3600
    # Media nodes (production): load reports every heartbeat; a node silent for
    # media_node_timeout_s is dead and its calls are ended.
    media_heartbeat_s: float = 1.0
    media_node_timeout_s: float = 5.0
    # How many calls one media node accepts before it reports itself full.
    media_max_calls: int = 500
    # Web calls one API process sets up at once (leg answered, call created, agent rung);
    # one more is refused at once with 503 ``overloaded`` and Retry-After.
    call_setups_in_flight: int = 32
    # Recordings: "local" (recordings_dir) or "s3" (S3-compatible object storage).
    recordings_backend: str = "local"
    s3_bucket: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_prefix: str = ""
    # Text-to-speech and encoded prompts are cached here.
    media_cache_dir: Path = Path("media-cache")
    # Music on hold (a WAV/Ogg file); unset: a built-in gentle tone pattern.
    moh_file: Path | None = None
    # Billing.  No Stripe key: billing runs locally (ledger, local invoices).
    stripe_api_key: str | None = field(default=None, repr=False)
    stripe_webhook_secret: str | None = field(default=None, repr=False)
    # Where Stripe's API is (a local Stripe-protocol server in tests).
    stripe_api_base: str = "https://api.stripe.com"
    stripe_timeout_s: float = 20.0
    # At most this many seat-quantity updates per subscription per hour (Stripe allows 200).
    stripe_quantity_updates_per_hour: int = 4
    # Past due → suspended after this many days without payment.
    billing_grace_days: int = 7
    # How often a worker runs billing's periodic work (dunning, usage, local invoices).
    billing_interval_s: int = 300
    # How long a signed recording link (listen or download) works.
    recording_link_ttl_s: int = 300
    # How often a worker queues the recording retention purge.
    recording_retention_interval_s: int = 3600
    # How often a worker fills the QA work lists from the sampling policies.
    qa_sampling_interval_s: int = 3600
    # --- reports (issue 8, part A) ---
    # How often a worker brings the report rollups up to date.
    reports_rollup_interval_s: int = 300
    # Scheduled reports: how often a worker queues the deliveries that are due.
    reports_schedule_interval_s: int = 60
    # Where scheduled reports are e-mailed from (smtp[s]://[user:password@]host[:port][?starttls=true]);
    # unset: schedules with e-mail addresses are refused (409 smtp_not_configured).
    smtp_url: str | None = field(default=None, repr=False)
    smtp_from: str | None = None
    # Development and tests only: report webhooks may use http:// and loopback/private addresses.
    reports_webhook_allow_loopback: bool = False
    # --- end reports ---
    # --- operations (issue 9) ---
    # Bearer token Prometheus presents on /metrics (KEFU_METRICS_TOKEN); unset: /metrics answers 404.
    metrics_token: str | None = field(default=None, repr=False)
    # Dramatiq on Redis: a worker silent this long is dead and its unfinished messages go back
    # to the queue, at a fetch that checks (this many fetches in a million; Dramatiq's defaults).
    jobs_heartbeat_timeout_ms: int = 60_000
    jobs_maintenance_per_million: int = 1_000

    @property
    def embedded(self) -> bool:
        return self.mode == "embedded"


def _embedded_secret_key(data_dir: Path) -> bytes:
    """Create (once) and return the development JWT signing key."""
    secret_dir = data_dir / "secrets"
    secret_dir.mkdir(parents=True, exist_ok=True)
    key_path = secret_dir / "jwt-signing-key.pem"
    if not key_path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        tmp = key_path.with_suffix(".tmp")
        tmp.write_bytes(pem)
        tmp.chmod(0o600)
        tmp.replace(key_path)
    return key_path.read_bytes()


def _within(env: Mapping[str, str], name: str, default: int, *, low: int, high: int) -> int:
    value = _int(env, name, default)
    if not low <= value <= high:
        raise SettingsError(f"{name} must be from {low} to {high}, not {value}")
    return value


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {raw!r}") from None
    if value < 0:
        raise SettingsError(f"{name} must not be negative, not {raw!r}")
    return value


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    value = env.get(name, default)
    if value not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build settings from ``env`` (default: the process environment)."""
    env = os.environ if env is None else env
    mode = env.get("KEFU_MODE", "embedded")
    if mode not in ("embedded", "production"):
        raise SettingsError(f"KEFU_MODE must be 'embedded' or 'production', not {mode!r}")
    data_dir = Path(env.get("KEFU_DATA_DIR", ".kefu-data")).resolve()
    host = env.get("KEFU_HOST", "127.0.0.1")
    port = _int(env, "KEFU_PORT", 8000)
    public_url = env.get("KEFU_PUBLIC_URL", f"http://{host}:{port}").rstrip("/")

    if mode == "production":
        missing = [
            name
            for name in ("KEFU_DATABASE_URL", "KEFU_PLATFORM_DATABASE_URL", "KEFU_REDIS_URL", "KEFU_JWT_PRIVATE_KEY")
            if not env.get(name)
        ]
        if missing:
            raise SettingsError(
                "production mode needs these settings: " + ", ".join(missing)
                + " (see docs/configuration.md)"
            )
        db_url = env["KEFU_DATABASE_URL"]
        if not db_url.startswith("postgresql"):
            raise SettingsError("production mode needs a PostgreSQL KEFU_DATABASE_URL")
        db = DatabaseSettings(
            url=db_url,
            platform_url=env["KEFU_PLATFORM_DATABASE_URL"],
            migration_url=env.get("KEFU_MIGRATION_DATABASE_URL", env["KEFU_PLATFORM_DATABASE_URL"]),
            app_role=env.get("KEFU_DB_APP_ROLE", "kefu_app"),
            platform_role=env.get("KEFU_DB_PLATFORM_ROLE", "kefu_platform"),
        )
        key_pem = env["KEFU_JWT_PRIVATE_KEY"].encode()
        if "PRIVATE KEY" not in env["KEFU_JWT_PRIVATE_KEY"]:
            raise SettingsError("KEFU_JWT_PRIVATE_KEY must be a PEM-encoded private key")
        redis_url: str | None = env["KEFU_REDIS_URL"]
    else:
        data_dir.mkdir(parents=True, exist_ok=True)
        default_url = f"sqlite+aiosqlite:///{data_dir / 'kefu.sqlite3'}"
        url = env.get("KEFU_DATABASE_URL", default_url)
        db = DatabaseSettings(
            url=url,
            platform_url=env.get("KEFU_PLATFORM_DATABASE_URL", url),
            migration_url=env.get("KEFU_MIGRATION_DATABASE_URL", env.get("KEFU_PLATFORM_DATABASE_URL", url)),
            app_role=env.get("KEFU_DB_APP_ROLE", "kefu_app"),
            platform_role=env.get("KEFU_DB_PLATFORM_ROLE", "kefu_platform"),
        )
        key_pem = env["KEFU_JWT_PRIVATE_KEY"].encode() if env.get("KEFU_JWT_PRIVATE_KEY") else _embedded_secret_key(data_dir)
        redis_url = env.get("KEFU_REDIS_URL") or None

    auth = AuthSettings(
        signing_key_pem=key_pem,
        issuer=env.get("KEFU_ISSUER", public_url),
        access_token_ttl_s=_int(env, "KEFU_ACCESS_TOKEN_TTL", 900),
    )
    ice = tuple(s for s in env.get("KEFU_ICE_SERVERS", "").split(",") if s)
    if env.get("KEFU_STRIPE_API_KEY") and not env.get("KEFU_STRIPE_WEBHOOK_SECRET"):
        raise SettingsError("KEFU_STRIPE_API_KEY needs KEFU_STRIPE_WEBHOOK_SECRET: Stripe's webhooks drive invoices and dunning")
    return Settings(
        mode=mode,  # type: ignore[arg-type]
        data_dir=data_dir,
        host=host,
        port=port,
        public_url=public_url,
        db=db,
        auth=auth,
        redis_url=redis_url,
        recordings_dir=Path(env.get("KEFU_RECORDINGS_DIR", str(data_dir / "recordings"))).resolve(),
        max_body_bytes=_int(env, "KEFU_MAX_BODY_BYTES", 1024 * 1024),
        tenant_retention_days=_int(env, "KEFU_TENANT_RETENTION_DAYS", 90),
        purge_interval_s=_int(env, "KEFU_PURGE_INTERVAL", 3600),
        ice_servers=ice,
        # Loopback candidates suit one machine (the embedded default, tests), never production.
        media_allow_loopback=env.get("KEFU_MEDIA_ALLOW_LOOPBACK", "1" if mode == "embedded" else "0") == "1",
        ring_timeout_s=_int(env, "KEFU_RING_TIMEOUT", 20),
        node_id=env.get("KEFU_NODE_ID") or ("embedded" if mode == "embedded" else f"{socket.gethostname()}:{port}"),
        trusted_proxies=tuple(a.strip() for a in env.get("KEFU_TRUSTED_PROXIES", "").split(",") if a.strip()),
        turn_urls=tuple(s for s in env.get("KEFU_TURN_URLS", "").split(",") if s),
        turn_secret=env.get("KEFU_TURN_SECRET") or None,
        turn_ttl_s=_int(env, "KEFU_TURN_TTL", 3600),
        media_heartbeat_s=_int(env, "KEFU_MEDIA_HEARTBEAT_MS", 1000) / 1000,
        media_node_timeout_s=_int(env, "KEFU_MEDIA_NODE_TIMEOUT_MS", 5000) / 1000,
        media_max_calls=_int(env, "KEFU_MEDIA_MAX_CALLS", 500),
        call_setups_in_flight=_within(env, "KEFU_CALL_SETUPS_IN_FLIGHT", 32, low=1, high=10_000),
        recordings_backend=_choice(env, "KEFU_RECORDINGS_BACKEND", ("local", "s3"), "local"),
        s3_bucket=env.get("KEFU_S3_BUCKET") or None,
        s3_endpoint_url=env.get("KEFU_S3_ENDPOINT_URL") or None,
        s3_region=env.get("KEFU_S3_REGION", "us-east-1"),
        s3_prefix=env.get("KEFU_S3_PREFIX", ""),
        media_cache_dir=Path(env.get("KEFU_MEDIA_CACHE_DIR", str(data_dir / "media-cache"))).resolve(),
        moh_file=Path(env["KEFU_MOH_FILE"]).resolve() if env.get("KEFU_MOH_FILE") else None,
        stripe_api_key=env.get("KEFU_STRIPE_API_KEY") or None,
        stripe_webhook_secret=env.get("KEFU_STRIPE_WEBHOOK_SECRET") or None,
        stripe_api_base=env.get("KEFU_STRIPE_API_BASE", "https://api.stripe.com").rstrip("/"),
        stripe_timeout_s=_int(env, "KEFU_STRIPE_TIMEOUT_MS", 20_000) / 1000,
        stripe_quantity_updates_per_hour=_int(env, "KEFU_STRIPE_QUANTITY_UPDATES_PER_HOUR", 4),
        billing_grace_days=_int(env, "KEFU_BILLING_GRACE_DAYS", 7),
        billing_interval_s=_int(env, "KEFU_BILLING_INTERVAL", 300),
        recording_link_ttl_s=_within(env, "KEFU_RECORDING_LINK_TTL", 300, low=10, high=86_400),
        recording_retention_interval_s=_within(env, "KEFU_RECORDING_RETENTION_INTERVAL", 3600, low=1, high=86_400),
        qa_sampling_interval_s=_within(env, "KEFU_QA_SAMPLING_INTERVAL", 3600, low=1, high=86_400),
        # reports (issue 8, part A)
        reports_rollup_interval_s=_within(env, "KEFU_REPORTS_ROLLUP_INTERVAL", 300, low=1, high=86_400),
        reports_schedule_interval_s=_within(env, "KEFU_REPORTS_SCHEDULE_INTERVAL", 60, low=1, high=3600),
        smtp_url=_smtp_url(env),
        smtp_from=env.get("KEFU_SMTP_FROM") or None,
        reports_webhook_allow_loopback=env.get("KEFU_REPORTS_WEBHOOK_ALLOW_LOOPBACK", "0") == "1",
        metrics_token=_metrics_token(env),
        jobs_heartbeat_timeout_ms=_within(env, "KEFU_JOBS_HEARTBEAT_TIMEOUT_MS", 60_000, low=1_000, high=3_600_000),
        jobs_maintenance_per_million=_within(env, "KEFU_JOBS_MAINTENANCE_PER_MILLION", 1_000, low=1, high=1_000_000),
    )


def _metrics_token(env: Mapping[str, str]) -> str | None:
    """KEFU_METRICS_TOKEN: long enough that guessing it is hopeless (it guards /metrics)."""
    token = env.get("KEFU_METRICS_TOKEN") or None
    if token is not None and len(token) < METRICS_TOKEN_MIN:
        raise SettingsError(f"KEFU_METRICS_TOKEN must have at least {METRICS_TOKEN_MIN} characters (e.g. openssl rand -hex 32)")
    return token


def _smtp_url(env: Mapping[str, str]) -> str | None:
    """KEFU_SMTP_URL, checked: smtp:// or smtps:// with a host, and KEFU_SMTP_FROM beside it."""
    from urllib.parse import urlsplit

    url = env.get("KEFU_SMTP_URL") or None
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 — a port that is not a number raises here
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise SettingsError("KEFU_SMTP_URL must be smtp://[user:password@]host[:port][?starttls=true] or smtps://…")
    if not env.get("KEFU_SMTP_FROM"):
        raise SettingsError("KEFU_SMTP_URL needs KEFU_SMTP_FROM, the address scheduled reports are sent from")
    return url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return load_settings()


def new_secret() -> str:
    return secrets.token_urlsafe(32)
