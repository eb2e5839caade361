"""Scheduled reports: the schedules API (validation, secrets shown once, audit, another
tenant's id), due times in the tenant's time zone, and deliveries run by the in-process
job worker — e-mailed through a real SMTP server (aiosmtpd, in this process) and posted
to a real HTTP server (the standard library's, in a thread) that verifies the signature
as docs/reports.md tells a receiver to."""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import io
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller
from openpyxl import load_workbook
from reports_support import Tenant, add_agent, add_queue, ev, log, new_call, run_upkeep, set_time_zone
from sqlalchemy import select

from kefu.platform.events import enqueue
from kefu.platform.models import AuditEntry
from kefu.platform.settings import Settings, SettingsError, load_settings
from kefu.tenants.reports import schedules
from kefu.tenants.reports.schedules import Cadence, ReportScheduleScheduler, check_webhook_url, relative_period

BOTH = pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
SQLITE = pytest.mark.parametrize("backend", ["sqlite"])
PATH = "/api/v1/reports/schedules"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Inbox:
    """aiosmtpd's handler: every message the SMTP server accepts."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    handler.port = controller.port  # type: ignore[attr-defined]
    yield handler
    controller.stop()


class Receiver:
    """A webhook receiver: answers with the planned statuses in turn (then 200) and keeps
    every request (headers, body)."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/kefu-reports"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    thread = threading.Thread(target=r.server.serve_forever, daemon=True)
    thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


@pytest.fixture
def smtp_configured() -> bool:
    return True


@pytest.fixture
def settings(make_settings: Any, backend: str, inbox: Inbox, smtp_configured: bool) -> Settings:
    env = {"KEFU_REPORTS_WEBHOOK_ALLOW_LOOPBACK": "1"}
    if smtp_configured:
        env |= {"KEFU_SMTP_URL": f"smtp://127.0.0.1:{inbox.port}", "KEFU_SMTP_FROM": "reports@kefu.test"}  # type: ignore[attr-defined]
    return make_settings(backend, **env)


def verify(secret: str, headers: dict[str, str], body: bytes, *, tolerance_s: int = 300) -> bool:
    """What docs/reports.md tells a receiver to do."""
    timestamp = headers["x-kefu-timestamp"]
    expected = "v1=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers["x-kefu-signature"]) and abs(time.time() - int(timestamp)) <= tolerance_s


async def answered(t: Tenant, queue: uuid.UUID, agent: uuid.UUID, start: datetime, talk_s: int) -> None:
    call = await new_call(t, started_at=start, caller_ref="+8613800000001")
    answer = datetime.fromtimestamp(start.timestamp() + 5, UTC)
    await log(t, call, ev("queued", start, queue_id=queue), ev("answered", answer, agent_id=agent),
              ev("ended", datetime.fromtimestamp(answer.timestamp() + talk_s, UTC), reason="caller_hangup"))


def body(**changes: Any) -> dict[str, Any]:
    return {"name": "Daily queues", "dimension": "queue", "interval": "day", "period": "yesterday", "format": "csv",
            "cadence": "daily", "time": "08:00", "emails": ["Boss@acme.test", "ops@acme.test"], **changes}


def sheet_values(xlsx: bytes) -> list[list[Any]]:
    sheet = load_workbook(io.BytesIO(xlsx)).active
    return [[v for v in row if v is not None] for row in sheet.iter_rows(values_only=True)]


async def drain(t: Tenant) -> None:
    await t.runtime.components["jobs"].drain()


async def deliveries(t: Tenant, schedule_id: str) -> list[dict[str, Any]]:
    response = await t.get(f"{PATH}/{schedule_id}/deliveries")
    assert response.status_code == 200, response.text
    return response.json()["deliveries"]


# --- due times and periods (pure) -----------------------------------------------------


