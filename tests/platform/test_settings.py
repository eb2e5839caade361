"""Settings: production refuses to start without its secrets and database, with a
message naming what is missing; the embedded default makes its development
signing key once and keeps it, so tokens survive a restart."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from kefu.platform.identity.principal import Principal
from kefu.platform.problems import Problem
from kefu.platform.runtime import Runtime
from kefu.platform.settings import SettingsError, load_settings

PRODUCTION_REQUIRED = ("KEFU_DATABASE_URL", "KEFU_PLATFORM_DATABASE_URL", "KEFU_REDIS_URL", "KEFU_JWT_PRIVATE_KEY")
KEFU = str(Path(sys.executable).parent / "kefu")


def _production_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    pem = (tmp_path / "key.pem")
    if not pem.exists():
        load_settings({"KEFU_DATA_DIR": str(tmp_path / "keygen")})
        pem.write_bytes((tmp_path / "keygen" / "secrets" / "jwt-signing-key.pem").read_bytes())
    env = {
        "KEFU_MODE": "production",
        "KEFU_DATA_DIR": str(tmp_path / "prod"),
        "KEFU_DATABASE_URL": "postgresql+asyncpg://kefu_app@db.internal/kefu",
        "KEFU_PLATFORM_DATABASE_URL": "postgresql+asyncpg://kefu_platform@db.internal/kefu",
        "KEFU_REDIS_URL": "redis://redis.internal:6379/0",
        "KEFU_JWT_PRIVATE_KEY": pem.read_text(),
    }
    env.update(overrides)
    return {k: v for k, v in env.items() if v != ""}


def test_production_with_nothing_configured_names_every_missing_setting() -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings({"KEFU_MODE": "production"})
    message = str(raised.value)
    assert message == (
        "production mode needs these settings: KEFU_DATABASE_URL, KEFU_PLATFORM_DATABASE_URL, KEFU_REDIS_URL, "
        "KEFU_JWT_PRIVATE_KEY (see docs/configuration.md)"
    )


@pytest.mark.parametrize("missing", PRODUCTION_REQUIRED)
def test_production_missing_one_setting_names_exactly_that_one(tmp_path: Path, missing: str) -> None:
    with pytest.raises(SettingsError, match=f"needs these settings: {missing} \\("):
        load_settings(_production_env(tmp_path, **{missing: ""}))


def test_production_with_everything_configured_loads(tmp_path: Path) -> None:
    settings = load_settings(_production_env(tmp_path))
    assert settings.mode == "production"
    assert settings.db.is_postgres
    assert settings.db.app_role == "kefu_app"
    # Production never writes development secrets.
    assert not (tmp_path / "prod" / "secrets").exists()


def test_production_rejects_sqlite_and_non_pem_keys(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="needs a PostgreSQL KEFU_DATABASE_URL"):
        load_settings(_production_env(tmp_path, KEFU_DATABASE_URL="sqlite+aiosqlite:///x.db"))
    with pytest.raises(SettingsError, match="KEFU_JWT_PRIVATE_KEY must be a PEM-encoded private key"):
        load_settings(_production_env(tmp_path, KEFU_JWT_PRIVATE_KEY="secret"))


def test_unknown_mode_and_bad_port_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="KEFU_MODE must be 'embedded' or 'production', not 'prod'"):
        load_settings({"KEFU_MODE": "prod", "KEFU_DATA_DIR": str(tmp_path)})
    with pytest.raises(SettingsError, match="KEFU_PORT must be a whole number"):
        load_settings({"KEFU_PORT": "eighty", "KEFU_DATA_DIR": str(tmp_path)})


@pytest.mark.parametrize("command", ["serve", "api", "worker", "media"])
def test_cli_in_production_without_settings_exits_2_with_the_message(tmp_path: Path, command: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
    env.update(KEFU_MODE="production", KEFU_DATA_DIR=str(tmp_path / "data"))
    env.pop("KEFU_JWT_PRIVATE_KEY", None)
    result = subprocess.run([KEFU, command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "kefu: production mode needs these settings: KEFU_DATABASE_URL, KEFU_PLATFORM_DATABASE_URL, KEFU_REDIS_URL, "
        "KEFU_JWT_PRIVATE_KEY (see docs/configuration.md)"
    )
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()


def test_embedded_default_creates_its_signing_key_once_and_keeps_it(tmp_path: Path) -> None:
    env = {"KEFU_DATA_DIR": str(tmp_path / "data")}
    first = load_settings(env)
    key_file = tmp_path / "data" / "secrets" / "jwt-signing-key.pem"
    assert key_file.read_bytes() == first.auth.signing_key_pem
    assert b"BEGIN PRIVATE KEY" in first.auth.signing_key_pem
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    modified = key_file.stat().st_mtime_ns
    second = load_settings(env)
    assert second.auth.signing_key_pem == first.auth.signing_key_pem
    assert key_file.stat().st_mtime_ns == modified
    assert sorted(p.name for p in key_file.parent.iterdir()) == ["jwt-signing-key.pem"]
    assert first.db.url == f"sqlite+aiosqlite:///{tmp_path / 'data' / 'kefu.sqlite3'}"


def test_tokens_survive_a_restart_of_the_embedded_default(tmp_path: Path) -> None:
    env = {"KEFU_DATA_DIR": str(tmp_path / "data")}
    before_restart = Runtime.build(load_settings(env))
    principal = Principal.user(user_id=uuid.uuid4(), tenant_id=uuid.uuid4(), roles=frozenset({"agent"}))
    token = before_restart.tokens.issue(principal)
    after_restart = Runtime.build(load_settings(env))
    assert after_restart.keys.jwks() == before_restart.keys.jwks()
    verified = after_restart.tokens.verify(token)
    assert (verified.subject, verified.tenant_id, verified.roles) == (principal.subject, principal.tenant_id, principal.roles)
    # Another installation (another data folder) has its own key and rejects the token.
    elsewhere = Runtime.build(load_settings({"KEFU_DATA_DIR": str(tmp_path / "other")}))
    with pytest.raises(Problem) as rejected:
        elsewhere.tokens.verify(token)
    assert (rejected.value.status, rejected.value.code) == (401, "invalid_token")


def test_every_variable_the_settings_read_is_documented() -> None:
    import re

    import kefu.platform.settings as settings_module

    source = Path(settings_module.__file__).read_text()
    read = set(re.findall(r"\"(KEFU_[A-Z_]+)\"", source))
    documented = set(re.findall(r"`(KEFU_[A-Z_]+)`", (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()))
    assert len(read) >= 20
    assert read - documented == set()


@pytest.mark.parametrize("name", ["KEFU_PORT", "KEFU_RING_TIMEOUT", "KEFU_ACCESS_TOKEN_TTL", "KEFU_MAX_BODY_BYTES", "KEFU_PURGE_INTERVAL"])
def test_a_malformed_number_stops_start_up_with_its_name(tmp_path: Path, name: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings({"KEFU_DATA_DIR": str(tmp_path), name: "twenty"})
    assert str(raised.value) == f"{name} must be a whole number, not 'twenty'"


@pytest.mark.parametrize("name,value,low,high", [
    ("KEFU_RECORDING_LINK_TTL", "5", 10, 86_400), ("KEFU_RECORDING_LINK_TTL", "90000", 10, 86_400),
    ("KEFU_RECORDING_RETENTION_INTERVAL", "0", 1, 86_400), ("KEFU_QA_SAMPLING_INTERVAL", "100000", 1, 86_400),
    ("KEFU_JOBS_HEARTBEAT_TIMEOUT_MS", "999", 1_000, 3_600_000), ("KEFU_JOBS_MAINTENANCE_PER_MILLION", "0", 1, 1_000_000),
    ("KEFU_CALL_SETUPS_IN_FLIGHT", "0", 1, 10_000),
])
def test_intervals_out_of_their_range_stop_start_up_with_the_range(tmp_path: Path, name: str, value: str, low: int, high: int) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings({"KEFU_DATA_DIR": str(tmp_path), name: value})
    assert str(raised.value) == f"{name} must be from {low} to {high}, not {value}"
    settings = load_settings({"KEFU_DATA_DIR": str(tmp_path), "KEFU_RECORDING_LINK_TTL": "60"})
    assert (settings.recording_link_ttl_s, settings.recording_retention_interval_s, settings.qa_sampling_interval_s) == (60, 3600, 3600)
    assert settings.call_setups_in_flight == 32


def test_loopback_media_candidates_are_off_by_default_in_production(tmp_path: Path) -> None:
    pem = tmp_path / "key.pem"
    load_settings({"KEFU_DATA_DIR": str(tmp_path / "keygen")})
    pem.write_bytes((tmp_path / "keygen" / "secrets" / "jwt-signing-key.pem").read_bytes())
    production = load_settings({
        "KEFU_MODE": "production", "KEFU_DATA_DIR": str(tmp_path / "prod"),
        "KEFU_DATABASE_URL": "postgresql+asyncpg://kefu_app@db.internal/kefu",
        "KEFU_PLATFORM_DATABASE_URL": "postgresql+asyncpg://kefu_platform@db.internal/kefu",
        "KEFU_REDIS_URL": "redis://redis.internal:6379/0", "KEFU_JWT_PRIVATE_KEY": pem.read_text(),
    })
    assert production.media_allow_loopback is False
    assert load_settings({"KEFU_DATA_DIR": str(tmp_path / "embedded")}).media_allow_loopback is True
