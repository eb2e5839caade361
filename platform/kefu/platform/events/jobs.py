"""Background jobs on Dramatiq, always inside a tenant (or the audited platform path).

Declare a job with ``tenant_job`` (or ``platform_job`` for platform-wide
work such as purging closed tenants)::

    @tenant_job(key=lambda kw: f"recording:{kw['recording_id']}")
    async def transcode(job: JobContext, session: AsyncSession, *, tenant_id: UUID, recording_id: str) -> None: ...

and enqueue it in the transaction that makes it necessary::

    await enqueue(session, transcode, tenant_id=tenant_id, recording_id=str(rec.id))

* The message is sent only after that transaction commits (never for a rollback).
* Every message carries ``tenant_id``; the body runs inside
  ``db.tenant_session(tenant_id=...)`` so on PostgreSQL row-level security
  applies to the job exactly as to a request.
* Idempotency: each message carries a key derived from the rows it acts on
  (``key=`` above; by default the job name and its arguments).  A tenant job's
  key is recorded in ``job_runs`` in the job's own transaction, so a
  redelivered or duplicated message does nothing the second time.  Platform
  jobs must be idempotent by the state they check (see the tenant purge).
* Retries with exponential backoff (Dramatiq's ``Retries``: ``max_retries``,
  ``min_backoff_ms``, ``max_backoff_ms``).

The broker: ``RedisBroker`` on ``settings.redis_url`` when set (production),
otherwise Dramatiq's in-process ``StubBroker``.  Where the runtime has the
``worker`` role, ``JobSystem`` runs a ``dramatiq.Worker`` in this process,
with its own event loop thread and its own ``Database`` (async engines are
bound to the loop that made them).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import dramatiq
from dramatiq.asyncio import EventLoopThread
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import CurrentMessage, Retries
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.platform import metrics
from kefu.platform.db import Database
from kefu.platform.db.base import utcnow
from kefu.platform.db.session import on_commit
from kefu.platform.events import bindings
from kefu.platform.events.models import JobRun
from kefu.platform.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_QUEUE = "kefu"
KEY_MAX = 200


@dataclass(frozen=True)
class JobContext:
    """What a running job may use besides its session."""

    settings: Settings
    db: Database
    message_id: str
    retries: int
    key: str


JobBody = Callable[..., Awaitable[None]]


@dataclass(frozen=True)
class JobDefinition:
    name: str
    fn: JobBody
    scope: str  # "tenant" | "platform"
    queue: str
    max_retries: int
    min_backoff_ms: int
    max_backoff_ms: int
    key: Callable[[dict[str, Any]], str] | None
    reason: str | None = None

    def key_for(self, kwargs: dict[str, Any]) -> str:
        key = self.key(kwargs) if self.key is not None else f"{self.name}:{json.dumps(kwargs, sort_keys=True, default=str)}"
        if len(key) > KEY_MAX:
            raise ValueError(f"job key longer than {KEY_MAX} characters: give {self.name} a key= derived from row ids")
        return key

    async def __call__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError(f"{self.name} is a job: enqueue it with kefu.platform.events.enqueue(session, job, ...)")


JOBS: dict[str, JobDefinition] = {}


def _register(definition: JobDefinition) -> JobDefinition:
    if definition.name in JOBS and JOBS[definition.name].fn.__qualname__ != definition.fn.__qualname__:
        raise ValueError(f"a job named {definition.name!r} already exists")
    JOBS[definition.name] = definition
    return definition


def _job_name(body: JobBody, name: str | None) -> str:
    return name or f"{body.__module__}.{body.__qualname__}"


def tenant_job(
    fn: JobBody | None = None,
    *,
    name: str | None = None,
    queue: str = DEFAULT_QUEUE,
    key: Callable[[dict[str, Any]], str] | None = None,
    max_retries: int = 10,
    min_backoff_ms: int = 1_000,
    max_backoff_ms: int = 300_000,
) -> Any:
    """Declare ``async def fn(job, session, *, tenant_id, **kwargs)`` as a tenant job."""

    def wrap(body: JobBody) -> JobDefinition:
        return _register(
            JobDefinition(
                name=_job_name(body, name), fn=body, scope="tenant", queue=queue, max_retries=max_retries,
                min_backoff_ms=min_backoff_ms, max_backoff_ms=max_backoff_ms, key=key,
            )
        )

    return wrap(fn) if fn is not None else wrap


def platform_job(
    *,
    reason: str,
    name: str | None = None,
    queue: str = DEFAULT_QUEUE,
    max_retries: int = 10,
    min_backoff_ms: int = 1_000,
    max_backoff_ms: int = 300_000,
) -> Callable[[JobBody], JobDefinition]:
    """Declare ``async def fn(job, session, **kwargs)`` run in ``platform_session(reason=reason)``."""

    def wrap(body: JobBody) -> JobDefinition:
        return _register(
            JobDefinition(
                name=_job_name(body, name), fn=body, scope="platform", queue=queue, max_retries=max_retries,
                min_backoff_ms=min_backoff_ms, max_backoff_ms=max_backoff_ms, key=None, reason=reason,
            )
        )

    return wrap


async def enqueue(
    session: AsyncSession, job: JobDefinition, *, tenant_id: uuid.UUID | None = None, delay_ms: int | None = None, **kwargs: Any
) -> str:
    """Send ``job`` once ``session``'s transaction commits; returns its idempotency key.

    ``kwargs`` must be JSON values (pass ids as strings).  ``delay_ms``: run it no
    sooner than that many milliseconds after the commit.
    """
    if job.scope == "tenant":
        if not isinstance(tenant_id, uuid.UUID):
            raise TypeError(f"{job.name} is a tenant job: enqueue it with tenant_id=<UUID>")
        session_tenant = session.info.get("tenant_id")
        if session_tenant is not None and session_tenant != tenant_id:
            raise ValueError("a tenant session may only enqueue jobs of its own tenant")
    elif tenant_id is not None:
        raise TypeError(f"{job.name} is a platform job: it takes no tenant_id")
    json.dumps(kwargs)  # fail now, in the caller, rather than in the worker
    system = bindings.jobs_for(session)
    if system is None:
        raise RuntimeError("no job system serves this session's database (is the runtime started?)")
    key = job.key_for(kwargs)
    message = system.message(job, tenant_id=tenant_id, kwargs=kwargs, key=key)

    async def send_after_commit() -> None:
        await system.send(message, delay_ms=delay_ms)

    on_commit(session, send_after_commit)
    return key


class _AlreadyDone(Exception):
    pass


def make_broker(settings: Settings) -> dramatiq.Broker:
    if settings.redis_url:
        from dramatiq.brokers.redis import RedisBroker

        broker: dramatiq.Broker = RedisBroker(
            url=settings.redis_url, namespace="kefu-jobs", heartbeat_timeout=settings.jobs_heartbeat_timeout_ms,
            maintenance_chance=settings.jobs_maintenance_per_million,
        )
    else:
        broker = StubBroker()
    broker.add_middleware(CurrentMessage())
    # Before Retries: its "after" hook then runs after Retries decided (failed or retried).
    broker.add_middleware(metrics.JobMetrics(), before=Retries)
    return broker


class JobSystem:
    """The broker, the actors of every declared job, and (with the worker role) the worker.

    ``runtime.components["jobs"]``; the broker is also ``runtime.components["broker"]``.
    """

    name = "jobs"

    def __init__(
        self,
        settings: Settings,
        web_db: Database,
        *,
        broker: dramatiq.Broker | None = None,
        run_worker: bool = True,
        worker_threads: int = 2,
    ) -> None:
        self.settings = settings
        self.web_db = web_db
        self.broker = broker if broker is not None else make_broker(settings)
        self.run_worker = run_worker
        self.worker_threads = worker_threads
        self.actors: dict[str, dramatiq.Actor] = {}
        self.worker: dramatiq.Worker | None = None
        self.loop_thread: EventLoopThread | None = None
        self.worker_db: Database | None = None
        self._declare_actors()

    @property
    def queues(self) -> set[str]:
        return {definition.queue for definition in JOBS.values()}

    def _declare_actors(self) -> None:
        for definition in JOBS.values():
            if definition.name in self.broker.actors:
                self.actors[definition.name] = self.broker.get_actor(definition.name)
                continue
            self.actors[definition.name] = dramatiq.Actor(
                self._runner(definition),
                broker=self.broker,
                actor_name=definition.name,
                queue_name=definition.queue,
                priority=0,
                options={
                    "max_retries": definition.max_retries,
                    "min_backoff": definition.min_backoff_ms,
                    "max_backoff": definition.max_backoff_ms,
                },
            )

    def message(self, job: JobDefinition, *, tenant_id: uuid.UUID | None, kwargs: dict[str, Any], key: str) -> dramatiq.Message:
        actor = self.actors.get(job.name)
        if actor is None:  # declared after this runtime was built (tests)
            self._declare_actors()
            actor = self.actors[job.name]
        return actor.message_with_options(
            kwargs={"tenant_id": str(tenant_id) if tenant_id else None, "payload": kwargs, "key": key}
        )

    async def send(self, message: dramatiq.Message, *, delay_ms: int | None = None) -> None:
        if isinstance(self.broker, StubBroker):
            self.broker.enqueue(message, delay=delay_ms)
        else:
            await asyncio.to_thread(self.broker.enqueue, message, delay=delay_ms)

    # --- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        bindings.bind_jobs([self.web_db.engine, self.web_db.platform_engine], self)
        if not self.run_worker:
            return
        self.loop_thread = EventLoopThread(log)
        self.loop_thread.start(timeout=5.0)
        self.worker_db = self.loop_thread.run_coroutine(self._open_worker_db())
        self.worker = dramatiq.Worker(self.broker, worker_threads=self.worker_threads, worker_timeout=100)
        self.worker.start()

    async def _open_worker_db(self) -> Database:
        db = Database(self.settings.db)
        bindings.bind_jobs([db.engine, db.platform_engine], self)
        bus = bindings._buses.get(self.web_db.engine.sync_engine)
        if bus is not None:
            bindings.bind_bus([db.engine, db.platform_engine], bus)
        return db

    async def stop(self) -> None:
        if self.worker is not None:
            await asyncio.to_thread(self.worker.stop)
            self.worker = None
        if self.loop_thread is not None:
            db = self.worker_db
            if db is not None:
                bindings.unbind([db.engine, db.platform_engine])
                self.loop_thread.run_coroutine(db.dispose())
            self.loop_thread.stop()
            self.loop_thread = None
            self.worker_db = None
        bindings.unbind([self.web_db.engine, self.web_db.platform_engine])
        self.broker.close()

    async def drain(self, timeout_s: float = 30.0) -> None:
        """Wait until every queued message (retries included) has been processed (tests)."""

        def join() -> None:
            for queue in sorted(self.queues):
                self.broker.join(queue, timeout=int(timeout_s * 1000))
            if self.worker is not None:
                self.worker.join()

        await asyncio.to_thread(join)

    # --- running a message ------------------------------------------------------------

    def _runner(self, definition: JobDefinition) -> Callable[..., None]:
        def run(*, tenant_id: str | None, payload: dict[str, Any], key: str) -> None:
            if self.loop_thread is None:
                raise RuntimeError("this process runs no job worker")
            current = CurrentMessage.get_current_message()
            message_id = current.message_id if current is not None else ""
            retries = int(current.options.get("retries", 0)) if current is not None else 0
            outcome = self.loop_thread.run_coroutine(self._execute(definition, tenant_id, payload, key, message_id, retries))
            metrics.JobMetrics.note_outcome(outcome)  # "done" or "skipped_duplicate", counted by kefu_jobs_total

        run.__name__ = definition.name.rsplit(".", 1)[-1]
        return run

    async def _execute(
        self, definition: JobDefinition, tenant_id: str | None, payload: dict[str, Any], key: str, message_id: str, retries: int
    ) -> str:
        db = self.worker_db
        assert db is not None
        context = JobContext(settings=self.settings, db=db, message_id=message_id, retries=retries, key=key)
        if definition.scope == "platform":
            async with db.platform_session(reason=definition.reason or definition.name) as session:
                await definition.fn(context, session, **payload)
            return metrics.JOB_DONE
        tenant = uuid.UUID(tenant_id) if tenant_id else None
        if tenant is None:
            raise ValueError(f"message for tenant job {definition.name} has no tenant_id")
        try:
            async with db.tenant_session(tenant_id=tenant) as session:
                done = await session.scalar(select(JobRun.id).where(JobRun.tenant_id == tenant, JobRun.key == key))
                if done is not None:
                    log.info("job %s already done for key %s", definition.name, key)
                    return metrics.JOB_SKIPPED_DUPLICATE
                await definition.fn(context, session, tenant_id=tenant, **payload)
                try:
                    async with session.begin_nested():
                        session.add(JobRun(tenant_id=tenant, key=key, job=definition.name, completed_at=utcnow()))
                except IntegrityError:
                    # A duplicate of this message finished first: undo ours entirely.
                    raise _AlreadyDone() from None
        except _AlreadyDone:
            log.info("job %s for key %s finished concurrently elsewhere", definition.name, key)
            return metrics.JOB_SKIPPED_DUPLICATE
        return metrics.JOB_DONE