def test_due_times_follow_the_cadence_in_the_tenants_time_zone() -> None:
    shanghai, new_york = ZoneInfo("Asia/Shanghai"), ZoneInfo("America/New_York")
    daily = Cadence("daily", datetime.strptime("08:00", "%H:%M").time())
    # 2026-12-01 17:00 in Shanghai: today's 08:00 has passed, tomorrow's is next.
    assert daily.next_due(shanghai, datetime(2026, 12, 1, 9, 0, tzinfo=UTC)) == datetime(2026, 12, 2, 0, 0, tzinfo=UTC)
    # Strictly after: a schedule due right now is next due tomorrow.
    assert daily.next_due(shanghai, datetime(2026, 12, 2, 0, 0, tzinfo=UTC)) == datetime(2026, 12, 3, 0, 0, tzinfo=UTC)
    weekly = schedules.parse_cadence("weekly", "09:30", "mon", None)
    # Tuesday 2026-12-01 → Monday 2026-12-07 09:30 in Berlin (UTC+1).
    assert weekly.next_due(ZoneInfo("Europe/Berlin"), datetime(2026, 12, 1, 9, 0, tzinfo=UTC)) == datetime(2026, 12, 7, 8, 30, tzinfo=UTC)
    # DST starts on 2026-03-08 in New York: 02:30 does not exist that day and runs at 03:30 EDT.
    early = schedules.parse_cadence("daily", "02:30", None, None)
    assert early.next_due(new_york, datetime(2026, 3, 7, 12, 0, tzinfo=UTC)) == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
    assert early.next_due(new_york, datetime(2026, 3, 8, 7, 30, tzinfo=UTC)) == datetime(2026, 3, 9, 6, 30, tzinfo=UTC)
    # DST ends on 2026-11-01: 01:30 happens twice; the schedule runs once, at the first (EDT).
    night = schedules.parse_cadence("daily", "01:30", None, None)
    assert night.next_due(new_york, datetime(2026, 10, 31, 12, 0, tzinfo=UTC)) == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
    assert night.next_due(new_york, datetime(2026, 11, 1, 5, 30, tzinfo=UTC)) == datetime(2026, 11, 2, 6, 30, tzinfo=UTC)
    # Day 31 runs on the last day of shorter months.
    monthly = schedules.parse_cadence("monthly", "06:00", None, 31)
    utc = ZoneInfo("UTC")
    assert monthly.next_due(utc, datetime(2026, 4, 1, tzinfo=UTC)) == datetime(2026, 4, 30, 6, 0, tzinfo=UTC)
    assert monthly.next_due(utc, datetime(2026, 4, 30, 7, 0, tzinfo=UTC)) == datetime(2026, 5, 31, 6, 0, tzinfo=UTC)
    assert monthly.next_due(utc, datetime(2026, 2, 1, tzinfo=UTC)) == datetime(2026, 2, 28, 6, 0, tzinfo=UTC)
    assert monthly.next_due(utc, datetime(2028, 2, 1, tzinfo=UTC)) == datetime(2028, 2, 29, 6, 0, tzinfo=UTC)


def test_relative_periods_seen_on_a_local_date() -> None:
    tuesday = date(2026, 12, 1)
    expected = {
        "today": ("2026-12-01", "2026-12-01"),
        "yesterday": ("2026-11-30", "2026-11-30"),
        "last_7_days": ("2026-11-24", "2026-11-30"),
        "last_30_days": ("2026-11-01", "2026-11-30"),
        "week_to_date": ("2026-11-30", "2026-12-01"),
        "last_week": ("2026-11-23", "2026-11-29"),
        "month_to_date": ("2026-12-01", "2026-12-01"),
        "last_month": ("2026-11-01", "2026-11-30"),
    }
    assert {p: tuple(d.isoformat() for d in relative_period(p, tuesday)) for p in schedules.PERIODS} == expected
    assert relative_period("last_month", date(2026, 3, 1)) == (date(2026, 2, 1), date(2026, 2, 28))


