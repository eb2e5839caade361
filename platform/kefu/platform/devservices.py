"""Throw-away PostgreSQL and Redis servers on loopback, for tests and benchmarks.

Both are the real Debian servers, started as child processes on free ports in
a temporary folder and stopped (and deleted) afterwards.  PostgreSQL gets the
three roles production uses:

* ``kefu_owner`` owns the schema and runs migrations;
* ``kefu_app`` owns nothing, cannot bypass row-level security, and is what the
  application connects as;
* ``kefu_platform`` has BYPASSRLS and serves the one audited platform path.

``PostgresServer.create_database()`` clones a migrated template database, so
each test gets a fresh, fully migrated database in a few milliseconds.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from kefu.platform.settings import DatabaseSettings

SUPERUSER = "kefu_super"
ROLES = {
    "kefu_owner": "LOGIN NOSUPERUSER NOBYPASSRLS CREATEDB",
    "kefu_app": "LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE",
    "kefu_platform": "LOGIN NOSUPERUSER BYPASSRLS NOCREATEDB NOCREATEROLE",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not candidates:
        raise RuntimeError(f"PostgreSQL's {name} was not found: run 'make deps' (apt-get install postgresql)")
    return candidates[-1]


def _as_postgres(cmd: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: drop to the postgres user."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


def _wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


@dataclass
class PostgresServer:
    port: int
    root: Path

    @classmethod
    def start(cls) -> "PostgresServer":
        root = Path(tempfile.mkdtemp(prefix="kefu-pg-"))
        data = root / "data"
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
        subprocess.run(
            _as_postgres([_pg_bin("initdb"), "-D", str(data), "-A", "trust", "-U", SUPERUSER, "-E", "UTF8", "--no-sync"]),
            check=True,
            capture_output=True,
        )
        port = free_port()
        options = (
            f"-p {port} -c listen_addresses=127.0.0.1 -k {root} -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off -c max_connections=300 -c shared_buffers=128MB"
        )
        subprocess.run(
            _as_postgres([_pg_bin("pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"]),
            check=True,
            capture_output=True,
        )
        server = cls(port=port, root=root)
        _wait_for_port(port)
        server.psql("postgres", "".join(f"CREATE ROLE {r} {attrs};" for r, attrs in ROLES.items()))
        return server

    def stop(self) -> None:
        subprocess.run(
            _as_postgres([_pg_bin("pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(self.root, ignore_errors=True)

    def restart(self, mode: str = "fast") -> None:
        """Stop and start the server on the same port and data (``pg_ctl restart``, which
        reuses the last start's options): every open connection is cut, nothing committed
        is lost (``mode`` ``fast`` rolls back open transactions; ``immediate`` is a crash
        and recovery)."""
        subprocess.run(
            _as_postgres([_pg_bin("pg_ctl"), "-D", str(self.root / "data"), "-m", mode, "-l", str(self.root / "log"), "-w", "restart"]),
            check=True,
            capture_output=True,
        )
        _wait_for_port(self.port)

    def psql(self, database: str, sql: str) -> str:
        result = subprocess.run(
            [_pg_bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, "-d", database,
             "-v", "ON_ERROR_STOP=1", "-qAtc", sql],
            check=True,
            capture_output=True,
            text=True,
        )
        return result.stdout

    def url(self, database: str, role: str, driver: str = "asyncpg") -> str:
        return f"postgresql+{driver}://{role}@127.0.0.1:{self.port}/{database}"

    def database_settings(self, database: str, **overrides: object) -> DatabaseSettings:
        values: dict[str, object] = {
            "url": self.url(database, "kefu_app"),
            "platform_url": self.url(database, "kefu_platform"),
            "migration_url": self.url(database, "kefu_owner"),
            "pool_size": 5,
        }
        values.update(overrides)
        return DatabaseSettings(**values)  # type: ignore[arg-type]

    def create_empty_database(self, name: str | None = None) -> str:
        name = name or f"kefu_{uuid.uuid4().hex[:12]}"
        self.psql("postgres", f"CREATE DATABASE {name} OWNER kefu_owner")
        self.psql(name, "REVOKE CREATE ON SCHEMA public FROM PUBLIC; ALTER SCHEMA public OWNER TO kefu_owner;")
        return name

    def create_database(self, template: str | None = None) -> str:
        """A fresh database; cloned from ``template`` (a migrated database) when given."""
        if template is None:
            return self.create_empty_database()
        name = f"kefu_{uuid.uuid4().hex[:12]}"
        self.psql("postgres", f"CREATE DATABASE {name} TEMPLATE {template} OWNER kefu_owner")
        return name

    def drop_database(self, name: str) -> None:
        self.psql("postgres", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen[bytes]
    root: Path
    persistent: bool = False

    @classmethod
    def start(cls, *, persistent: bool = False) -> "RedisServer":
        """``persistent``: append-only file (fsync every second), so a restart keeps the data,
        as a production Redis with persistence does; otherwise nothing is kept."""
        root = Path(tempfile.mkdtemp(prefix="kefu-redis-"))
        server = cls(port=free_port(), process=None, root=root, persistent=persistent)  # type: ignore[arg-type]
        server._spawn()
        return server

    def _spawn(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server was not found: run 'make deps' (apt-get install redis-server)")
        keep = ["--appendonly", "yes", "--appendfsync", "everysec"] if self.persistent else ["--appendonly", "no"]
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", *keep, "--dir", str(self.root)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(self.port)

    def restart(self) -> None:
        """SIGTERM (Redis writes what it holds when persistent) and start again on the same port."""
        self.process.terminate()
        self.process.wait(10)
        self._spawn()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.root, ignore_errors=True)
