"""Alembic, driven from Python: the only way any schema is created (tests included)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str, *, app_role: str = "kefu_app", platform_role: str = "kefu_platform") -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["app_role"] = app_role
    cfg.attributes["platform_role"] = platform_role
    return cfg


def upgrade(url: str, revision: str = "head", **roles: str) -> None:
    command.upgrade(alembic_config(url, **roles), revision)


def downgrade(url: str, revision: str = "base", **roles: str) -> None:
    command.downgrade(alembic_config(url, **roles), revision)


def current(url: str) -> None:
    command.current(alembic_config(url), verbose=True)
