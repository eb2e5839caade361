"""The exemplary-call library (典型案例): calls reviewers file as excellent or instructive,
with a title, notes and tags, for agents to learn from (docs/qa.md).

Agents (``qa.own``) browse it and play its calls: ``library_recordings`` gives the
recording metadata of an item's call to anyone who may browse, and
``recording_in_library`` tells the recordings context that a recording belongs to a
library call (so it may hand an agent a playback link for it).  Filing and removing are
written to the audit log.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.platform import audit
from kefu.platform.problems import Problem, check_text, not_found
from kefu.tenants.models import Call, Recording
from kefu.tenants.qa.calls import recorded_call_ids
from kefu.tenants.qa.models import QaLibraryItem, QaLibraryTag

KINDS = ("excellent", "instructive")
MAX_TAGS = 20
_TAG = re.compile(r"^[\w .:+#-]{1,64}$")


def _kind(value: str) -> str:
    if value not in KINDS:
        raise Problem(400, "invalid_kind", "kind is excellent or instructive")
    return value


def _notes(value: str | None) -> str | None:
    text = (value or "").strip()
    if len(text) > 10_000:
        raise Problem(400, "invalid_notes", "notes may have at most 10000 characters")
    return text or None


def _tags(values: list[str]) -> list[str]:
    """Lower-cased, trimmed, distinct, in the order given."""
    tags = list(dict.fromkeys(v.strip().lower() for v in values))
    if len(tags) > MAX_TAGS or any(not _TAG.match(t) for t in tags):
        raise Problem(400, "invalid_tags", f"at most {MAX_TAGS} tags of 1 to 64 letters, digits, spaces or . : + # - _")
    return tags


async def file_item(
    session: AsyncSession, *, tenant_id: uuid.UUID, call_id: uuid.UUID, kind: str, title: str, notes: str | None, tags: list[str],
    actor: str, now: datetime,
) -> QaLibraryItem:
    """File an ended, recorded call (404 for a missing or foreign call, 409 ``call_not_ended``,
    ``call_not_recorded``, ``call_already_in_library``)."""
    kind, title_text, notes_text, tag_list = _kind(kind), check_text(title, code="invalid_title", what="the title"), _notes(notes), _tags(tags)
    call = await session.scalar(select(Call).where(Call.tenant_id == tenant_id, Call.id == call_id))
    if call is None:
        raise not_found("call")
    if call.status != "ended":
        raise Problem(409, "call_not_ended", "only an ended call can be filed")
    if call_id not in await recorded_call_ids(session, tenant_id=tenant_id, call_ids=[call_id]):
        raise Problem(409, "call_not_recorded", "the call has no recording to learn from")
    if await session.scalar(select(QaLibraryItem.id).where(QaLibraryItem.tenant_id == tenant_id, QaLibraryItem.call_id == call_id)):
        raise Problem(409, "call_already_in_library", "this call is already in the library")
    item = QaLibraryItem(tenant_id=tenant_id, call_id=call_id, kind=kind, title=title_text, notes=notes_text, filed_by=actor,
                         created_at=now, updated_at=now)
    session.add(item)
    await session.flush()
    session.add_all(QaLibraryTag(tenant_id=tenant_id, item_id=item.id, tag=t) for t in tag_list)
    await session.flush()
    await audit.record(session, tenant_id=tenant_id, actor=actor, action="qa.library.filed", target=f"qa_library_item:{item.id}",
                       detail={"call_id": str(call_id), "kind": kind, "title": title_text})
    return item


async def get_item(session: AsyncSession, *, tenant_id: uuid.UUID, item_id: uuid.UUID) -> QaLibraryItem:
    row = await session.scalar(select(QaLibraryItem).where(QaLibraryItem.tenant_id == tenant_id, QaLibraryItem.id == item_id))
    if row is None:
        raise not_found("library item")
    return row


async def tags_of(session: AsyncSession, *, tenant_id: uuid.UUID, item_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
    tags: dict[uuid.UUID, list[str]] = {i: [] for i in item_ids}
    if item_ids:
        for item_id, tag in await session.execute(
            select(QaLibraryTag.item_id, QaLibraryTag.tag).where(QaLibraryTag.tenant_id == tenant_id, QaLibraryTag.item_id.in_(item_ids))
            .order_by(QaLibraryTag.tag)
        ):
            tags[item_id].append(tag)
    return tags


async def update_item(
    session: AsyncSession, *, tenant_id: uuid.UUID, item_id: uuid.UUID, kind: str | None, title: str | None, notes: str | None,
    tags: list[str] | None, now: datetime,
) -> QaLibraryItem:
    item = await get_item(session, tenant_id=tenant_id, item_id=item_id)
    if kind is not None:
        item.kind = _kind(kind)
    if title is not None:
        item.title = check_text(title, code="invalid_title", what="the title")
    if notes is not None:
        item.notes = _notes(notes)
    if tags is not None:
        tag_list = _tags(tags)
        await session.execute(delete(QaLibraryTag).where(QaLibraryTag.tenant_id == tenant_id, QaLibraryTag.item_id == item.id))
        session.add_all(QaLibraryTag(tenant_id=tenant_id, item_id=item.id, tag=t) for t in tag_list)
    item.updated_at = now
    await session.flush()
    return item


async def remove_item(session: AsyncSession, *, tenant_id: uuid.UUID, item_id: uuid.UUID, actor: str) -> None:
    item = await get_item(session, tenant_id=tenant_id, item_id=item_id)
    await session.execute(delete(QaLibraryTag).where(QaLibraryTag.tenant_id == tenant_id, QaLibraryTag.item_id == item.id))
    await session.delete(item)
    await session.flush()
    await audit.record(session, tenant_id=tenant_id, actor=actor, action="qa.library.removed", target=f"qa_library_item:{item_id}",
                       detail={"call_id": str(item.call_id), "title": item.title})


def _like(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def browse(
    session: AsyncSession, *, tenant_id: uuid.UUID, tag: str | None, kind: str | None, text: str | None, limit: int, offset: int
) -> tuple[list[QaLibraryItem], int]:
    """Newest first; ``text`` matches title or notes (case-insensitive), ``tag`` one tag exactly."""
    where: list[Any] = [QaLibraryItem.tenant_id == tenant_id]
    if kind is not None:
        where.append(QaLibraryItem.kind == _kind(kind))
    if tag:
        where.append(exists().where(QaLibraryTag.tenant_id == tenant_id, QaLibraryTag.item_id == QaLibraryItem.id,
                                    QaLibraryTag.tag == tag.strip().lower()))
    if text and text.strip():
        pattern = _like(text.strip())
        where.append(or_(func.lower(QaLibraryItem.title).like(pattern, escape="\\"), func.lower(QaLibraryItem.notes).like(pattern, escape="\\")))
    total = await session.scalar(select(func.count()).select_from(QaLibraryItem).where(*where)) or 0
    rows = await session.scalars(select(QaLibraryItem).where(*where).order_by(QaLibraryItem.created_at.desc(), QaLibraryItem.id).limit(limit).offset(offset))
    return list(rows), total


async def library_recordings(session: AsyncSession, *, tenant_id: uuid.UUID, item_id: uuid.UUID) -> list[Recording]:
    item = await get_item(session, tenant_id=tenant_id, item_id=item_id)
    return list(await session.scalars(
        select(Recording).where(Recording.tenant_id == tenant_id, Recording.call_id == item.call_id).order_by(Recording.party)
    ))


async def recording_in_library(session: AsyncSession, *, tenant_id: uuid.UUID, recording_id: uuid.UUID) -> bool:
    """Whether the recording is of a call in the tenant's library (agents may play those)."""
    return bool(await session.scalar(
        select(exists().where(
            Recording.tenant_id == tenant_id, Recording.id == recording_id,
            QaLibraryItem.tenant_id == Recording.tenant_id, QaLibraryItem.call_id == Recording.call_id,
        ))
    ))
