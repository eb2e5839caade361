"""Flows kept per tenant: a working draft, published versions, rollback.

* A draft may be saved while it still has validation errors (it must parse:
  400 ``flow_invalid`` with the errors otherwise); saving returns them.
* Publishing validates the draft against the tenant as it is now (its queues,
  skills, schedules, flows, agents, lookup addresses, locales): 422
  ``flow_invalid`` with every error, each naming node and exit; otherwise a new
  version, numbered 1, 2, … and never changed again, becomes the live one.
* A rollback publishes an earlier version's document again as a new version
  (``restored_from``), validated the same way, so history only grows.
* ``live_version`` is what a new call starts with; a call keeps the version it
  started with (its id is on the call) whatever is published after.

Every function takes the tenant's own session: another tenant's flow is not
found, and its queues or skills are unknown to validation.
"""

from __future__ import annotations

import uuid
from typing import Any

from kefu.platform import audit
from kefu.platform.db.base import utcnow
from kefu.platform.models import Tenant
from kefu.platform.problems import Problem, check_text, not_found
from kefu.tenants.acd_config import add_unique
from kefu.tenants.ivr.flow import (
    Flow,
    FlowContext,
    FlowError,
    FlowInvalid,
    parse,
    validate,
)
from kefu.tenants.models import (
    Agent,
    IvrAudio,
    IvrFlow,
    IvrFlowVersion,
    IvrLookupAddress,
    Queue,
    Schedule,
    Skill,
)
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

MAX_LOOKUP_ADDRESSES = 50


def _errors(errors: list[FlowError]) -> list[dict[str, Any]]:
    return [error.as_dict() for error in errors]


def parse_or_problem(document: Any) -> Flow:
    try:
        return parse(document)
    except FlowInvalid as invalid:
        raise Problem(400, "flow_invalid", "the document is not a flow", errors=_errors(invalid.errors)) from None


def starter_document(locale: str) -> dict[str, Any]:
    """A new flow's draft: it thanks the caller and hangs up."""
    return {"schema": "kefu.ivr/1", "start": "goodbye", "nodes": {
        "goodbye": {"type": "hangup", "prompt": {locale: {"text": "Thank you for calling."}}},
    }}


async def _tenant_locale(session: AsyncSession, tenant_id: uuid.UUID) -> str:
    return await session.scalar(select(Tenant.locale).where(Tenant.id == tenant_id)) or "en"


async def flow_context(session: AsyncSession, *, tenant_id: uuid.UUID) -> FlowContext:
    """What the tenant's flows may refer to, as it is now."""
    async def ids(model: Any) -> frozenset[str]:
        return frozenset(str(i) for i in await session.scalars(select(model.id).where(model.tenant_id == tenant_id)))

    prefixes = await session.scalars(select(IvrLookupAddress.prefix).where(IvrLookupAddress.tenant_id == tenant_id))
    return FlowContext(
        locales=(await _tenant_locale(session, tenant_id),),
        queues=await ids(Queue), skills=await ids(Skill), schedules=await ids(Schedule), flows=await ids(IvrFlow),
        agents=await ids(Agent), audio=await ids(IvrAudio),
        http_allowed=tuple(prefixes),
    )


async def get_flow(session: AsyncSession, *, tenant_id: uuid.UUID, flow_id: uuid.UUID) -> IvrFlow:
    flow = await session.scalar(select(IvrFlow).where(IvrFlow.tenant_id == tenant_id, IvrFlow.id == flow_id))
    if flow is None:
        raise not_found("flow")
    return flow


async def list_flows(session: AsyncSession, *, tenant_id: uuid.UUID) -> list[IvrFlow]:
    return list(await session.scalars(select(IvrFlow).where(IvrFlow.tenant_id == tenant_id).order_by(IvrFlow.name, IvrFlow.id)))


def _name_taken() -> Problem:
    return Problem(409, "flow_name_taken", "a flow with this name already exists")


