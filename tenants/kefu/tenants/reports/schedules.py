"""Scheduled reports: a report table (the same as ``GET /api/v1/reports``) built for a
relative period on a daily, weekly or monthly cadence in the tenant's time zone, and
delivered by e-mail (SMTP, the file attached) and/or to a webhook (HTTP POST of the
file, HMAC-signed) — docs/reports.md, "Scheduled reports".

* ``report_schedules``: the definition, the signing secret (shown once, on creation)
  and ``next_due_at``, the next moment it is due (UTC).
* ``ReportScheduleScheduler`` (worker processes, every KEFU_REPORTS_SCHEDULE_INTERVAL
  seconds) moves each due schedule's ``next_due_at`` forward *only if it still holds
  the value it read* (compare-and-set) and queues ``deliver_scheduled_report`` for the
  due time it replaced: two workers ticking together queue it once.
* ``report_deliveries``: one row per schedule and due time (unique), created by the
  first attempt; later attempts continue it only at the attempt number they carry,
  so a duplicated message never sends twice.  A failed attempt that may succeed later
  (HTTP 5xx, 408, 429, timeouts, refused connections, SMTP 4xx) is recorded as
  ``retrying`` in the same transaction that queues the next attempt with a growing
  delay — a Dramatiq retry would roll the record of the failure back with the job.
"""

from __future__ import annotations

import asyncio
import calendar
import hashlib
import hmac
import ipaddress
import secrets
import smtplib
import ssl
import time as clock
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import JSON, Boolean, Index, Integer, String, UniqueConstraint, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from kefu.platform.db.base import Base, TenantScoped, utcnow
from kefu.platform.db.session import write_first
from kefu.platform.events import JobContext, enqueue, tenant_job
from kefu.platform.identity.principal import Principal
from kefu.platform.identity.services import normalize_email
from kefu.platform.models import Tenant, TenantStatus
from kefu.platform.periodic import TenantJobScheduler
from kefu.platform.problems import Problem, check_text
from kefu.platform.settings import Settings
from kefu.tenants.models import _tenant_fk
from kefu.tenants.reports import exports, query
from kefu.tenants.reports.live import tenant_zone

PERIODS = ("today", "yesterday", "last_7_days", "last_30_days", "week_to_date", "last_week", "month_to_date", "last_month")
FORMATS = ("csv", "xlsx")
CADENCES = ("daily", "weekly", "monthly")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_RECIPIENTS = 20
MAX_URL = 2000
# Delays before attempts 2, 3, … (seconds); after the last, the delivery is ``failed``.
RETRY_DELAYS_S: tuple[int, ...] = (30, 120, 600, 1800, 3600)
WEBHOOK_TIMEOUT_S = 15.0
SMTP_TIMEOUT_S = 30.0
# The embedded default (SQLite): a delivery holds the database's write lock while it sends,
# and other writers wait at most the busy timeout (10 s), so a receiver gets less time there;
# a slower one is retried like any timeout.
EMBEDDED_SEND_TIMEOUT_S = 5.0


def send_timeout(settings: Settings, production_s: float) -> float:
    return production_s if not settings.embedded else min(production_s, EMBEDDED_SEND_TIMEOUT_S)
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