def test_webhook_urls_must_be_https_to_a_public_host_unless_loopback_is_allowed() -> None:
    assert check_webhook_url("https://hooks.example.com/kefu", allow_loopback=False) == "https://hooks.example.com/kefu"
    for url in ("http://hooks.example.com/kefu", "https://127.0.0.1/x", "https://localhost/x", "https://10.1.2.3/x",
                "https://[::1]/x", "https://user:pw@hooks.example.com/x", "ftp://hooks.example.com/x", "https://hooks.example.com:port/x"):
        with pytest.raises(schedules.Problem) as raised:
            check_webhook_url(url, allow_loopback=False)
        assert raised.value.code == "invalid_webhook_url", url
    assert check_webhook_url("http://127.0.0.1:9/x", allow_loopback=True) == "http://127.0.0.1:9/x"


# --- the API ------------------------------------------------------------------------


@BOTH
async def test_schedules_crud_shows_the_secret_once_and_is_audited(acme: Tenant, globex: Tenant, receiver: Receiver) -> None:
    await set_time_zone(acme, "Asia/Shanghai")
    response = await acme.client.post(PATH, json=body(webhook_url=receiver.url), headers=acme.headers())
    assert response.status_code == 201, response.text
    created = response.json()
    schedule_id = created["id"]
    assert created["signing_secret"].startswith("krs_")
    assert created["emails"] == ["boss@acme.test", "ops@acme.test"]
    # Now is 2026-12-01 17:00 in Shanghai (time-machine): next 08:00 is tomorrow's.
    assert (created["time_zone"], created["next_due_at"]) == ("Asia/Shanghai", "2026-12-02T08:00:00+08:00")
    shown = (await acme.get(f"{PATH}/{schedule_id}")).json()
    assert "signing_secret" not in shown and shown == {k: v for k, v in created.items() if k != "signing_secret"}
    listed = (await acme.get(PATH)).json()["schedules"]
    assert [s["id"] for s in listed] == [schedule_id] and "signing_secret" not in listed[0]

    # Reading needs reports.manage too (addresses and URLs): a report viewer or supervisor gets 403.
    for role in ("report_viewer", "supervisor"):
        assert (await acme.get(PATH, role)).status_code == 403
        assert (await acme.get(f"{PATH}/{schedule_id}", role)).status_code == 403

    weekly = body(name="Weekly", cadence="weekly", weekday="mon", time="09:00", period="last_week", format="xlsx", emails=[],
                  webhook_url=receiver.url)
    response = await acme.client.put(f"{PATH}/{schedule_id}", json=weekly, headers=acme.headers())
    assert response.status_code == 200, response.text
    assert (response.json()["name"], response.json()["next_due_at"], response.json()["emails"]) == ("Weekly", "2026-12-07T09:00:00+08:00", [])

    # Another tenant's id is not found, whatever the method.
    for method, path in (("GET", ""), ("PUT", ""), ("DELETE", ""), ("POST", "/run"), ("GET", "/deliveries")):
        response = await globex.client.request(method, f"{PATH}/{schedule_id}{path}", headers=globex.headers(),
                                               json=weekly if method == "PUT" else None)
        assert (response.status_code, response.json()["code"]) == (404, "not_found"), (method, path)

    assert (await acme.client.delete(f"{PATH}/{schedule_id}", headers=acme.headers())).status_code == 204
    assert (await acme.get(f"{PATH}/{schedule_id}")).status_code == 404
    async with acme.runtime.db.tenant_session(tenant_id=acme.id) as session:
        actions = [(e.action, e.target) for e in await session.scalars(
            select(AuditEntry).where(AuditEntry.tenant_id == acme.id, AuditEntry.action.like("reports.schedule%")).order_by(AuditEntry.id)
        )]
    target = f"report_schedule:{schedule_id}"
    assert actions == [("reports.schedule_created", target), ("reports.schedule_updated", target), ("reports.schedule_deleted", target)]


