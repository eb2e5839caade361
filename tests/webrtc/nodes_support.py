"""Helpers for the media-node tests: production-mode settings, `kefu media` subprocesses,
hand-written heartbeats, and a deadline helper for outcomes seen in Redis or the database."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kefu.platform.devservices import free_port
from kefu.webrtc.remote import NODES, Heartbeat

KEFU = str(Path(sys.executable).parent / "kefu")
T = TypeVar("T")


def private_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()


async def until(check: Callable[[], Awaitable[T]], *, timeout: float, what: str) -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout`` s.

    Only for outcomes of other processes (a killed media node, a subprocess
    starting) observed in Redis or the database.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


async def write_heartbeat(redis: Any, *, node: str, node_id: str | None = None, seq: int = 1, calls: int = 0,
                          max_calls: int = 100, cpu_percent: float = 1.0, state: str = "running",
                          started_at: float | None = None) -> None:
    """A node's report, written by hand (what MediaNode.heartbeat writes)."""
    beat = Heartbeat(node=node, node_id=node_id or node.split("/")[0], seq=seq, state=state, calls=calls, legs=2 * calls,
                     cpu_percent=cpu_percent, max_calls=max_calls, started_at=started_at or time.time())
    await redis.hset(NODES, node, msgspec.json.encode(beat))


class MediaNodeProcess:
    """A real `kefu media` process (production mode) with its log in a file."""

    def __init__(self, env: dict[str, str], *, node_id: str, log_dir: Path) -> None:
        self.node_id = node_id
        self.env = {**os.environ, **env, "KEFU_NODE_ID": node_id, "KEFU_PORT": str(free_port()), "KEFU_LOG_LEVEL": "INFO"}
        self.log_path = log_dir / f"{node_id}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> "MediaNodeProcess":
        log = self.log_path.open("ab")
        self.process = subprocess.Popen([KEFU, "media"], env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def signal(self, sig: signal.Signals) -> None:
        os.kill(self.pid, sig)

    def kill(self) -> None:
        """kill -9: no goodbye, no last heartbeat."""
        self.signal(signal.SIGKILL)
        assert self.process is not None
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGCONT)
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