class ReportSchedule(TenantScoped, Base):
    """A report delivered on a cadence.  ``secret`` signs webhook deliveries; the API shows
    it once, in the answer to the creation, and never again."""

    __tablename__ = "report_schedules"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        UniqueConstraint("tenant_id", "name"),
        Index("ix_report_schedules_due", "enabled", "next_due_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    dimension: Mapped[str] = mapped_column(String(8))
    interval: Mapped[str] = mapped_column(String(8))
    queue_id: Mapped[uuid.UUID | None]
    team_id: Mapped[uuid.UUID | None]
    agent_id: Mapped[uuid.UUID | None]
    period: Mapped[str] = mapped_column(String(20))
    format: Mapped[str] = mapped_column(String(4))
    cadence: Mapped[str] = mapped_column(String(8))
    time_of_day: Mapped[str] = mapped_column(String(5))
    weekday: Mapped[str | None] = mapped_column(String(3))
    day_of_month: Mapped[int | None] = mapped_column(Integer)
    emails: Mapped[list[str]] = mapped_column(JSON, default=list)
    webhook_url: Mapped[str | None] = mapped_column(String(MAX_URL))
    secret: Mapped[str] = mapped_column(String(100))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # The next moment the schedule is due; the scheduler moves it forward by compare-and-set.
    next_due_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReportDelivery(TenantScoped, Base):
    """One delivery of a schedule for one due time (manual runs: the moment asked), with
    its attempts.  Unique per due time: the first attempt's insert is the claim."""

    __tablename__ = "report_deliveries"
    __table_args__ = (
        UniqueConstraint("tenant_id", "schedule_id", "due_at"),
        _tenant_fk(["schedule_id"], "report_schedules"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    schedule_id: Mapped[uuid.UUID]
    due_at: Mapped[datetime]
    trigger: Mapped[str] = mapped_column(String(8))  # schedule | manual
    period_from: Mapped[str] = mapped_column(String(10))
    period_to: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(10))  # sending | retrying | ok | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    email_sent: Mapped[bool] = mapped_column(Boolean, default=False)
    webhook_sent: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


# --- periods and cadences (pure) ---------------------------------------------------


def relative_period(period: str, today: date) -> tuple[date, date]:
    """``from`` and ``to`` (local dates, both included) of ``period`` seen on local date ``today``."""
    if period == "today":
        return today, today
    if period == "yesterday":
        return today - timedelta(days=1), today - timedelta(days=1)
    if period == "last_7_days":
        return today - timedelta(days=7), today - timedelta(days=1)
    if period == "last_30_days":
        return today - timedelta(days=30), today - timedelta(days=1)
    monday = today - timedelta(days=today.weekday())
    if period == "week_to_date":
        return monday, today
    if period == "last_week":
        return monday - timedelta(days=7), monday - timedelta(days=1)
    if period == "month_to_date":
        return today.replace(day=1), today
    if period == "last_month":
        last = today.replace(day=1) - timedelta(days=1)
        return last.replace(day=1), last
    raise Problem(400, "invalid_relative_period", f"period must be one of {', '.join(PERIODS)}")


@dataclass(frozen=True)
class Cadence:
    kind: str  # daily | weekly | monthly
    at: time
    weekday: int | None = None  # 0 = Monday
    day_of_month: int | None = None  # 1–31; past the month's end: its last day

    def runs_on(self, day: date) -> bool:
        if self.kind == "daily":
            return True
        if self.kind == "weekly":
            return day.weekday() == self.weekday
        assert self.day_of_month is not None
        return day.day == min(self.day_of_month, calendar.monthrange(day.year, day.month)[1])

    def next_due(self, zone: ZoneInfo, after: datetime) -> datetime:
        """The first due moment strictly after ``after`` (UTC).  A local time that a DST change
        skips is read with the offset before the change (02:30 → 03:30); one that occurs twice
        is the first of the two."""
        day = after.astimezone(zone).date() - timedelta(days=1)
        for _ in range(400):
            if self.runs_on(day):
                moment = datetime.combine(day, self.at, tzinfo=zone).astimezone(UTC)
                if moment > after:
                    return moment
            day += timedelta(days=1)
        raise AssertionError("every cadence runs within 400 days")


def parse_cadence(kind: str, at: str, weekday: str | None, day_of_month: int | None) -> Cadence:
    if kind not in CADENCES:
        raise Problem(400, "invalid_cadence", f"cadence must be one of {', '.join(CADENCES)}")
    try:
        hh, mm = at.split(":")
        moment = time(int(hh), int(mm))
        if len(hh) != 2 or len(mm) != 2:
            raise ValueError
    except ValueError:
        raise Problem(400, "invalid_time", "time must be HH:MM (24-hour, the tenant's time zone)") from None
    if (kind == "weekly") != (weekday is not None) or (weekday is not None and weekday not in WEEKDAYS):
        raise Problem(400, "invalid_weekday", f"a weekly schedule needs weekday ({', '.join(WEEKDAYS)}); others take none")
    if (kind == "monthly") != (day_of_month is not None) or (day_of_month is not None and not 1 <= day_of_month <= 31):
        raise Problem(400, "invalid_day_of_month", "a monthly schedule needs day_of_month 1 to 31; others take none")
    return Cadence(kind, moment, WEEKDAYS.index(weekday) if weekday else None, day_of_month)


def cadence_of(schedule: ReportSchedule) -> Cadence:
    return parse_cadence(schedule.cadence, schedule.time_of_day, schedule.weekday, schedule.day_of_month)


# --- destinations -----------------------------------------------------------------


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    implicit_tls: bool
    starttls: bool
    user: str | None
    password: str | None


def smtp_server(url: str) -> SmtpServer:
    """``smtp://[user:password@]host[:port][?starttls=true]`` or ``smtps://…`` (TLS from the start)."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("KEFU_SMTP_URL must be smtp://[user:password@]host[:port][?starttls=true] or smtps://…")
    flags = parse_qs(parts.query)
    starttls = flags.get("starttls", ["false"])[-1].lower() in ("1", "true", "yes")
    return SmtpServer(
        host=parts.hostname, port=parts.port or (465 if parts.scheme == "smtps" else 25), implicit_tls=parts.scheme == "smtps",
        starttls=starttls, user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def _private(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return not ip.is_global


def check_webhook_url(url: str, *, allow_loopback: bool) -> str:
    """https only, no credentials, not to a private or loopback address; with
    KEFU_REPORTS_WEBHOOK_ALLOW_LOOPBACK (development, tests) also http:// and such addresses."""
    url = url.strip()
    parts = urlsplit(url)
    bad = Problem(400, "invalid_webhook_url", "webhook_url must be an https:// URL of a public host, without user or password")
    if len(url) > MAX_URL or any(ord(c) <= 32 or ord(c) == 127 for c in url) or parts.scheme not in ("https", "http") or not parts.hostname or parts.username or parts.password:
        raise bad
    try:
        parts.port  # noqa: B018 — a port that is not a number raises here
    except ValueError:
        raise bad from None
    try:
        literal: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(parts.hostname)
    except ValueError:
        literal = None
    local = parts.hostname == "localhost" or (literal is not None and not literal.is_global)
    if not allow_loopback and (parts.scheme != "https" or local):
        raise bad
    return url


async def _check_resolved(host: str, port: int, *, allow_loopback: bool) -> None:
    """The host's addresses, at delivery time: a public name that resolves to a private
    address (the tenant's DNS) is refused as well."""
    if allow_loopback:
        return
    infos = await asyncio.get_running_loop().getaddrinfo(host, port)
    if any(_private(str(info[4][0])) for info in infos):
        raise DeliveryError(f"{host} resolves to a private address", retryable=False)


class DeliveryError(Exception):
    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``v1=`` + hex HMAC-SHA256, keyed with the schedule's secret, of ``<timestamp>.<body>``."""
    return "v1=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


async def post_webhook(settings: Settings, schedule: ReportSchedule, delivery: ReportDelivery, filename: str, body: bytes) -> None:
    url = schedule.webhook_url
    assert url is not None
    parts = urlsplit(url)
    await _check_resolved(parts.hostname or "", parts.port or 443, allow_loopback=settings.reports_webhook_allow_loopback)
    timestamp = str(int(clock.time()))
    headers = {
        "Content-Type": MEDIA_TYPES[schedule.format],
        "Content-Disposition": f'attachment; filename="{filename}"',
        "User-Agent": "Kefu-Reports/1",
        "X-Kefu-Schedule-Id": str(schedule.id),
        "X-Kefu-Delivery-Id": str(delivery.id),
        "X-Kefu-Due-At": delivery.due_at.isoformat(),
        "X-Kefu-Period": f"{delivery.period_from}/{delivery.period_to}",
        "X-Kefu-Timestamp": timestamp,
        "X-Kefu-Signature": signature(schedule.secret, timestamp, body),
    }
    try:
        async with httpx.AsyncClient(timeout=send_timeout(settings, WEBHOOK_TIMEOUT_S), follow_redirects=False) as client:
            response = await client.post(url, content=body, headers=headers)
    except httpx.TimeoutException:
        raise DeliveryError("webhook: timed out", retryable=True) from None
    except httpx.HTTPError as exc:
        raise DeliveryError(f"webhook: {type(exc).__name__}: {exc}"[:300], retryable=True) from None
    if 200 <= response.status_code < 300:
        return
    retryable = response.status_code >= 500 or response.status_code in (408, 429)
    raise DeliveryError(f"webhook: HTTP {response.status_code}", retryable=retryable)


def _send_mail(server: SmtpServer, message: EmailMessage, timeout_s: float) -> None:
    context = ssl.create_default_context()
    smtp: smtplib.SMTP = (
        smtplib.SMTP_SSL(server.host, server.port, timeout=timeout_s, context=context) if server.implicit_tls
        else smtplib.SMTP(server.host, server.port, timeout=timeout_s)
    )
    with smtp:
        if server.starttls:
            smtp.starttls(context=context)
        if server.user:
            smtp.login(server.user, server.password or "")
        smtp.send_message(message)


async def send_email(settings: Settings, schedule: ReportSchedule, delivery: ReportDelivery, filename: str, body: bytes, zone: str) -> None:
    if not settings.smtp_url or not settings.smtp_from:
        raise DeliveryError("smtp_not_configured: KEFU_SMTP_URL is not set", retryable=False)
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = ", ".join(schedule.emails)
    message["Subject"] = f"Kefu report: {schedule.name} ({delivery.period_from} – {delivery.period_to})"
    message["X-Kefu-Schedule-Id"] = str(schedule.id)
    message.set_content(
        f"The report \"{schedule.name}\" for {delivery.period_from} to {delivery.period_to} ({zone}) is attached.\n"
    )
    maintype, subtype = MEDIA_TYPES[schedule.format].split(";")[0].split("/")
    message.add_attachment(body, maintype=maintype, subtype=subtype, filename=filename)
    try:
        await asyncio.to_thread(_send_mail, smtp_server(settings.smtp_url), message, send_timeout(settings, SMTP_TIMEOUT_S))
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        raise DeliveryError(f"e-mail: recipients refused ({', '.join(map(str, codes))})", retryable=all(400 <= c < 500 for c in codes)) from None
    except smtplib.SMTPResponseException as exc:
        raise DeliveryError(f"e-mail: SMTP {exc.smtp_code}", retryable=exc.smtp_code < 500) from None
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryError(f"e-mail: {type(exc).__name__}: {exc}"[:300], retryable=True) from None


# --- building and delivering --------------------------------------------------------


def schedule_principal(tenant_id: uuid.UUID, schedule_id: uuid.UUID) -> Principal:
    """Who builds a schedule's report: the whole tenant, as a tenant admin (who defined it) sees it."""
    return Principal("integration", f"report-schedule:{schedule_id}", tenant_id, frozenset(), frozenset({"reports.read"}), None,
                     frozenset({"reports.read"}))


async def build(session: AsyncSession, *, tenant_id: uuid.UUID, schedule: ReportSchedule, first: date, last: date) -> tuple[dict[str, Any], str, bytes]:
    """The report table, its file name and its file — what ``GET /api/v1/reports?format=…`` answers."""
    result = await query.report(
        session, tenant_id=tenant_id, principal=schedule_principal(tenant_id, schedule.id), dimension=schedule.dimension,
        interval=schedule.interval, first=first.isoformat(), last=last.isoformat(),
        filters=query.Filters(queue_id=schedule.queue_id, team_id=schedule.team_id, agent_id=schedule.agent_id),
    )
    name = f"report-{schedule.dimension}-{schedule.interval}-{result['from']}-{result['to']}.{schedule.format}"
    return result, name, exports.to_csv(result) if schedule.format == "csv" else exports.to_xlsx(result)


DELIVERY_IDS = uuid.UUID("6f0b8a52-3c1e-4d7a-9a41-2b8f5e0c7d13")


def delivery_id(tenant_id: uuid.UUID, schedule_id: uuid.UUID, due: datetime) -> uuid.UUID:
    """The delivery's id, derived from what it delivers: a worker that dies after the
    receiver got the report but before its transaction committed leaves no row, and the
    message delivered again sends the same ``X-Kefu-Delivery-Id`` for the receiver to drop."""
    return uuid.uuid5(DELIVERY_IDS, f"{tenant_id}:{schedule_id}:{due.astimezone(UTC).isoformat()}")


def _job_key(kw: dict[str, Any]) -> str:
    return f"report-delivery:{kw['schedule_id']}:{kw['due_at']}:{kw['attempt']}"


@tenant_job(name="kefu.tenants.reports.deliver_scheduled_report", key=_job_key, max_retries=3)
async def deliver_scheduled_report(
    job: JobContext, session: AsyncSession, *, tenant_id: uuid.UUID, schedule_id: str, due_at: str, trigger: str, attempt: int = 1,
) -> None:
    """One attempt of one delivery (see the module's doc)."""
    await write_first(session)
    schedule = await session.scalar(select(ReportSchedule).where(ReportSchedule.tenant_id == tenant_id, ReportSchedule.id == uuid.UUID(schedule_id)))
    if schedule is None:
        return
    due = datetime.fromisoformat(due_at)
    zone = await tenant_zone(session, tenant_id=tenant_id)
    first, last = relative_period(schedule.period, due.astimezone(zone).date())
    delivery = await session.scalar(
        select(ReportDelivery).where(ReportDelivery.tenant_id == tenant_id, ReportDelivery.schedule_id == schedule.id, ReportDelivery.due_at == due)
        .with_for_update()
    )
    if attempt == 1:
        if delivery is not None:
            return  # another message of this due time got here first
        delivery = ReportDelivery(id=delivery_id(tenant_id, schedule.id, due), tenant_id=tenant_id, schedule_id=schedule.id, due_at=due, trigger=trigger, period_from=first.isoformat(),
                                  period_to=last.isoformat(), status="sending", attempts=0, email_sent=False, webhook_sent=False)
        try:
            async with session.begin_nested():
                session.add(delivery)
        except IntegrityError:
            return  # PostgreSQL: a concurrent duplicate inserted it and committed
    elif delivery is None or delivery.status != "retrying" or delivery.attempts != attempt - 1:
        return  # a duplicate of an attempt already made
    delivery.attempts = attempt
    try:
        _, filename, body = await build(session, tenant_id=tenant_id, schedule=schedule, first=first, last=last)
    except Problem as exc:  # e.g. a queue named as a filter was deleted since
        delivery.status, delivery.error, delivery.finished_at = "failed", f"{exc.code}: {exc.detail}"[:1000], utcnow()
        return
    errors: list[str] = []
    retryable = True
    if schedule.emails and not delivery.email_sent:
        try:
            await send_email(job.settings, schedule, delivery, filename, body, zone.key)
            delivery.email_sent = True
        except DeliveryError as exc:
            errors.append(str(exc))
            retryable = retryable and exc.retryable
    if schedule.webhook_url and not delivery.webhook_sent:
        try:
            await post_webhook(job.settings, schedule, delivery, filename, body)
            delivery.webhook_sent = True
        except DeliveryError as exc:
            errors.append(str(exc))
            retryable = retryable and exc.retryable
    delivery.error = "; ".join(errors)[:1000] or None
    if not errors:
        delivery.status, delivery.finished_at = "ok", utcnow()
    elif retryable and attempt <= len(RETRY_DELAYS_S):
        delivery.status = "retrying"
        await enqueue(session, deliver_scheduled_report, tenant_id=tenant_id, schedule_id=schedule_id, due_at=due_at, trigger=trigger,
                      attempt=attempt + 1, delay_ms=RETRY_DELAYS_S[attempt - 1] * 1000)
    else:
        delivery.status, delivery.finished_at = "failed", utcnow()


async def queue_due(session: AsyncSession, *, tenant_id: uuid.UUID, now: datetime) -> int:
    """Queue a delivery for each due schedule of the tenant whose ``next_due_at`` this call
    moves forward (compare-and-set: a concurrent scheduler that read the same value moves
    nothing and queues nothing).  Missed due times (no worker ran) give one delivery, for
    the first of them; the next due time is then the first after ``now``."""
    zone = await tenant_zone(session, tenant_id=tenant_id)
    due = list(await session.scalars(
        select(ReportSchedule).where(ReportSchedule.tenant_id == tenant_id, ReportSchedule.enabled.is_(True), ReportSchedule.next_due_at <= now)
        .order_by(ReportSchedule.next_due_at, ReportSchedule.id)
    ))
    queued = 0
    for schedule in due:
        was = schedule.next_due_at
        moved = await session.execute(
            update(ReportSchedule)
            .where(ReportSchedule.tenant_id == tenant_id, ReportSchedule.id == schedule.id, ReportSchedule.next_due_at == was)
            .values(next_due_at=cadence_of(schedule).next_due(zone, now)),
            execution_options={"synchronize_session": False},
        )
        if moved.rowcount == 1:  # type: ignore[attr-defined]
            await enqueue(session, deliver_scheduled_report, tenant_id=tenant_id, schedule_id=str(schedule.id),
                          due_at=was.astimezone(UTC).isoformat(), trigger="schedule", attempt=1)
            queued += 1
    return queued


class ReportScheduleScheduler(TenantJobScheduler):
    """Every KEFU_REPORTS_SCHEDULE_INTERVAL seconds (worker processes): the due schedules of
    every tenant that is not closed get their delivery queued (``queue_due``)."""

    name = "report schedule scheduler"
    reason = "scheduled report deliveries"

    async def tenants(self, session: AsyncSession) -> list[uuid.UUID]:
        await write_first(session)  # it reads, then moves next_due_at (SQLite: see write_first)
        return list(await session.scalars(
            select(ReportSchedule.tenant_id).distinct().join(Tenant, Tenant.id == ReportSchedule.tenant_id)
            .where(ReportSchedule.enabled.is_(True), Tenant.status != TenantStatus.CLOSED)
        ))

    async def enqueue(self, session: AsyncSession, tenant_id: uuid.UUID, *, tick: str, now: datetime) -> None:
        await queue_due(session, tenant_id=tenant_id, now=now)


def new_signing_secret() -> str:
    return "krs_" + secrets.token_urlsafe(32)


def check_definition(
    settings: Settings, *, name: str, period: str, format: str, cadence: str, at: str, weekday: str | None, day_of_month: int | None,
    emails: list[str], webhook_url: str | None,
) -> tuple[str, Cadence, list[str], str | None]:
    """Everything but the report's own parameters (checked by building it): name, cadence,
    destinations (problem details with stable codes)."""
    name = check_text(name, code="invalid_name", what="name")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):  # it becomes an e-mail subject
        raise Problem(400, "invalid_name", "name must not contain control characters (line breaks included)")
    if period not in PERIODS:
        raise Problem(400, "invalid_relative_period", f"period must be one of {', '.join(PERIODS)}")
    if format not in FORMATS:
        raise Problem(400, "invalid_format", "format must be csv or xlsx")
    parsed = parse_cadence(cadence, at, weekday, day_of_month)
    if len(emails) > MAX_RECIPIENTS:
        raise Problem(400, "too_many_recipients", f"at most {MAX_RECIPIENTS} e-mail addresses")
    addresses = sorted({normalize_email(e) for e in emails})
    url = check_webhook_url(webhook_url, allow_loopback=settings.reports_webhook_allow_loopback) if webhook_url is not None else None
    if not addresses and url is None:
        raise Problem(400, "no_destination", "give e-mail addresses, a webhook_url or both")
    if addresses and not (settings.smtp_url and settings.smtp_from):
        raise Problem(409, "smtp_not_configured", "this installation sends no e-mail (KEFU_SMTP_URL is not set); use a webhook")
    return name, parsed, addresses, url
