"""Server-rendered pages: the caller widget page, the agent desktop, the supervisor
page, the portal and the invitation page.

Templates (Jinja, autoescaped) render the texts in the page's language and
embed both languages' messages for the small ES modules under
``/static/tenants/``.  Element ids are a contract with the browser tests
(see docs/contact-center.md).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar import Request, Response, Router, get
from litestar.datastructures import CacheControlHeader
from litestar.params import FromPath
from litestar.static_files import create_static_files_router
from sqlalchemy import select

from kefu.platform.deps import RuntimeDep
from kefu.platform.models import Tenant
from kefu.platform.problems import Problem
from kefu.platform.runtime import Runtime
from kefu.tenants import i18n
from kefu.tenants.services import contact_center

HERE = Path(__file__).parent
_templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))


def _render(template: str, *, lang: str, runtime: Runtime, status_code: int = 200, **context: Any) -> Response[str]:
    messages = i18n.MESSAGES[lang]
    page_config = {
        "lang": lang,
        "lang_fixed": context.pop("lang_fixed", False),
        "messages": i18n.MESSAGES,
        **context.pop("config", {}),
    }
    html = _templates.get_template(template).render(
        lang=lang, t=messages, config_json=json.dumps(page_config, ensure_ascii=False).replace("</", "<\\/"), **context
    )
    return Response(html, status_code=status_code, media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-store"})


@get("/call/{widget_key:str}", include_in_schema=False)
async def caller_page(widget_key: FromPath[str], request: Request, runtime: RuntimeDep) -> Response[str]:
    query_lang = request.query_params.get("lang")
    try:
        entry = await contact_center(runtime).calls.resolve_widget(widget_key)
    except Problem as problem:
        lang = i18n.choose(query_lang, i18n.from_accept_language(request.headers.get("accept-language")))
        return _render("missing.html", lang=lang, runtime=runtime, status_code=problem.status, code=problem.code)
    async with runtime.db.platform_session(reason="caller page: the tenant's name and locale") as session:
        tenant = (await session.execute(select(Tenant.name, Tenant.locale).where(Tenant.id == entry.tenant_id))).one()
    lang = i18n.choose(query_lang, tenant.locale)
    return _render(
        "caller.html", lang=lang, runtime=runtime, tenant_name=tenant.name, lang_fixed=True,
        config={"widget_key": widget_key},
    )


def _login_page(template: str, request: Request, runtime: Runtime) -> Response[str]:
    query_lang = i18n.normalize_language(request.query_params.get("lang"))
    lang = i18n.choose(query_lang, i18n.from_accept_language(request.headers.get("accept-language")))
    return _render(template, lang=lang, runtime=runtime, lang_fixed=query_lang is not None, tenant_slug=request.query_params.get("tenant", ""))


@get(["/agent", "/agent/"], include_in_schema=False)
async def agent_page(request: Request, runtime: RuntimeDep) -> Response[str]:
    return _login_page("agent.html", request, runtime)


@get(["/supervisor", "/supervisor/"], include_in_schema=False)
async def supervisor_page(request: Request, runtime: RuntimeDep) -> Response[str]:
    """Connected calls, live; monitor, whisper, barge, take over (``acd.agents.supervise``)."""
    return _login_page("supervisor.html", request, runtime)


@get(["/portal", "/portal/"], include_in_schema=False)
async def portal_page(request: Request, runtime: RuntimeDep) -> Response[str]:
    return _login_page("portal.html", request, runtime)


@get(["/portal/ivr", "/portal/ivr/"], include_in_schema=False)
async def ivr_page(request: Request, runtime: RuntimeDep) -> Response[str]:
    """The IVR editor: flows as trees of node forms, validation errors in place (``ivr.flows.write``)."""
    return _login_page("ivr.html", request, runtime)


@get(["/portal/billing", "/portal/billing/"], include_in_schema=False)
async def billing_page(request: Request, runtime: RuntimeDep) -> Response[str]:
    """Seats, the seat ledger, invoices and payment methods (``billing.read`` / ``billing.write``)."""
    return _login_page("billing.html", request, runtime)


@get(["/portal/recordings", "/portal/recordings/"], include_in_schema=False)
async def recordings_page(request: Request, runtime: RuntimeDep) -> Response[str]:
    """Search recorded calls, play each party, download, legal holds, retention (``recordings.read`` / ``recordings.manage``)."""
    return _login_page("recordings.html", request, runtime)


# --- reports page (issue 8, part B: docs/staffing.md) -------------------------------------


@get(["/portal/reports", "/portal/reports/"], include_in_schema=False)
async def reports_page(request: Request, runtime: RuntimeDep) -> Response[str]:
    """Historical reports with charts, downloads, rankings, repeat callers and the staffing calculator (``reports.read``)."""
    return _login_page("reports.html", request, runtime)


# --- end of reports page ----------------------------------------------------------------


@get(["/qa", "/qa/"], include_in_schema=False)
async def qa_page(request: Request, runtime: RuntimeDep) -> Response[str]:
    """The QA reviewer's work list, listening and scoring, second reviews, the library (``qa.*``)."""
    return _login_page("qa.html", request, runtime)


@get(["/qa/my", "/qa/my/"], include_in_schema=False)
async def my_qa_page(request: Request, runtime: RuntimeDep) -> Response[str]:
    """An agent's own evaluations (acknowledge, dispute) and the exemplary-call library (``qa.own``)."""
    return _login_page("qa_my.html", request, runtime)


@get(["/invite", "/invite/"], include_in_schema=False)
async def invite_page(request: Request, runtime: RuntimeDep) -> Response[str]:
    """Where an invitation link lands (``/invite#<token>``): choose a password, then the portal."""
    return _login_page("invite.html", request, runtime)


# --- wallboard page (issue 8, part C: docs/wallboard.md) ----------------------------------


@get(["/wallboard", "/wallboard/"], include_in_schema=False)
async def wallboard_page(request: Request, runtime: RuntimeDep) -> Response[str]:
    """The large-screen wallboard, live over /ws/wallboard (``reports.read``); installed by kefu.tenants.wallboard."""
    return _login_page("wallboard.html", request, runtime)


# --- end of wallboard page ----------------------------------------------------------------


@functools.cache
def _static_router() -> Router:
    # One router for every app (Litestar registers a copy): the test suite's app pool
    # reuses an app when its handlers are the same objects.
    return create_static_files_router(
        path="/static/tenants", directories=[HERE / "static"], name="tenants-static",
        cache_control=CacheControlHeader(no_cache=True), include_in_schema=False,
    )


def route_handlers() -> list[Any]:
    static = _static_router()
    return [caller_page, agent_page, supervisor_page, portal_page, ivr_page, billing_page, recordings_page, reports_page, qa_page, my_qa_page, invite_page, static]
