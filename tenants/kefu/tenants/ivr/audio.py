"""Uploaded audio prompts: a tenant's recordings of its own voice, for flows' prompts.

An upload is checked by decoding it the way the media plane will play it (any
audio PyAV reads: WAV, Ogg/Opus, MP3, FLAC, WebM), at most ``MAX_AUDIO_BYTES``
and ten minutes; what does not decode is refused (400 ``invalid_audio``) and
nothing is kept.  The file lives at ``<data dir>/ivr-audio/<tenant id>/<audio id>``
— a folder per tenant, named by ids only, so no name a tenant gives reaches the
file system — and the row in ``ivr_audio``.  With media on their own nodes the
folder must be storage every media node reads (as ``KEFU_MOH_FILE``).

A prompt still used by a flow's live version cannot be deleted (409
``audio_in_use``): live calls play it.  Drafts that name a deleted prompt get
``unknown_audio`` when validated.  A closed tenant's folder goes with the
tenant's purge.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.platform import audit
from kefu.platform.db.base import utcnow
from kefu.platform.db.session import on_commit
from kefu.platform.problems import Problem, check_text, not_found
from kefu.platform.settings import Settings
from kefu.tenants.acd_config import add_unique
from kefu.tenants.models import IvrAudio, IvrFlow, IvrFlowVersion

MAX_AUDIO_BYTES = 8 * 1024 * 1024
MAX_AUDIO_PER_TENANT = 500
MEDIA_TYPES = frozenset({
    "audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave", "audio/ogg", "audio/opus", "audio/mpeg", "audio/mp3",
    "audio/flac", "audio/x-flac", "audio/webm",
})
FOLDER = "ivr-audio"


def audio_root(settings: Settings) -> Path:
    return settings.data_dir / FOLDER


def audio_path(root: Path, tenant_id: uuid.UUID, audio_id: uuid.UUID) -> Path:
    return root / str(tenant_id) / str(audio_id)


PromptLength = Callable[[Path], Awaitable[int]]


async def _duration_ms(path: Path, prompt_length_ms: PromptLength) -> int:
    """Decoded and encoded as the media plane plays it (kefu.webrtc offers the check as
    ``runtime.components["prompt_length_ms"]``; its errors carry a stable ``code``)."""
    try:
        return await prompt_length_ms(path)
    except Exception as error:
        code = getattr(error, "code", None)
        if code is None:
            raise
        raise Problem(400, "invalid_audio", f"the file cannot be played: {getattr(error, 'detail', error)}", reason=code) from None


def _write(path: Path, body: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as out:
        out.write(body)
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, path)


def _remove(path: Path) -> None:
    for candidate in (path, path.with_name(path.name + ".partial")):
        try:
            candidate.unlink()
        except FileNotFoundError:
            pass


async def upload(
    session: AsyncSession, *, settings: Settings, prompt_length_ms: PromptLength | None, tenant_id: uuid.UUID, name: str,
    media_type: str | None, body: bytes, actor: str,
) -> IvrAudio:
    name = check_text(name, code="invalid_name", what="the name")
    kind = (media_type or "").split(";")[0].strip().lower()
    if kind not in MEDIA_TYPES:
        raise Problem(415, "unsupported_audio_type", f"send the audio as one of {', '.join(sorted(MEDIA_TYPES))}")
    if not body:
        raise Problem(400, "invalid_audio", "the request has no audio")
    if len(body) > MAX_AUDIO_BYTES:
        raise Problem(413, "audio_too_large", f"an audio prompt is at most {MAX_AUDIO_BYTES // (1024 * 1024)} MiB")
    if prompt_length_ms is None:
        raise Problem(503, "audio_check_unavailable", "this process cannot check audio files; try again")
    count = await session.scalar(select(func.count()).select_from(IvrAudio).where(IvrAudio.tenant_id == tenant_id)) or 0
    if count >= MAX_AUDIO_PER_TENANT:
        raise Problem(409, "too_many_audio_prompts", f"a tenant keeps at most {MAX_AUDIO_PER_TENANT} audio prompts")
    audio_id = uuid.uuid4()
    path = audio_path(audio_root(settings), tenant_id, audio_id)
    await asyncio.to_thread(_write, path, body)
    try:
        duration_ms = await _duration_ms(path, prompt_length_ms)
        row = IvrAudio(tenant_id=tenant_id, id=audio_id, name=name, media_type=kind, size_bytes=len(body), duration_ms=duration_ms,
                       created_at=utcnow())
        await add_unique(session, row, Problem(409, "audio_name_exists", "an audio prompt of this name exists already"))
        await audit.record(session, tenant_id=tenant_id, actor=actor, action="ivr_audio.uploaded", target=f"ivr_audio:{audio_id}",
                           detail={"name": name, "size_bytes": len(body), "duration_ms": duration_ms})
    except BaseException:
        await asyncio.to_thread(_remove, path)
        raise

    # Should the transaction roll back after all, the file goes with the row.
    event.listen(session.sync_session, "after_rollback", lambda _session: _remove(path), once=True)
    return row


async def list_audio(session: AsyncSession, *, tenant_id: uuid.UUID) -> list[IvrAudio]:
    return list(await session.scalars(select(IvrAudio).where(IvrAudio.tenant_id == tenant_id).order_by(IvrAudio.name, IvrAudio.id)))


async def get_audio(session: AsyncSession, *, tenant_id: uuid.UUID, audio_id: uuid.UUID) -> IvrAudio:
    row = await session.scalar(select(IvrAudio).where(IvrAudio.tenant_id == tenant_id, IvrAudio.id == audio_id))
    if row is None:
        raise not_found("audio prompt")
    return row


async def _live_flows_using(session: AsyncSession, tenant_id: uuid.UUID, audio_id: uuid.UUID) -> list[str]:
    live = await session.execute(
        select(IvrFlow.name, IvrFlowVersion.document)
        .join(IvrFlowVersion, (IvrFlowVersion.tenant_id == IvrFlow.tenant_id) & (IvrFlowVersion.flow_id == IvrFlow.id))
        .where(IvrFlow.tenant_id == tenant_id, IvrFlowVersion.number == IvrFlow.published_version)
    )
    needle = json.dumps(str(audio_id))
    return [name for name, document in live if needle in json.dumps(document)]


async def delete_audio(session: AsyncSession, *, settings: Settings, tenant_id: uuid.UUID, audio_id: uuid.UUID, actor: str) -> None:
    row = await get_audio(session, tenant_id=tenant_id, audio_id=audio_id)
    used = await _live_flows_using(session, tenant_id, audio_id)
    if used:
        raise Problem(409, "audio_in_use", f"the live version of {', '.join(sorted(used))} plays this prompt; publish without it first", flows=used)
    await session.delete(row)
    await audit.record(session, tenant_id=tenant_id, actor=actor, action="ivr_audio.deleted", target=f"ivr_audio:{audio_id}", detail={"name": row.name})
    path = audio_path(audio_root(settings), tenant_id, audio_id)

    async def remove_file() -> None:
        await asyncio.to_thread(_remove, path)

    on_commit(session, remove_file)


async def purge_tenant_audio(settings: Settings, tenant_id: uuid.UUID) -> int:
    """A purged tenant's prompts (idempotent); returns how many files were deleted."""
    folder = audio_root(settings) / str(tenant_id)
    if not folder.is_dir():
        return 0
    count = sum(1 for _ in folder.iterdir())
    await asyncio.to_thread(shutil.rmtree, folder, True)
    return count

