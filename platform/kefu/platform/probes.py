"""Readiness and the /metrics gate, shared by every process's HTTP server (docs/observability.md).

* ``/health`` (liveness, each app its own): the process answers.
* ``/ready`` (``Readiness.report``): the process can take work now — its runtime
  started and is not stopping, and each dependency answers within
  ``CHECK_TIMEOUT_S``: the database (API and worker), Redis (when
  ``KEFU_REDIS_URL`` is set), and for a media node its heartbeat.  Otherwise 503
  ``not_ready`` naming the failed checks.  Once shutdown begins (the lifespan's
  shutdown, SIGTERM or SIGINT) it answers 503, so a load balancer stops
  sending traffic while the process drains.
* ``/metrics``: only with ``Authorization: Bearer <KEFU_METRICS_TOKEN>``; 404 while
  that setting is unset (``check_metrics_token``).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import signal
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Request, Response
from sqlalchemy import text

from kefu.platform import metrics
from kefu.platform.problems import Problem

log = logging.getLogger(__name__)

# A dependency that does not answer within this long counts as down (a dead
# PostgreSQL or Redis must not hang the probe).
CHECK_TIMEOUT_S = 1.0

# A check returns None when all is well, or a short reason; raising counts as failing.
Check = Callable[[], Awaitable[str | None]]


class Readiness:
    """One runtime's readiness (``readiness_of(runtime)``)."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self.stopping = False
        self.checks: dict[str, Check] = {}
        self._redis: Any = None
        if runtime.process_roles & {"api", "worker"}:
            self.checks["database"] = self._database
        if runtime.settings.redis_url:
            self.checks["redis"] = self._redis_ping

    def add_check(self, name: str, check: Check) -> None:
        self.checks[name] = check

    def begin(self) -> None:
        """The runtime is starting (again): not stopping."""
        self.stopping = False

    def shutting_down(self) -> None:
        if not self.stopping:
            log.info("shutting down: /ready answers 503 from now on")
        self.stopping = True

    async def close(self) -> None:
        if self._redis is not None:
            client, self._redis = self._redis, None
            try:
                await client.aclose()
            except Exception:
                log.debug("closing the readiness Redis client failed", exc_info=True)

    async def results(self) -> dict[str, str]:
        """Each check's result: "ok", or why not."""
        runtime = "stopping" if self.stopping else "ok" if self.runtime.started else "starting"
        results = {"runtime": runtime}
        if runtime != "ok":  # a runtime starting or stopping has nothing to check yet (or any more)
            return results | {name: "skipped" for name in self.checks}
        names = list(self.checks)
        outcomes = await asyncio.gather(*(self._bounded(self.checks[name]) for name in names))
        return results | dict(zip(names, outcomes))

    async def report(self) -> dict[str, Any]:
        """The /ready body, or a 503 ``not_ready`` problem naming the failed checks."""
        results = await self.results()
        failed = sorted(name for name, result in results.items() if result not in ("ok", "skipped"))
        if failed:
            raise Problem(503, "not_ready", "not ready: " + ", ".join(f"{name} ({results[name]})" for name in failed),
                          checks=results, failed=failed)
        return {"status": "ready", "checks": results}

    @staticmethod
    async def _bounded(check: Check) -> str:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                reason = await check()
        except TimeoutError:
            return f"no answer within {CHECK_TIMEOUT_S:g} s"
        except Exception as exc:
            return f"failed: {type(exc).__name__}"
        return "ok" if reason is None else reason

    async def _database(self) -> str | None:
        async with self.runtime.db.platform_engine.connect() as conn:
            await conn.execute(text("select 1"))
        return None

    async def _redis_ping(self) -> str | None:
        if self._redis is None:  # made here, with no await before it is kept: two first probes share it
            import redis.asyncio as aioredis

            self._redis = aioredis.from_url(
                self.runtime.settings.redis_url, socket_connect_timeout=CHECK_TIMEOUT_S, socket_timeout=CHECK_TIMEOUT_S,
            )
        return None if await self._redis.ping() else "no PONG"


def readiness_of(runtime: Any) -> Readiness:
    """The runtime's readiness (made on first use, kept in ``runtime.components["readiness"]``)."""
    readiness = runtime.components.get("readiness")
    if readiness is None:
        readiness = runtime.components["readiness"] = Readiness(runtime)
    return readiness


def mark_stopping_on_signals(readiness: Readiness) -> Callable[[], None]:
    """Under uvicorn (main thread): SIGTERM and SIGINT mark the runtime stopping before uvicorn's
    own handler starts its graceful shutdown.  Returns what puts the previous handlers back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    installed: dict[int, tuple[Any, Any]] = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)
        if not callable(previous):
            continue

        def marking(signum: int, frame: Any, previous: Any = previous) -> None:
            readiness.shutting_down()
            previous(signum, frame)

        signal.signal(sig, marking)
        installed[sig] = (previous, marking)

    def restore() -> None:
        for sig, (previous, marking) in installed.items():
            if signal.getsignal(sig) is marking:
                signal.signal(sig, previous)

    return restore


def check_metrics_token(settings: Any, authorization: str | None) -> None:
    """404 while ``KEFU_METRICS_TOKEN`` is unset (metrics are off); 401 unless the request
    presents it as a bearer token (compared in constant time)."""
    token = settings.metrics_token
    if not token:
        raise Problem(404, "not_found", "not found")
    scheme, _, presented = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), token.encode()):
        raise Problem(401, "unauthorized", "/metrics needs Authorization: Bearer <KEFU_METRICS_TOKEN>")


async def metrics_response(runtime: Any, request: Request) -> Response[bytes]:
    """The ``/metrics`` answer of every process (API, media node, worker): the token gate,
    then the runtime's exposition."""
    check_metrics_token(runtime.settings, request.headers.get("authorization"))
    return Response(await metrics.exposition(runtime), media_type=metrics.CONTENT_TYPE)
