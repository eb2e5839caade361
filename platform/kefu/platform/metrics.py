"""Prometheus metrics: every metric Kefu exports is defined here, and ``exposition`` builds /metrics.

Two kinds (docs/observability.md lists them all):

* **Event metrics** — counters and histograms moved where things happen (a call
  starts or ends, the ACD offers, a job runs, an HTTP request ends).  They live
  in one module-level registry, ``REGISTRY``, beside prometheus_client's
  process collectors.  A production process runs one runtime, so its counters
  are that runtime's; where runtimes share a process (the roles of ``kefu
  serve``, the test suite) they add up, and tests read differences.
* **State metrics** — waiting calls, agents by state, unpublished outbox rows,
  media nodes — computed when scraped, from the runtime serving the scrape
  (``ScrapeState``, one per runtime in ``runtime.components["metrics"]``).  The
  database figures come from aggregate queries in one platform session, kept
  ``CACHE_S`` seconds so several Prometheus servers scraping do not multiply
  the queries.

No label carries a tenant id or other tenant data: platform-wide aggregates
only (cardinality, and one tenant's figures never reach another's dashboard).
Label values are fixed sets (end reasons, outcomes, command names, route
templates) or operator-chosen names (``KEFU_NODE_ID``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import dramatiq
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric

log = logging.getLogger(__name__)

# What ``generate_latest`` writes (the classic text format); Litestar adds the charset to text/* itself.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4.replace("; charset=utf-8", "")
# Scrape-time database figures are reused this long (several Prometheus servers, one query).
CACHE_S = 5.0
# A scrape's database queries give up after this long (the other metrics are still served).
SCRAPE_QUERY_TIMEOUT_S = 2.0

disable_created_metrics()  # no ``*_created`` series: they double the series for nothing we use

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

# --- calls ----------------------------------------------------------------------------------

# How a call can end (``calls.end_reason``, kefu.tenants.callflow and acd); anything else is "other".
END_REASONS = frozenset({
    "caller_hangup", "agent_hangup", "supervisor_hangup", "caller_disconnected", "agent_disconnected", "abandoned",
    "callback_cancelled", "ivr_abandoned", "ivr_completed", "voicemail", "closed", "overflow", "max_wait",
    "media_failed", "media_lost", "billing_suspended", "tenant_suspended",
})

# Fine enough to read a p99 near 300 ms.
SETUP_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)

CALLS_STARTED = Counter("kefu_calls_started", "Calls created, by entry channel.", ["entry"], registry=REGISTRY)
CALLS_ENDED = Counter("kefu_calls_ended", "Calls ended, by end reason.", ["reason"], registry=REGISTRY)
CALLS_REFUSED = Counter(
    "kefu_calls_refused",
    "Web calls refused before anything of them existed, by reason (overloaded: the process was already setting up "
    "KEFU_CALL_SETUPS_IN_FLIGHT calls).",
    ["reason"], registry=REGISTRY,
)
CALL_SETUP_SECONDS = Histogram(
    "kefu_call_setup_seconds",
    "From a web call's arrival (CallFlow.start_web_call) to its offer committed and pushed to the agent it was "
    "booked to on arrival (the agent's phone rings).  Calls that wait in their queue are not observed.",
    buckets=SETUP_BUCKETS, registry=REGISTRY,
)


def end_reason(reason: str | None) -> str:
    """The ``reason`` label of ``kefu_calls_ended``: one of ``END_REASONS`` or "other"."""
    return reason if reason in END_REASONS else "other"


# --- routing (kefu.tenants.acd) -------------------------------------------------------------------

ROUTING_OFFERS = Counter(
    "kefu_routing_offers", "Offers the ACD made (one per agent rung; ring all rings several).", ["mode"], registry=REGISTRY
)
ROUTING_CONFLICTS = Counter(
    "kefu_routing_reservation_conflicts",
    "Reservations lost to another router (or a change) between reading the facts and booking: the agent or the call was taken.",
    ["lost"], registry=REGISTRY,
)
ROUTING_PASS_SECONDS = Histogram(
    "kefu_routing_pass_seconds", "One routing pass over a queue (read the facts, decide, reserve).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0), registry=REGISTRY,
)

# --- media nodes --------------------------------------------------------------------------------

MEDIA_NODES_LOST = Counter(
    "kefu_media_nodes_lost", "Media nodes this API process declared lost and whose calls it ended.", registry=REGISTRY
)
MEDIA_COMMANDS = Counter(
    "kefu_media_commands", "Commands a media node handled, by command and outcome (ok, offer_rejected, failed, unknown_command).",
    ["command", "outcome"], registry=REGISTRY,
)
MEDIA_COMMAND_SECONDS = Histogram(
    "kefu_media_command_seconds", "How long a media node took to run a command.", ["command"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0), registry=REGISTRY,
)

# --- jobs (kefu.platform.events.jobs) ---------------------------------------------------------------

JOB_DONE, JOB_FAILED, JOB_RETRIED, JOB_SKIPPED_DUPLICATE = "done", "failed", "retried", "skipped_duplicate"
JOBS = Counter(
    "kefu_jobs", "Job messages processed, by actor and outcome (done, failed, retried, skipped_duplicate).",
    ["actor", "outcome"], registry=REGISTRY,
)
JOB_SECONDS = Histogram(
    "kefu_job_seconds", "How long a job message took to process (any outcome).", ["actor"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0), registry=REGISTRY,
)


class JobMetrics(dramatiq.Middleware):
    """Counts every processed message by outcome and times it.

    Add it before ``Retries`` in the broker's middleware list: "after" hooks run
    in reverse order, so it then sees whether ``Retries`` failed the message for
    good (``failed``) or scheduled it again (``retried``).  A job whose
    idempotency key was already done says so with ``note_outcome``
    (``JOB_SKIPPED_DUPLICATE``) from the worker thread running it.
    """

    # A message is processed start to end in one worker thread.
    _local = threading.local()

    @classmethod
    def note_outcome(cls, outcome: str) -> None:
        cls._local.outcome = outcome

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        self._local.started = time.perf_counter()
        self._local.outcome = None

    def after_process_message(self, broker: dramatiq.Broker, message: Any, *, result: Any = None, exception: BaseException | None = None) -> None:
        if exception is None:
            outcome = getattr(self._local, "outcome", None) or JOB_DONE
        else:
            outcome = JOB_FAILED if getattr(message, "failed", False) else JOB_RETRIED
        JOBS.labels(message.actor_name, outcome).inc()
        started = getattr(self._local, "started", None)
        if started is not None:
            JOB_SECONDS.labels(message.actor_name).observe(time.perf_counter() - started)
            self._local.started = None


# --- HTTP -------------------------------------------------------------------------------------

HTTP_REQUESTS = Counter(
    "kefu_http_requests", "HTTP requests answered, by method, route template and status class.", ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_SECONDS = Histogram(
    "kefu_http_request_seconds", "HTTP request latency, by method and route template.", ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0), registry=REGISTRY,
)


class HttpMetricsMiddleware(ASGIMiddleware):
    """Counts and times HTTP requests by route template (never the raw path: ids stay out)."""

    scopes = ("http",)  # type: ignore[assignment]
    exclude_path_pattern = ("^/metrics$",)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await next_app(scope, receive, sending)
        finally:
            method, route = scope.get("method", "GET"), scope.get("path_template") or "unmatched"
            HTTP_REQUESTS.labels(method, route, f"{status // 100}xx").inc()
            HTTP_SECONDS.labels(method, route).observe(time.perf_counter() - started)


# --- state computed when scraped ---------------------------------------------------------------------

CALL_STATUSES = ("ivr", "queued", "ringing", "connected", "voicemail")
AGENT_STATUSES = ("available", "not_ready")
AGENT_SYSTEM_STATES = ("idle", "reserved", "ringing", "on_call", "wrap_up")
REFRESH_FAILURES = Counter(
    "kefu_metrics_refresh_failures", "Scrapes whose database figures could not be read (they are left out).", registry=REGISTRY
)

LiveCollector = Callable[[], Iterable[Metric]]


def _gauge(name: str, documentation: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=labels)


async def database_figures(runtime: Any, now: datetime) -> list[Metric]:
    """Calls in progress, waiting calls and the longest wait, logged-in agents by state, and the
    outbox backlog: aggregate queries over every tenant in one platform session."""
    from sqlalchemy import func, select

    from kefu.platform.models import OutboxEvent
    from kefu.tenants.models import Agent, Call

    callback = Call.callback_requested_at.is_not(None).label("callback")
    async with runtime.db.platform_session(reason="metrics scrape") as session:
        calls = (await session.execute(
            select(Call.status, callback, func.count(), func.min(Call.queued_at)).where(Call.status != "ended").group_by(Call.status, callback)
        )).all()
        agents = (await session.execute(
            select(Agent.status, Agent.system_state, func.count()).where(Agent.status != "offline").group_by(Agent.status, Agent.system_state)
        )).all()
        outbox_rows, outbox_oldest = (await session.execute(
            select(func.count(), func.min(OutboxEvent.created_at)).where(OutboxEvent.published_at.is_(None))
        )).one()

    def age(at: datetime | None) -> float:
        if at is None:
            return 0.0
        return max(0.0, (now - (at if at.tzinfo else at.replace(tzinfo=UTC))).total_seconds())

    by_status = dict.fromkeys(CALL_STATUSES, 0)
    waiting = {"caller": 0, "callback": 0}
    oldest: dict[str, datetime | None] = {"caller": None, "callback": None}
    for status, is_callback, count, first_queued in calls:
        by_status[status] = by_status.get(status, 0) + count
        if status == "queued":
            kind = "callback" if is_callback else "caller"
            waiting[kind] += count
            if first_queued is not None and (oldest[kind] is None or first_queued < oldest[kind]):
                oldest[kind] = first_queued
    in_progress = _gauge("kefu_calls_in_progress", "Calls not ended, by status (every tenant).", ["status"])
    for status, count in sorted(by_status.items()):
        in_progress.add_metric([status], count)
    waiting_gauge = _gauge(
        "kefu_queue_calls_waiting", "Calls waiting in a queue (every tenant): callers on the line, and callbacks keeping their place.", ["kind"]
    )
    longest = _gauge("kefu_queue_longest_wait_seconds", "How long the longest-waiting queued call has waited (0: none waiting).", ["kind"])
    for kind in ("caller", "callback"):
        waiting_gauge.add_metric([kind], waiting[kind])
        longest.add_metric([kind], age(oldest[kind]))

    by_state = {(status, state): 0 for status in AGENT_STATUSES for state in AGENT_SYSTEM_STATES}
    for status, state, count in agents:
        by_state[(status, state)] = by_state.get((status, state), 0) + count
    agents_gauge = _gauge("kefu_agents", "Logged-in agents (every tenant) by status (their choice) and system state (Kefu's).", ["status", "system_state"])
    for (status, state), count in sorted(by_state.items()):
        agents_gauge.add_metric([status, state], count)

    unpublished = _gauge("kefu_outbox_unpublished", "Outbox events committed but not yet published.")
    unpublished.add_metric([], outbox_rows)
    outbox_age = _gauge("kefu_outbox_oldest_unpublished_seconds", "Age of the oldest unpublished outbox event (0: none).")
    outbox_age.add_metric([], age(outbox_oldest))
    return [in_progress, waiting_gauge, longest, agents_gauge, unpublished, outbox_age]


def media_node_figures(media: Any) -> list[Metric]:
    """The live media nodes as this API process sees them (``RemoteMediaPlane.nodes()``), by ``node_id``
    (a node restarting under the same id is briefly two incarnations: their figures add up)."""
    nodes = media.nodes()
    live = _gauge("kefu_media_nodes_live", "Media nodes reporting and taking calls.")
    live.add_metric([], len(nodes))
    per_node: dict[str, dict[str, float]] = {}
    for node in sorted(nodes, key=lambda n: n.started_at):
        figures = per_node.setdefault(node.node_id, {"calls": 0, "legs": 0, "max_calls": 0, "cpu": 0.0})
        figures["calls"] += node.calls
        figures["legs"] += node.legs
        figures["max_calls"] = node.max_calls  # the newest incarnation's
        figures["cpu"] += node.cpu_percent
    families = [live]
    for key, name, documentation in (
        ("calls", "kefu_media_node_calls", "Calls on a media node (its last heartbeat)."),
        ("legs", "kefu_media_node_legs", "Media legs on a media node (its last heartbeat)."),
        ("max_calls", "kefu_media_node_max_calls", "Calls a media node accepts (KEFU_MEDIA_MAX_CALLS)."),
        ("cpu", "kefu_media_node_cpu_percent", "A media node's CPU use over its last heartbeat interval (100 = one core)."),
    ):
        family = _gauge(name, documentation, ["node_id"])
        for node_id, figures in sorted(per_node.items()):
            family.add_metric([node_id], figures[key])
        families.append(family)
    return families


class _Collect:
    """Hands the runtime's scrape-time families to its registry."""

    def __init__(self, state: "ScrapeState") -> None:
        self.state = state

    def collect(self) -> Iterable[Metric]:
        yield from self.state.database
        for collector in self.state.live:
            yield from collector()


