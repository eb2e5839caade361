"""Which event bus and job system serve a given database session.

``emit`` and ``enqueue`` take only a session (that is what callers hold), so
the components that act after commit are found from the session's engine.
Each runtime binds its engines when its services start (the web engines, and
the worker's own engines on the job loop) and unbinds them when they stop;
several runtimes in one process (tests, a two-node topology) never mix.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

if TYPE_CHECKING:
    from kefu.platform.events.bus import EventBus
    from kefu.platform.events.jobs import JobSystem

_buses: "weakref.WeakKeyDictionary[Any, EventBus]" = weakref.WeakKeyDictionary()
_jobs: "weakref.WeakKeyDictionary[Any, JobSystem]" = weakref.WeakKeyDictionary()


def _key(engine: AsyncEngine) -> Any:
    return engine.sync_engine


def bind_bus(engines: list[AsyncEngine], bus: "EventBus") -> None:
    for engine in engines:
        _buses[_key(engine)] = bus


def bind_jobs(engines: list[AsyncEngine], jobs: "JobSystem") -> None:
    for engine in engines:
        _jobs[_key(engine)] = jobs


def unbind(engines: list[AsyncEngine]) -> None:
    for engine in engines:
        _buses.pop(_key(engine), None)
        _jobs.pop(_key(engine), None)


def _engine_of(session: AsyncSession) -> AsyncEngine | None:
    bind = session.bind
    return bind if isinstance(bind, AsyncEngine) else None


def bus_for(session: AsyncSession) -> "EventBus | None":
    engine = _engine_of(session)
    return _buses.get(_key(engine)) if engine is not None else None


def jobs_for(session: AsyncSession) -> "JobSystem | None":
    engine = _engine_of(session)
    return _jobs.get(_key(engine)) if engine is not None else None
