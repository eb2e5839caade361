"""Scorecards: a working draft, immutable published versions, retirement (docs/qa.md).

The draft is checked whenever it is saved (kefu.tenants.qa.scoring.normalize), so a stored
draft is always publishable.  Publishing copies it into version N+1; evaluations name the
version they were scored with, so changing or retiring a scorecard never rewrites an old
score.  Publishing and retiring are written to the audit log.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.platform import audit
from kefu.platform.db.base import utcnow
from kefu.platform.problems import Problem, check_text, not_found
from kefu.tenants.acd_config import add_unique
from kefu.tenants.qa import scoring
from kefu.tenants.qa.models import QaScorecard, QaScorecardVersion


def _name(value: str) -> str:
    return check_text(value, code="invalid_name", what="the name", max_length=200)


def _description(value: str | None) -> str | None:
    text = (value or "").strip()
    if len(text) > 2000:
        raise Problem(400, "invalid_description", "the description may have at most 2000 characters")
    return text or None


def _name_taken() -> Problem:
    return Problem(409, "scorecard_name_taken", "another scorecard has this name")


async def create_scorecard(
    session: AsyncSession, *, tenant_id: uuid.UUID, name: str, description: str | None, document: scoring.ScorecardDocument, actor: str
) -> QaScorecard:
    draft = scoring.as_json(scoring.normalize(document))
    row = QaScorecard(tenant_id=tenant_id, name=_name(name), description=_description(description), draft=draft, created_by=actor)
    await add_unique(session, row, _name_taken())
    await audit.record(session, tenant_id=tenant_id, actor=actor, action="qa.scorecard.created", target=f"qa_scorecard:{row.id}",
                       detail={"name": row.name})
    return row


async def list_scorecards(session: AsyncSession, *, tenant_id: uuid.UUID, include_retired: bool) -> list[QaScorecard]:
    query = select(QaScorecard).where(QaScorecard.tenant_id == tenant_id)
    if not include_retired:
        query = query.where(QaScorecard.status == "active")
    return list(await session.scalars(query.order_by(QaScorecard.name, QaScorecard.id)))


async def get_scorecard(session: AsyncSession, *, tenant_id: uuid.UUID, scorecard_id: uuid.UUID, lock: bool = False) -> QaScorecard:
    query = select(QaScorecard).where(QaScorecard.tenant_id == tenant_id, QaScorecard.id == scorecard_id)
    row = await session.scalar(query.with_for_update() if lock else query)
    if row is None:
        raise not_found("scorecard")
    return row


def _active(row: QaScorecard) -> QaScorecard:
    if row.status == "retired":
        raise Problem(409, "scorecard_retired", f"the scorecard {row.name!r} is retired")
    return row


async def update_scorecard(
    session: AsyncSession, *, tenant_id: uuid.UUID, scorecard_id: uuid.UUID, name: str | None, description: str | None,
    document: scoring.ScorecardDocument | None, actor: str,
) -> QaScorecard:
    row = _active(await get_scorecard(session, tenant_id=tenant_id, scorecard_id=scorecard_id, lock=True))
    if document is not None:
        row.draft = scoring.as_json(scoring.normalize(document))
        row.draft_updated_at = utcnow()
    if description is not None:
        row.description = _description(description)
    if name is not None and _name(name) != row.name:
        taken = await session.scalar(select(QaScorecard.id).where(QaScorecard.tenant_id == tenant_id, QaScorecard.name == _name(name)))
        if taken is not None:
            raise _name_taken()
        row.name = _name(name)
    await session.flush()
    return row


async def list_versions(session: AsyncSession, *, tenant_id: uuid.UUID, scorecard_id: uuid.UUID) -> list[QaScorecardVersion]:
    await get_scorecard(session, tenant_id=tenant_id, scorecard_id=scorecard_id)
    rows = await session.scalars(
        select(QaScorecardVersion).where(QaScorecardVersion.tenant_id == tenant_id, QaScorecardVersion.scorecard_id == scorecard_id)
        .order_by(QaScorecardVersion.number.desc())
    )
    return list(rows)


async def get_version(session: AsyncSession, *, tenant_id: uuid.UUID, version_id: uuid.UUID) -> QaScorecardVersion:
    row = await session.scalar(select(QaScorecardVersion).where(QaScorecardVersion.tenant_id == tenant_id, QaScorecardVersion.id == version_id))
    if row is None:
        raise not_found("scorecard version")
    return row


async def latest_version(session: AsyncSession, *, tenant_id: uuid.UUID, scorecard_id: uuid.UUID) -> tuple[QaScorecard, QaScorecardVersion]:
    """The scorecard's latest published version, for a new evaluation: 404 for a missing
    scorecard, 409 ``scorecard_retired`` or ``scorecard_not_published``."""
    row = _active(await get_scorecard(session, tenant_id=tenant_id, scorecard_id=scorecard_id))
    if row.published_version is None:
        raise Problem(409, "scorecard_not_published", f"the scorecard {row.name!r} has no published version yet")
    version = await session.scalar(
        select(QaScorecardVersion).where(
            QaScorecardVersion.tenant_id == tenant_id, QaScorecardVersion.scorecard_id == row.id,
            QaScorecardVersion.number == row.published_version,
        )
    )
    assert version is not None
    return row, version


async def publish(session: AsyncSession, *, tenant_id: uuid.UUID, scorecard_id: uuid.UUID, actor: str) -> QaScorecardVersion:
    """The draft as version N+1 (the scorecard row locked, so two publishes get N+1 and N+2);
    409 ``draft_unchanged`` when it equals the latest version."""
    row = _active(await get_scorecard(session, tenant_id=tenant_id, scorecard_id=scorecard_id, lock=True))
    document = scoring.as_json(scoring.normalize(scoring.load(row.draft)))
    if row.published_version is not None:
        latest = await session.scalar(
            select(QaScorecardVersion.document).where(
                QaScorecardVersion.tenant_id == tenant_id, QaScorecardVersion.scorecard_id == row.id,
                QaScorecardVersion.number == row.published_version,
            )
        )
        if latest == document:
            raise Problem(409, "draft_unchanged", f"the draft is the same as version {row.published_version}")
    number = (row.published_version or 0) + 1
    version = QaScorecardVersion(tenant_id=tenant_id, scorecard_id=row.id, number=number, name=row.name, document=document, published_by=actor)
    session.add(version)
    row.published_version = number
    await session.flush()
    await audit.record(session, tenant_id=tenant_id, actor=actor, action="qa.scorecard.published", target=f"qa_scorecard:{row.id}",
                       detail={"version": number, "version_id": str(version.id), "name": row.name})
    return version


async def retire(session: AsyncSession, *, tenant_id: uuid.UUID, scorecard_id: uuid.UUID, actor: str) -> QaScorecard:
    """No new evaluations with it (existing ones, drafts included, keep their version).
    Idempotent: retiring a retired scorecard answers it unchanged."""
    row = await get_scorecard(session, tenant_id=tenant_id, scorecard_id=scorecard_id, lock=True)
    if row.status != "retired":
        row.status, row.retired_at = "retired", utcnow()
        await session.flush()
        await audit.record(session, tenant_id=tenant_id, actor=actor, action="qa.scorecard.retired", target=f"qa_scorecard:{row.id}",
                           detail={"name": row.name})
    return row
