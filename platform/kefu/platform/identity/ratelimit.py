"""Per-client-IP log-in limiter: at most ``max_failures`` failed log-ins per IP in
a sliding ``window_s``, so unknown e-mails cannot be sprayed from one address.

(Per-user lock-out lives on the user row; see ``kefu.platform.identity.sessions``.)
Two stores with one interface: in-process for the embedded default, Redis
(shared by every API replica) when ``settings.redis_url`` is set.  Time is
passed in by the caller, so tests drive it with a fake clock.
"""

from __future__ import annotations

import math
import uuid
from collections import deque
from typing import Protocol

DEFAULT_MAX_FAILURES = 20
DEFAULT_WINDOW_S = 300


class LoginLimiter(Protocol):
    max_failures: int
    window_s: int

    async def retry_after(self, key: str, *, now: float) -> int:
        """Seconds until ``key`` may try again (0: allowed now)."""
        ...

    async def failed(self, key: str, *, now: float) -> None: ...

    async def close(self) -> None: ...


class MemoryLoginLimiter:
    def __init__(self, *, max_failures: int = DEFAULT_MAX_FAILURES, window_s: int = DEFAULT_WINDOW_S) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            self._failures.pop(key, None)
        return times

    async def retry_after(self, key: str, *, now: float) -> int:
        times = self._recent(key, now)
        if len(times) < self.max_failures:
            return 0
        return max(1, math.ceil(times[-self.max_failures] + self.window_s - now))

    async def failed(self, key: str, *, now: float) -> None:
        self._recent(key, now)
        self._failures.setdefault(key, deque()).append(now)

    async def close(self) -> None:
        self._failures.clear()


class RedisLoginLimiter:
    """A sorted set per IP (score = failure time), trimmed to the window."""

    def __init__(self, url: str, *, max_failures: int = DEFAULT_MAX_FAILURES, window_s: int = DEFAULT_WINDOW_S, prefix: str = "kefu:login-ip:") -> None:
        from redis.asyncio import Redis

        self.max_failures = max_failures
        self.window_s = window_s
        self.prefix = prefix
        self._redis = Redis.from_url(url)

    async def retry_after(self, key: str, *, now: float) -> int:
        name = self.prefix + key
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(name, "-inf", now - self.window_s)
            pipe.zrange(name, -self.max_failures, -self.max_failures, withscores=True)
            pipe.zcard(name)
            _, oldest, count = await pipe.execute()
        if count < self.max_failures or not oldest:
            return 0
        return max(1, math.ceil(oldest[0][1] + self.window_s - now))

    async def failed(self, key: str, *, now: float) -> None:
        name = self.prefix + key
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(name, {uuid.uuid4().hex: now})
            pipe.expire(name, self.window_s + 1)
            await pipe.execute()

    async def close(self) -> None:
        await self._redis.aclose()


def make_login_limiter(redis_url: str | None) -> LoginLimiter:
    return RedisLoginLimiter(redis_url) if redis_url else MemoryLoginLimiter()