@SQLITE
async def test_bad_schedules_answer_problem_details_with_stable_codes_and_store_nothing(acme: Tenant, globex: Tenant, receiver: Receiver) -> None:
    theirs = await add_queue(globex, "Theirs")
    mine = await add_queue(acme, "Mine")
    cases: list[tuple[dict[str, Any], int, str]] = [
        (body(name=" "), 400, "invalid_name"),
        (body(name="Daily\r\nBcc: mallory@evil.test"), 400, "invalid_name"),
        (body(period="last_year"), 400, "invalid_relative_period"),
        (body(format="json"), 400, "invalid_format"),
        (body(cadence="hourly"), 400, "invalid_cadence"),
        (body(time="8:00"), 400, "invalid_time"),
        (body(time="24:00"), 400, "invalid_time"),
        (body(cadence="weekly"), 400, "invalid_weekday"),
        (body(cadence="weekly", weekday="monday"), 400, "invalid_weekday"),
        (body(weekday="mon"), 400, "invalid_weekday"),
        (body(cadence="monthly", day_of_month=32), 400, "invalid_day_of_month"),
        (body(cadence="monthly"), 400, "invalid_day_of_month"),
        (body(day_of_month=1), 400, "invalid_day_of_month"),
        (body(emails=[]), 400, "no_destination"),
        (body(emails=["not-an-address"]), 400, "invalid_email"),
        (body(emails=[f"u{i}@acme.test" for i in range(21)]), 400, "too_many_recipients"),
        (body(webhook_url="ftp://hooks.example.com/x"), 400, "invalid_webhook_url"),
        (body(webhook_url="https://user:pw@hooks.example.com/x"), 400, "invalid_webhook_url"),
        (body(webhook_url="https://hooks.example.com/a b"), 400, "invalid_webhook_url"),
        (body(dimension="galaxy"), 400, "invalid_dimension"),
        (body(interval="minute"), 400, "invalid_interval"),
        (body(queue_id=str(theirs)), 404, "not_found"),
        (body(dimension="agent", queue_id=str(mine)), 400, "invalid_filter"),
    ]
    for request, status, code in cases:
        response = await acme.client.post(PATH, json=request, headers=acme.headers())
        assert (response.status_code, response.json().get("code")) == (status, code), (request, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    assert (await acme.get(PATH)).json()["schedules"] == []
    assert (await acme.client.post(PATH, json=body(), headers=acme.headers())).status_code == 201
    response = await acme.client.post(PATH, json=body(), headers=acme.headers())
    assert (response.status_code, response.json()["code"]) == (409, "schedule_name_taken")
    assert (await acme.client.post(PATH, json=body(name="x"), headers=acme.headers("report_viewer"))).status_code == 403


@SQLITE
@pytest.mark.parametrize("smtp_configured", [False])
async def test_without_smtp_e_mail_schedules_are_refused(acme: Tenant, receiver: Receiver) -> None:
    response = await acme.client.post(PATH, json=body(), headers=acme.headers())
    assert (response.status_code, response.json()["code"]) == (409, "smtp_not_configured")
    response = await acme.client.post(PATH, json=body(emails=[], webhook_url=receiver.url), headers=acme.headers())
    assert response.status_code == 201, response.text


# --- deliveries ---------------------------------------------------------------------


@BOTH
async def test_a_due_schedule_is_e_mailed_and_posted_once_with_the_apis_csv(acme: Tenant, globex: Tenant, inbox: Inbox, receiver: Receiver) -> None:
    await set_time_zone(acme, "Asia/Shanghai")
    queue, agent = await add_queue(acme, "Support"), await add_agent(acme, "Ann")
    # 2026-12-01 10:00 and 10:30 in Shanghai.
    await answered(acme, queue, agent, datetime(2026, 12, 1, 2, 0, tzinfo=UTC), talk_s=60)
    await answered(acme, queue, agent, datetime(2026, 12, 1, 2, 30, tzinfo=UTC), talk_s=120)
    await run_upkeep(acme, datetime(2026, 12, 1, 12, 0, tzinfo=UTC))
    created = (await acme.client.post(PATH, json=body(webhook_url=receiver.url), headers=acme.headers())).json()
    api_csv = (await acme.get("/api/v1/reports", dimension="queue", interval="day", format="csv", **{"from": "2026-12-01", "to": "2026-12-01"})).content

    [scheduler] = [s for s in acme.runtime.services if isinstance(s, ReportScheduleScheduler)]
    # Due at 2026-12-02 08:00 Shanghai = 00:00 UTC; not before.
    assert await scheduler.tick(datetime(2026, 12, 1, 23, 59, tzinfo=UTC)) == 1
    await drain(acme)
    assert inbox.envelopes == [] and receiver.requests == []
    tick = datetime(2026, 12, 2, 0, 0, 40, tzinfo=UTC)
    await scheduler.tick(tick)
    await drain(acme)

    [envelope] = inbox.envelopes
    assert (envelope.mail_from, sorted(envelope.rcpt_tos)) == ("reports@kefu.test", ["boss@acme.test", "ops@acme.test"])
    message = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert message["Subject"] == "Kefu report: Daily queues (2026-12-01 – 2026-12-01)"
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "report-queue-day-2026-12-01-2026-12-01.csv"
    assert attachment.get_content_type() == "text/csv"
    assert attachment.get_payload(decode=True) == api_csv
    assert b"Support" in api_csv and api_csv.splitlines()[1].split(b",")[3:5] == [b"2", b"2"]  # total calls, answered

    [(headers, posted)] = receiver.requests
    assert posted == api_csv
    assert verify(created["signing_secret"], headers, posted)
    assert not verify(created["signing_secret"], headers, posted + b" ")
    assert (headers["x-kefu-schedule-id"], headers["x-kefu-period"], headers["x-kefu-due-at"]) == (
        created["id"], "2026-12-01/2026-12-01", "2026-12-02T00:00:00+00:00")
    assert headers["content-type"] == "text/csv; charset=utf-8"

    # The same due time again: the same tick, another worker's scheduler, a duplicated message.
    await scheduler.tick(tick)
    await ReportScheduleScheduler(acme.runtime, interval_s=60).tick(tick)
    async with acme.runtime.db.tenant_session(tenant_id=acme.id) as session:
        await enqueue(session, schedules.deliver_scheduled_report, tenant_id=acme.id, schedule_id=created["id"],
                      due_at="2026-12-02T00:00:00+00:00", trigger="schedule", attempt=1)
    await drain(acme)
    assert (len(inbox.envelopes), len(receiver.requests)) == (1, 1)
    [delivery] = await deliveries(acme, created["id"])
    assert {k: delivery[k] for k in ("due_at", "trigger", "period_from", "period_to", "status", "attempts", "error")} == {
        "due_at": "2026-12-02T00:00:00+00:00", "trigger": "schedule", "period_from": "2026-12-01", "period_to": "2026-12-01",
        "status": "ok", "attempts": 1, "error": None,
    }
    assert (await acme.get(f"{PATH}/{created['id']}")).json()["next_due_at"] == "2026-12-03T08:00:00+08:00"
    assert inbox.envelopes[0].rcpt_tos != [] and all("globex" not in r for r in inbox.envelopes[0].rcpt_tos)


@BOTH
async def test_a_failing_webhook_is_retried_and_one_delivery_recorded(
    acme: Tenant, inbox: Inbox, receiver: Receiver, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(schedules, "RETRY_DELAYS_S", (0, 0, 0))
    request = body(emails=["ops@acme.test"], webhook_url=receiver.url, format="xlsx")
    created = (await acme.client.post(PATH, json=request, headers=acme.headers())).json()
    receiver.statuses = [500]
    response = await acme.client.post(f"{PATH}/{created['id']}/run", headers=acme.headers())
    assert response.status_code == 202 and response.json()["status"] == "queued"
    await drain(acme)
    first, second = receiver.requests
    # The same workbook twice (an XLSX file also holds the moment it was written, so compare the cells).
    assert sheet_values(first[1]) == sheet_values(second[1]) and sheet_values(first[1])[0][0] == "Time zone: UTC"
    assert first[0]["x-kefu-delivery-id"] == second[0]["x-kefu-delivery-id"]
    assert verify(created["signing_secret"], second[0], second[1])
    # The e-mail went out on the first attempt; the retry posts again and does not e-mail again.
    [envelope] = inbox.envelopes
    [attachment] = list(email.message_from_bytes(envelope.content, policy=email.policy.default).iter_attachments())
    assert sheet_values(attachment.get_payload(decode=True)) == sheet_values(first[1])
    assert attachment.get_content_type() == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    [delivery] = await deliveries(acme, created["id"])
    # Run now on 2026-12-01 (UTC): yesterday.
    assert (delivery["trigger"], delivery["status"], delivery["attempts"], delivery["error"], delivery["period_from"]) == (
        "manual", "ok", 2, None, "2026-11-30")

    # A 4xx is the receiver's refusal: recorded failed, not retried.
    receiver.requests.clear()
    receiver.statuses = [410]
    assert (await acme.client.post(f"{PATH}/{created['id']}/run", headers=acme.headers())).status_code == 202
    await drain(acme)
    assert len(receiver.requests) == 1 and len(inbox.envelopes) == 2
    latest = (await deliveries(acme, created["id"]))[0]
    assert (latest["status"], latest["attempts"], latest["error"]) == ("failed", 1, "webhook: HTTP 410")
    async with acme.runtime.db.tenant_session(tenant_id=acme.id) as session:
        actions = list(await session.scalars(select(AuditEntry.action).where(AuditEntry.action == "reports.schedule_run_requested")))
    assert actions == ["reports.schedule_run_requested"] * 2


@SQLITE
async def test_a_disabled_schedule_is_never_due_but_runs_by_hand(acme: Tenant, receiver: Receiver) -> None:
    created = (await acme.client.post(PATH, json=body(emails=[], webhook_url=receiver.url, enabled=False), headers=acme.headers())).json()
    assert created["next_due_at"] is None
    [scheduler] = [s for s in acme.runtime.services if isinstance(s, ReportScheduleScheduler)]
    assert await scheduler.tick(datetime(2026, 12, 9, tzinfo=UTC)) == 0
    await drain(acme)
    assert receiver.requests == []
    assert (await acme.client.post(f"{PATH}/{created['id']}/run", headers=acme.headers())).status_code == 202
    await drain(acme)
    assert len(receiver.requests) == 1


def test_smtp_settings_are_checked_at_start() -> None:
    with pytest.raises(SettingsError, match="KEFU_SMTP_URL must be"):
        load_settings({"KEFU_DATA_DIR": "/tmp/kefu-smtp-settings", "KEFU_SMTP_URL": "mail.example.com:25", "KEFU_SMTP_FROM": "r@x.test"})
    with pytest.raises(SettingsError, match="KEFU_SMTP_FROM"):
        load_settings({"KEFU_DATA_DIR": "/tmp/kefu-smtp-settings", "KEFU_SMTP_URL": "smtp://mail.example.com"})
    server = schedules.smtp_server("smtp://reports%40acme:p%2Fss@mail.example.com:587?starttls=true")
    assert (server.host, server.port, server.starttls, server.implicit_tls, server.user, server.password) == (
        "mail.example.com", 587, True, False, "reports@acme", "p/ss")
    assert schedules.smtp_server("smtps://mail.example.com").port == 465
    assert "p%2Fss" not in repr(load_settings({"KEFU_DATA_DIR": "/tmp/kefu-smtp-settings", "KEFU_SMTP_FROM": "r@x.test",
                                                "KEFU_SMTP_URL": "smtp://u:p%2Fss@mail.example.com"}))


def test_a_receiver_gets_less_time_on_the_embedded_default() -> None:
    # SQLite's other writers wait at most its 10 s busy timeout while a delivery holds the lock.
    from types import SimpleNamespace

    from kefu.tenants.reports.schedules import SMTP_TIMEOUT_S, WEBHOOK_TIMEOUT_S, send_timeout

    embedded, production = SimpleNamespace(embedded=True), SimpleNamespace(embedded=False)
    assert send_timeout(embedded, WEBHOOK_TIMEOUT_S) == send_timeout(embedded, SMTP_TIMEOUT_S) == 5.0  # type: ignore[arg-type]
    assert (send_timeout(production, WEBHOOK_TIMEOUT_S), send_timeout(production, SMTP_TIMEOUT_S)) == (15.0, 30.0)  # type: ignore[arg-type]