async def create_flow(
    session: AsyncSession, *, tenant_id: uuid.UUID, name: str, actor: str, document: Any = None,
) -> tuple[IvrFlow, list[FlowError]]:
    """A new flow whose draft is ``document`` (default: the starter flow); returns it with
    the draft's validation errors."""
    name = check_text(name, code="invalid_name", what="the name")
    if document is None:
        document = starter_document(await _tenant_locale(session, tenant_id))
    parsed = parse_or_problem(document)
    if await session.scalar(select(IvrFlow.id).where(IvrFlow.tenant_id == tenant_id, IvrFlow.name == name)) is not None:
        raise _name_taken()
    now = utcnow()
    flow = IvrFlow(tenant_id=tenant_id, name=name, draft=document, draft_updated_at=now, created_at=now)
    await add_unique(session, flow, _name_taken())
    await audit.record(session, tenant_id=tenant_id, actor=actor, action="ivr_flow.created", target=f"ivr_flow:{flow.id}", detail={"name": name})
    return flow, validate(parsed, await flow_context(session, tenant_id=tenant_id))


async def save_draft(session: AsyncSession, *, tenant_id: uuid.UUID, flow_id: uuid.UUID, document: Any, actor: str) -> tuple[IvrFlow, list[FlowError]]:
    """Replace the draft (it must parse); returns the flow and the draft's validation errors."""
    parsed = parse_or_problem(document)
    flow = await get_flow(session, tenant_id=tenant_id, flow_id=flow_id)
    flow.draft, flow.draft_updated_at = document, utcnow()
    await session.flush()
    await audit.record(session, tenant_id=tenant_id, actor=actor, action="ivr_flow.draft_saved", target=f"ivr_flow:{flow.id}")
    return flow, validate(parsed, await flow_context(session, tenant_id=tenant_id))


async def check_draft(session: AsyncSession, *, tenant_id: uuid.UUID, flow_id: uuid.UUID) -> list[FlowError]:
    flow = await get_flow(session, tenant_id=tenant_id, flow_id=flow_id)
    return validate(parse_or_problem(flow.draft), await flow_context(session, tenant_id=tenant_id))


async def _publish_document(
    session: AsyncSession, *, flow: IvrFlow, document: Any, actor: str, restored_from: int | None,
) -> IvrFlowVersion:
    errors = validate(parse_or_problem(document), await flow_context(session, tenant_id=flow.tenant_id))
    if errors:
        raise Problem(422, "flow_invalid", f"the flow has {len(errors)} error(s); nothing was published", errors=_errors(errors))
    last = await session.scalar(
        select(func.max(IvrFlowVersion.number)).where(IvrFlowVersion.tenant_id == flow.tenant_id, IvrFlowVersion.flow_id == flow.id)
    )
    version = IvrFlowVersion(
        tenant_id=flow.tenant_id, flow_id=flow.id, number=(last or 0) + 1, document=document, published_at=utcnow(),
        published_by=actor, restored_from=restored_from,
    )
    # Another publication taking the number meanwhile: the client tries again.
    await add_unique(session, version, Problem(409, "flow_changed", "the flow was published meanwhile; try again"))
    flow.published_version = version.number
    await session.flush()
    await audit.record(
        session, tenant_id=flow.tenant_id, actor=actor, action="ivr_flow.published", target=f"ivr_flow:{flow.id}",
        detail={"version": version.number, **({"restored_from": restored_from} if restored_from else {})},
    )
    return version


async def publish(session: AsyncSession, *, tenant_id: uuid.UUID, flow_id: uuid.UUID, actor: str) -> IvrFlowVersion:
    """Publish the draft as the next version (422 ``flow_invalid`` listing every error)."""
    flow = await get_flow(session, tenant_id=tenant_id, flow_id=flow_id)
    return await _publish_document(session, flow=flow, document=flow.draft, actor=actor, restored_from=None)


