"""Uploaded audio prompts: decoded before they are kept, stored in the tenant's own
folder, used by published flows, played on live calls, not deletable while a live
version plays them, gone with the tenant's purge; bad uploads change nothing."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from httpx import AsyncClient
from sqlalchemy import select, update
from tenants_support import Admin, wav_bytes
from test_ivr_calls import IvrMedia, entry_with_flow, media, new_queue, place_call, publish  # noqa: F401 (the media fixture)

from kefu.platform.admin.purge import purge_tenant
from kefu.platform.db.base import utcnow
from kefu.platform.models import PlatformAuditEntry, Tenant, TenantStatus
from kefu.platform.runtime import Runtime
from kefu.tenants.ivr.audio import MAX_AUDIO_BYTES, audio_path, audio_root, purge_tenant_audio


async def upload(client: AsyncClient, admin: Admin, name: str, body: bytes, content_type: str = "audio/wav") -> Any:
    return await client.post(f"/api/v1/ivr/audio?name={name}", content=body, headers={**admin.headers, "Content-Type": content_type})


def files_of(runtime: Runtime, tenant_id: uuid.UUID) -> list[str]:
    folder = audio_root(runtime.settings) / str(tenant_id)
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


async def test_an_uploaded_prompt_is_decoded_stored_in_the_tenants_folder_and_served(client: AsyncClient, runtime: Runtime, acme: Admin) -> None:
    wav = wav_bytes(seconds=1.2)
    created = await upload(client, acme, "welcome", wav)
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["name"], body["media_type"], body["size_bytes"]) == ("welcome", "audio/wav", len(wav))
    assert 1180 <= body["duration_ms"] <= 1220
    assert files_of(runtime, acme.tenant_id) == [body["id"]]
    assert audio_path(audio_root(runtime.settings), acme.tenant_id, uuid.UUID(body["id"])).read_bytes() == wav
    assert [a["id"] for a in (await client.get("/api/v1/ivr/audio", headers=acme.headers)).json()] == [body["id"]]
    served = await client.get(body["media_url"], headers=acme.headers)
    assert (served.status_code, served.content, served.headers["content-type"]) == (200, wav, "audio/wav")


async def test_bad_uploads_are_refused_and_leave_nothing(client: AsyncClient, runtime: Runtime, acme: Admin) -> None:
    assert (await upload(client, acme, "first", wav_bytes())).status_code == 201
    kept = files_of(runtime, acme.tenant_id)
    for name, body, content_type, status, code in (
        ("text", b"hello", "text/plain", 415, "unsupported_audio_type"),
        ("garbage", b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" * 10, "audio/wav", 400, "invalid_audio"),
        ("empty", b"", "audio/wav", 400, "invalid_audio"),
        ("huge", b"\x00" * (MAX_AUDIO_BYTES + 1), "audio/wav", 413, None),
        ("first", wav_bytes(), "audio/wav", 409, "audio_name_exists"),
        ("   ", wav_bytes(), "audio/wav", 400, "invalid_name"),
    ):
        refused = await upload(client, acme, name, body, content_type)
        assert refused.status_code == status, (name, refused.text)
        if code is not None:
            assert refused.json()["code"] == code, name
    assert files_of(runtime, acme.tenant_id) == kept
    assert [a["name"] for a in (await client.get("/api/v1/ivr/audio", headers=acme.headers)).json()] == ["first"]


async def test_a_flow_plays_an_uploaded_prompt_on_a_live_call_and_it_stays_until_no_live_version_uses_it(
    client: AsyncClient, runtime: Runtime, acme: Admin, media: IvrMedia,
) -> None:
    audio_id = (await upload(client, acme, "welcome", wav_bytes())).json()["id"]
    general = await new_queue(client, acme, "General")

    def flow(with_audio: bool) -> dict[str, Any]:
        welcome = {"en": {"audio": audio_id}} if with_audio else {"en": {"text": "Welcome."}}
        return {"start": "hi", "nodes": {
            "hi": {"type": "play", "prompt": welcome, "exits": {"next": "m"}},
            "m": {"type": "menu", "prompt": {"en": {"text": "Press 1."}}, "exits": {"1": "q", "invalid": "q", "no_input": "q"}},
            "q": {"type": "queue", "queue_id": general},
        }}

    flow_id = await publish(client, acme, "Main", flow(True))
    key = await entry_with_flow(client, acme, general, flow_id)
    call = await place_call(client, key, "Ada")
    path = str(audio_path(audio_root(runtime.settings), acme.tenant_id, uuid.UUID(audio_id)))
    assert media.parts[-1] == (uuid.UUID(call["call_id"]), [{"file": path}, {"text": "Press 1.", "locale": "en-US"}])
    assert Path(path).is_file()

    in_use = await client.delete(f"/api/v1/ivr/audio/{audio_id}", headers=acme.headers)
    assert (in_use.status_code, in_use.json()["code"], in_use.json()["flows"]) == (409, "audio_in_use", ["Main"])
    await client.put(f"/api/v1/ivr/flows/{flow_id}/draft", json={"document": flow(False)}, headers=acme.headers)
    assert (await client.post(f"/api/v1/ivr/flows/{flow_id}/publish", headers=acme.headers)).status_code == 201
    assert (await client.delete(f"/api/v1/ivr/audio/{audio_id}", headers=acme.headers)).status_code == 204
    assert not Path(path).exists()
    # A draft naming it again is told the prompt is gone.
    saved = await client.put(f"/api/v1/ivr/flows/{flow_id}/draft", json={"document": flow(True)}, headers=acme.headers)
    assert [(e["code"], e["node"]) for e in saved.json()["errors"]] == [("unknown_audio", "hi")]


async def test_another_tenants_prompt_is_unknown_to_validation_and_a_purge_removes_the_folder(
    client: AsyncClient, runtime: Runtime, acme: Admin, globex: Admin,
) -> None:
    theirs = (await upload(client, globex, "theirs", wav_bytes())).json()["id"]
    document = {"start": "bye", "nodes": {"bye": {"type": "hangup", "prompt": {"en": {"audio": theirs}}}}}
    created = await client.post("/api/v1/ivr/flows", json={"name": "Smuggle", "document": document}, headers=acme.headers)
    assert [(e["code"], e["node"]) for e in created.json()["errors"]] == [("unknown_audio", "bye")]
    assert (await client.get(f"/api/v1/ivr/audio/{theirs}/media", headers=acme.headers)).status_code == 404
    # Globex closes; its purge (the platform job's step) takes the prompts' folder with it.
    async with runtime.db.platform_session(reason="test") as session:
        await session.execute(update(Tenant).where(Tenant.id == globex.tenant_id).values(status=TenantStatus.CLOSED, purge_after=utcnow() - timedelta(minutes=1)))
    async with runtime.db.platform_session(reason="test purge") as session:
        assert await purge_tenant(session, tenant_id=globex.tenant_id, settings=runtime.settings, now=utcnow())
    async with runtime.db.platform_session(reason="test") as session:
        entry = await session.scalar(select(PlatformAuditEntry).where(PlatformAuditEntry.action == "tenant.purged"))
    assert entry is not None and entry.detail["files"]["ivr_audio"] == 1
    assert files_of(runtime, globex.tenant_id) == []
    assert await purge_tenant_audio(runtime.settings, globex.tenant_id) == 0  # idempotent

