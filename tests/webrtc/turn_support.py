"""A throw-away coturn on loopback, configured the way production is (TURN REST API
credentials from a shared secret), for tests that prove Kefu's credentials work.

``CoturnServer.start(secret)`` runs ``/usr/bin/turnserver`` as a child process on
a free port of 127.0.0.1, with ``use-auth-secret`` and the given
``static-auth-secret``, relaying on 127.0.0.1 only (``allow-loopback-peers``, which
production must never set), no CLI, no TLS/DTLS listeners, and returns once the
server answers a STUN binding request; ``start(secret, config=...)`` runs it with
a configuration file instead (infra/coturn/turnserver.conf, adapted to loopback).
``stop()`` ends it and removes its folder.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aioice import stun

TURNSERVER = "/usr/bin/turnserver"
REALM = "kefu.test"
START_TIMEOUT_S = 15.0


def free_udp_and_tcp_port() -> int:
    """A loopback port free for both UDP and TCP (coturn listens on both)."""
    for _attempt in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket() as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return int(port)
    raise RuntimeError("no free loopback port for coturn")


def stun_binding_answered(port: int, timeout_s: float = 0.2) -> bool:
    """Whether something on 127.0.0.1:``port`` answers a STUN binding request."""
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout_s)
        try:
            sock.sendto(bytes(request), ("127.0.0.1", port))
            data, _ = sock.recvfrom(2048)
        except OSError:  # timeout, or ICMP port unreachable before it listens
            return False
    try:
        answer = stun.parse_message(data)
    except ValueError:
        return False
    return answer.transaction_id == request.transaction_id and answer.message_class == stun.Class.RESPONSE


@dataclass
class CoturnServer:
    port: int
    secret: str
    root: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"turn:127.0.0.1:{self.port}?transport=udp"

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    @classmethod
    def start(cls, secret: str, *, config: Callable[[int, Path], str] | None = None) -> "CoturnServer":
        """The development set-up, or ``config(port, folder)``'s configuration file (it must
        listen on 127.0.0.1:``port`` with ``secret``; files go in ``folder``)."""
        if not os.path.exists(TURNSERVER):
            raise RuntimeError(f"{TURNSERVER} is missing: apt-get install coturn")
        root = Path(tempfile.mkdtemp(prefix="kefu-coturn-"))
        port = free_udp_and_tcp_port()
        files = ["--userdb", str(root / "turndb"), "--pidfile", str(root / "turnserver.pid"),
                 "--log-file", str(root / "turnserver.log"), "--simple-log", "--no-stdout-log"]
        if config is None:
            command = [
                TURNSERVER, "-n",  # no configuration file: everything is on this line
                "--listening-ip", "127.0.0.1", "--relay-ip", "127.0.0.1", "--listening-port", str(port),
                "--use-auth-secret", "--static-auth-secret", secret, "--realm", REALM, "--fingerprint",
                "--allow-loopback-peers", "--no-cli", "--no-tls", "--no-dtls", "--no-tcp-relay", *files,
            ]
        else:
            (root / "turnserver.conf").write_text(config(port, root))
            command = [TURNSERVER, "-c", str(root / "turnserver.conf"), *files]
        log = open(root / "stdout.log", "wb")  # noqa: SIM115 - kept open for the child's lifetime
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        server = cls(port, secret, root, process)
        deadline = time.monotonic() + START_TIMEOUT_S
        # A real external process: poll it with a deadline until it answers.
        while not stun_binding_answered(port):
            if process.poll() is not None or time.monotonic() > deadline:
                output = server.log_text()
                server.stop()
                raise RuntimeError(f"coturn did not start on port {port}:\n{output}")
        return server

    def log_text(self) -> str:
        texts = []
        for name in ("stdout.log", "turnserver.log"):
            path = self.root / name
            if path.exists():
                texts.append(path.read_text(errors="replace"))
        return "\n".join(texts)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)
