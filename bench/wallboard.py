"""How long one change takes to reach 1,000 open wallboards on one server.

Starts ``kefu serve --demo`` (the embedded default: one process, SQLite, the
in-process push hub) on a free port and, in this process, opens ``--clients``
real WebSocket connections to ``/ws/wallboard`` as the demo admin (each reads
its first snapshot).  Then, ``--rounds`` times, it makes one agent change
through the HTTP API (the demo agent logs in, goes ready, not ready, …) and
measures, from just before the request until each socket has the snapshot
that shows the change, the time to the last of them.  Clients only note the
arrival time while a round runs and check the frames afterwards.

The figure includes the server's deliberate coalescing window
(``kefu.tenants.wallboard.live.COALESCE_S``, 250 ms), the snapshot
computation, one serialisation and 1,000 sends, and this process reading
1,000 frames on the same two cores.

The last line printed is ``wallboard_fanout_ms=<x>``, the median round (the
worst round is printed above it).  Target: under 1,000 ms.

Run: ``.venv/bin/python bench/wallboard.py [--clients 1000] [--rounds 6]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import websockets

from kefu.platform.devservices import free_port

KEFU = str(Path(sys.executable).with_name("kefu"))
# The demo agent's changes, in turn, and what the board then shows (agents by state).
CHANGES = [
    ("POST", "/api/v1/agent/session", None, "not_ready"),
    ("PUT", "/api/v1/agent/status", {"status": "available"}, "available"),
    ("PUT", "/api/v1/agent/status", {"status": "not_ready"}, "not_ready"),
    ("DELETE", "/api/v1/agent/session", None, "offline"),
]


async def until_up(base: str, server: subprocess.Popen[bytes], log: Path) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=5) as http:
        for _ in range(600):
            if server.poll() is not None:
                raise RuntimeError(f"kefu serve exited:\n{log.read_text()[-3000:]}")
            try:
                if (await http.get("/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("kefu serve did not come up within 60 s")


async def log_in(http: httpx.AsyncClient, email: str, password: str) -> str:
    response = await http.post("/api/v1/auth/login", json={"tenant": "demo", "email": email, "password": password})
    response.raise_for_status()
    return response.json()["access_token"]


async def run(clients: int, rounds: int, base: str, port: int) -> list[float]:
    from kefu.tenants.demo import ADMIN_EMAIL, ADMIN_PASSWORD, AGENT_EMAIL, AGENT_PASSWORD

    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        admin = await log_in(http, ADMIN_EMAIL, ADMIN_PASSWORD)
        agent = {"Authorization": f"Bearer {await log_in(http, AGENT_EMAIL, AGENT_PASSWORD)}"}
        url = f"ws://127.0.0.1:{port}/ws/wallboard?access_token={admin}"
        started = time.perf_counter()
        sockets = []
        for batch in range(0, clients, 100):  # connect in batches: the server accepts while it answers
            sockets += await asyncio.gather(*(websockets.connect(url, max_size=None) for _ in range(batch, min(clients, batch + 100))))
        firsts = await asyncio.gather(*(s.recv() for s in sockets))
        assert all(json.loads(f)["type"] == "snapshot" for f in firsts)
        print(f"{clients} wallboard sockets open with their first snapshot in {time.perf_counter() - started:.1f} s", flush=True)

        results = []
        for number in range(rounds):
            method, path, body, state = CHANGES[number % len(CHANGES)]
            arrivals: list[float] = []

            async def receive(socket: websockets.ClientConnection) -> str:
                frame = await asyncio.wait_for(socket.recv(), 10)
                arrivals.append(time.perf_counter())
                return frame  # type: ignore[return-value]

            waiting = [asyncio.create_task(receive(s)) for s in sockets]
            await asyncio.sleep(0.5)  # every receiver is waiting before the change (not part of the measure)
            t0 = time.perf_counter()
            response = await http.request(method, path, json=body, headers=agent)
            response.raise_for_status()
            frames = await asyncio.gather(*waiting)
            fanout = (max(arrivals) - t0) * 1000
            shown = {json.loads(f)["totals"]["agents"][state] for f in frames}
            assert shown == {1}, f"round {number}: the frames do not show the agent {state}"
            results.append(fanout)
            print(f"round {number + 1}: {method} {path} ({state}): first socket {(min(arrivals) - t0) * 1000:.0f} ms, "
                  f"median {(statistics.median(arrivals) - t0) * 1000:.0f} ms, all {clients} {fanout:.0f} ms", flush=True)
        for socket in sockets:
            await socket.close()
        return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kefu-bench-wallboard-") as folder:
        port = free_port()
        log = Path(folder) / "server.log"
        env = {**os.environ, "KEFU_DATA_DIR": str(Path(folder) / "data"), "KEFU_PORT": str(port)}
        with log.open("wb") as out:
            server = subprocess.Popen([KEFU, "serve", "--demo"], env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            asyncio.run(until_up(base, server, log))
            results = asyncio.run(run(args.clients, args.rounds, base, port))
        finally:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
    print(f"worst round: {max(results):.0f} ms; coalescing window included: 250 ms", flush=True)
    print(f"wallboard_fanout_ms={statistics.median(results):.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