async def get_version(session: AsyncSession, *, tenant_id: uuid.UUID, flow_id: uuid.UUID, number: int) -> IvrFlowVersion:
    version = await session.scalar(
        select(IvrFlowVersion).where(IvrFlowVersion.tenant_id == tenant_id, IvrFlowVersion.flow_id == flow_id, IvrFlowVersion.number == number)
    )
    if version is None:
        raise not_found("flow version")
    return version


async def list_versions(session: AsyncSession, *, tenant_id: uuid.UUID, flow_id: uuid.UUID) -> list[IvrFlowVersion]:
    await get_flow(session, tenant_id=tenant_id, flow_id=flow_id)
    return list(await session.scalars(
        select(IvrFlowVersion).where(IvrFlowVersion.tenant_id == tenant_id, IvrFlowVersion.flow_id == flow_id).order_by(IvrFlowVersion.number)
    ))


async def rollback(session: AsyncSession, *, tenant_id: uuid.UUID, flow_id: uuid.UUID, number: int, actor: str) -> IvrFlowVersion:
    """Publish version ``number``'s document again, as the next version."""
    flow = await get_flow(session, tenant_id=tenant_id, flow_id=flow_id)
    old = await get_version(session, tenant_id=tenant_id, flow_id=flow_id, number=number)
    return await _publish_document(session, flow=flow, document=old.document, actor=actor, restored_from=number)


async def live_version(session: AsyncSession, *, tenant_id: uuid.UUID, flow_id: uuid.UUID) -> IvrFlowVersion | None:
    """The version a new call starts with (None: the flow was never published)."""
    flow = await get_flow(session, tenant_id=tenant_id, flow_id=flow_id)
    if flow.published_version is None:
        return None
    return await get_version(session, tenant_id=tenant_id, flow_id=flow_id, number=flow.published_version)


# --- lookup addresses -----------------------------------------------------------------------


def check_prefix(prefix: str) -> str:
    """An https (or http) URL prefix with a host, ending in ``/`` so a host cannot be extended."""
    from urllib.parse import urlsplit

    prefix = prefix.strip()
    parts = urlsplit(prefix)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.username or parts.password or len(prefix) > 300 or not prefix.endswith("/"):
        raise Problem(400, "invalid_lookup_address", "a lookup address is an http(s) URL with a host and no credentials, ending in /")
    return prefix


async def add_lookup_address(session: AsyncSession, *, tenant_id: uuid.UUID, prefix: str, actor: str) -> IvrLookupAddress:
    prefix = check_prefix(prefix)
    count = await session.scalar(select(func.count()).select_from(IvrLookupAddress).where(IvrLookupAddress.tenant_id == tenant_id)) or 0
    if count >= MAX_LOOKUP_ADDRESSES:
        raise Problem(409, "too_many_lookup_addresses", f"a tenant has at most {MAX_LOOKUP_ADDRESSES} lookup addresses")
    row = IvrLookupAddress(tenant_id=tenant_id, prefix=prefix, created_at=utcnow())
    await add_unique(session, row, Problem(409, "lookup_address_exists", "this lookup address is configured already"))
    await audit.record(session, tenant_id=tenant_id, actor=actor, action="ivr_lookup_address.added", target=f"ivr_lookup_address:{row.id}", detail={"prefix": prefix})
    return row


async def list_lookup_addresses(session: AsyncSession, *, tenant_id: uuid.UUID) -> list[IvrLookupAddress]:
    return list(await session.scalars(select(IvrLookupAddress).where(IvrLookupAddress.tenant_id == tenant_id).order_by(IvrLookupAddress.prefix)))


async def remove_lookup_address(session: AsyncSession, *, tenant_id: uuid.UUID, address_id: uuid.UUID, actor: str) -> None:
    row = await session.scalar(select(IvrLookupAddress).where(IvrLookupAddress.tenant_id == tenant_id, IvrLookupAddress.id == address_id))
    if row is None:
        raise not_found("lookup address")
    await session.delete(row)
    await audit.record(session, tenant_id=tenant_id, actor=actor, action="ivr_lookup_address.removed", target=f"ivr_lookup_address:{row.id}", detail={"prefix": row.prefix})
