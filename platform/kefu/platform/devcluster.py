"""The production topology on one machine, for tests, benchmarks and ``make cluster``.

``Topology.start()`` starts a real PostgreSQL (the three roles of
``devservices``) and a persistent Redis, migrates a fresh database with
``kefu db upgrade`` as production does, then runs the Kefu processes as
separate OS processes on loopback, all sharing one environment (database,
Redis, signing key, public URL, recordings folder):

* ``api-a``, ``api-b``: ``kefu api`` replicas, each on its own port;
* ``media-a``, ``media-b``: ``kefu media`` nodes;
* ``worker-a``, ``worker-b``: ``kefu worker`` processes (Dramatiq on Redis).

Each process can be killed (``SIGKILL``), stopped (``SIGTERM``) and started
again under the same name and port; PostgreSQL and Redis can be restarted in
place.  Logs go to ``<root>/<name>.log``.  Nothing here is imported by the
running product.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from kefu.platform.devservices import PostgresServer, RedisServer, free_port

KEFU = str(Path(sys.executable).parent / "kefu")
PUBLIC_URL = "http://kefu.test"

# The commands of the process kinds, by the prefix of their names.
COMMANDS = {"api": "api", "media": "media", "worker": "worker"}


def _signing_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()


@dataclass
class KefuProcess:
    """One ``kefu api|media|worker`` process, restartable under the same name and port."""

    name: str
    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def kind(self) -> str:
        return self.name.split("-")[0]

    @property
    def base(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.base}"

    def start(self) -> KefuProcess:
        env = {**os.environ, **self.env, "KEFU_NODE_ID": self.name, "KEFU_PORT": str(self.port)}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen([KEFU, COMMANDS[self.kind]], env=env, stdout=log, stderr=subprocess.STDOUT)
        return self

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        """``kill -9``: no goodbye, nothing flushed."""
        if self.running():
            assert self.process is not None
            self.process.kill()
            self.process.wait(10)

    def stop(self, timeout: float = 20) -> None:
        """``SIGTERM`` and wait (``SIGKILL`` after ``timeout``)."""
        if not self.running():
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class Topology:
    root: Path
    postgres: PostgresServer
    redis: RedisServer
    database: str
    env: dict[str, str]
    processes: dict[str, KefuProcess]
    own_root: bool = True

    @classmethod
    def start(cls, *, apis: int = 2, media: int = 2, workers: int = 2, root: Path | None = None,
              env: dict[str, str] | None = None) -> Topology:
        """Start PostgreSQL, Redis, migrate, and launch the processes (not waiting for them:
        see ``wait_ready``)."""
        own_root = root is None
        root = Path(tempfile.mkdtemp(prefix="kefu-cluster-")) if root is None else root
        root.mkdir(parents=True, exist_ok=True)
        postgres = PostgresServer.start()
        redis = None
        topology = None
        try:
            redis = RedisServer.start(persistent=True)
            database = postgres.create_empty_database(f"kefu_{uuid.uuid4().hex[:12]}")
            shared = {
                "KEFU_MODE": "production",
                "KEFU_DATABASE_URL": postgres.url(database, "kefu_app"),
                "KEFU_PLATFORM_DATABASE_URL": postgres.url(database, "kefu_platform"),
                "KEFU_MIGRATION_DATABASE_URL": postgres.url(database, "kefu_owner"),
                "KEFU_REDIS_URL": redis.url,
                "KEFU_JWT_PRIVATE_KEY": _signing_key(),
                "KEFU_PUBLIC_URL": PUBLIC_URL,
                "KEFU_MEDIA_ALLOW_LOOPBACK": "1",
                "KEFU_RECORDINGS_DIR": str(root / "recordings"),
                "KEFU_DATA_DIR": str(root / "data"),
                "KEFU_LOG_LEVEL": "INFO",
                **(env or {}),
            }
            topology = cls(root, postgres, redis, database, shared, {}, own_root)
            topology.kefu("db", "upgrade")
            names = [f"api-{c}" for c in "abcdefgh"[:apis]] + [f"media-{c}" for c in "abcdefgh"[:media]] + [
                f"worker-{c}" for c in "abcdefgh"[:workers]]
            for name in names:
                topology.processes[name] = KefuProcess(name, shared, root / f"{name}.log").start()
            return topology
        except BaseException:
            for process in (topology.processes.values() if topology is not None else ()):
                process.kill()
            if redis is not None:
                redis.stop()
            postgres.stop()
            if own_root:
                shutil.rmtree(root, ignore_errors=True)
            raise

    def kefu(self, *args: str) -> str:
        """Run a one-off ``kefu`` command (migrations, operator clients) in the cluster's environment."""
        result = subprocess.run([KEFU, *args], env={**os.environ, **self.env}, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"kefu {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def operator_client(self, name: str = "cluster-operator") -> tuple[str, str]:
        """OAuth2 client credentials of a platform operator (``kefu ops create-client``)."""
        out = dict(line.split("=", 1) for line in self.kefu("ops", "create-client", name).splitlines() if "=" in line)
        return out["client_id"], out["client_secret"]

    def names(self, kind: str) -> list[str]:
        return [name for name, process in self.processes.items() if process.kind == kind]

    def api_urls(self) -> list[str]:
        return [self.processes[name].url for name in self.names("api")]

    def __getitem__(self, name: str) -> KefuProcess:
        return self.processes[name]

    def wait_ready(self, *names: str, timeout: float = 90) -> None:
        """Block until each process answers ``GET /health`` with 200 (all when none named).

        Media nodes then still need a heartbeat before replicas place calls on them:
        callers wait for that through ``RemoteMediaPlane.wait_for_nodes`` or ``/ready``.
        """
        import httpx

        deadline = time.monotonic() + timeout
        for name in names or tuple(self.processes):
            process = self.processes[name]
            while True:
                if not process.running():
                    raise RuntimeError(f"{name} exited:\n{process.log()[-4000:]}")
                try:
                    if httpx.get(f"{process.url}/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not answer /health within {timeout} s:\n{process.log()[-4000:]}")
                time.sleep(0.1)

    def close(self) -> None:
        for process in self.processes.values():
            process.stop(timeout=10)
        self.redis.stop()
        self.postgres.stop()
        if self.own_root:
            shutil.rmtree(self.root, ignore_errors=True)