class ScrapeState:
    """One runtime's scrape-time metrics: cached database figures (``with_database``) and live
    collectors (cheap, in-memory: media nodes, a node's calls) evaluated on every scrape."""

    def __init__(self, runtime: Any, *, with_database: bool, cache_s: float = CACHE_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.runtime = runtime
        self.with_database = with_database
        self.cache_s = cache_s
        self.clock = clock
        self.live: list[LiveCollector] = []
        self.database: list[Metric] = []
        self.refreshed_at: float | None = None
        self.refreshes = 0  # database reads so far (the cache's proof)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collect(self))  # type: ignore[arg-type]
        self._lock: asyncio.Lock | None = None

    def add_live(self, collector: LiveCollector) -> None:
        self.live.append(collector)

    async def refresh(self) -> None:
        if not self.with_database or self._fresh():
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # concurrent scrapes wait for one read
            if self._fresh():
                return
            now = self.runtime.components.get("acd.clock", _utcnow)()
            try:
                async with asyncio.timeout(SCRAPE_QUERY_TIMEOUT_S):
                    self.database = await database_figures(self.runtime, now)
            except Exception:
                log.warning("metrics: the database figures could not be read; left out of this scrape", exc_info=True)
                REFRESH_FAILURES.inc()
                self.database = []
            self.refreshes += 1
            self.refreshed_at = self.clock()

    def _fresh(self) -> bool:
        return self.refreshed_at is not None and self.clock() - self.refreshed_at < self.cache_s


def _utcnow() -> datetime:
    return datetime.now(UTC)


def scrape_state(runtime: Any) -> ScrapeState:
    """The runtime's scrape-time metrics (made on first use): database figures where it has
    a database (API and worker roles, not a media node), media nodes where its media plane
    is remote."""
    state = runtime.components.get("metrics")
    if state is None:
        state = ScrapeState(runtime, with_database="api" in runtime.process_roles)
        media = runtime.components.get("media")
        if media is not None and callable(getattr(media, "nodes", None)):
            state.add_live(lambda: media_node_figures(media))
        runtime.components["metrics"] = state
    return state


async def exposition(runtime: Any) -> bytes:
    """The /metrics body: the process's event metrics and the runtime's scrape-time state."""
    state = scrape_state(runtime)
    await state.refresh()
    return generate_latest(REGISTRY) + generate_latest(state.registry)
