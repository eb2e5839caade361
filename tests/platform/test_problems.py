"""Errors no client caused still answer as problem documents: a busy SQLite
database is a 503 to retry, anything else a 500 that says nothing internal."""

from __future__ import annotations

import sqlite3

from litestar import Litestar, get
from litestar.testing import TestClient
from sqlalchemy.exc import OperationalError

from kefu.platform.problems import exception_handlers


@get("/locked")
async def locked() -> None:
    raise OperationalError("UPDATE agents ...", {}, sqlite3.OperationalError("database is locked"))


@get("/broken")
async def broken() -> None:
    raise OperationalError("SELECT ...", {}, sqlite3.OperationalError("no such column: secret_internal_name"))


def test_a_busy_database_is_a_503_with_retry_after_and_other_errors_reveal_nothing() -> None:
    with TestClient(Litestar([locked, broken], exception_handlers=exception_handlers)) as client:
        busy = client.get("/locked")
        assert (busy.status_code, busy.headers["retry-after"], busy.json()["code"]) == (503, "1", "database_busy")
        assert busy.headers["content-type"].startswith("application/problem+json")
        failed = client.get("/broken")
        assert (failed.status_code, failed.json()["code"]) == (500, "internal_error")
        assert "secret_internal_name" not in failed.text
