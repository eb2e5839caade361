"""A real call's recordings, stored in S3-compatible object storage (moto_server),
played back through GET /api/v1/recordings/{id}/media with HTTP Range requests.

The call is real: two in-process aiortc peers (a 440 Hz caller, a 1000 Hz
agent) through the widget and agent-desktop API and the media plane."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from httpx import AsyncClient
from media_support import ClientPeer, decode_recording, dominant_frequency
from s3_support import BUCKET, S3Server, s3_server  # noqa: F401  (fixture)
from sqlalchemy import select, update

from kefu.billing.services import open_account
from kefu.platform.identity.principal import Principal
from kefu.platform.models import AuditEntry, Tenant, User
from kefu.platform.runtime import Runtime
from kefu.platform.settings import Settings
from kefu.tenants.models import Call, Recording
from kefu.webrtc.storage import S3Store

PREFIX = "playback/"


@pytest.fixture
def settings(make_settings: Callable[..., Settings], s3_server: S3Server) -> Settings:  # noqa: F811
    return make_settings(
        "sqlite",
        KEFU_RECORDINGS_BACKEND="s3",
        KEFU_S3_BUCKET=BUCKET,
        KEFU_S3_ENDPOINT_URL=s3_server.endpoint_url,
        KEFU_S3_PREFIX=PREFIX,
        KEFU_MEDIA_ALLOW_LOOPBACK="1",
    )


@pytest.fixture
def runtime(settings: Settings) -> Runtime:
    return Runtime.build(settings)  # api, worker and media in this process


def bearer(runtime: Runtime, *, tenant_id: uuid.UUID, user_id: uuid.UUID, role: str) -> dict[str, str]:
    token = runtime.tokens.issue(Principal.user(user_id=user_id, tenant_id=tenant_id, roles=frozenset({role})))
    return {"Authorization": f"Bearer {token}"}


async def a_tenant_with_an_admin(runtime: Runtime) -> tuple[uuid.UUID, dict[str, str]]:
    async with runtime.db.platform_session(reason="test") as session:
        tenant = Tenant(slug="acme", name="Acme", locale="en", status="active")
        session.add(tenant)
        await session.flush()
        tenant_id = tenant.id
        await open_account(session, tenant_id=tenant_id, seats=10, actor="test")
    async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
        admin = User(tenant_id=tenant_id, email="admin@acme.test", display_name="admin", status="active")
        session.add(admin)
        await session.flush()
        admin_id = admin.id
    return tenant_id, bearer(runtime, tenant_id=tenant_id, user_id=admin_id, role="tenant_admin")


async def a_ready_agent_behind_a_widget(
    runtime: Runtime, client: AsyncClient, tenant_id: uuid.UUID, admin: dict[str, str]
) -> tuple[dict[str, str], str]:
    created = await client.post("/api/v1/agents", json={"email": "ann@acme.test", "display_name": "Ann"}, headers=admin)
    assert created.status_code == 201, created.text
    agent = created.json()
    async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
        await session.execute(update(User).where(User.tenant_id == tenant_id, User.id == uuid.UUID(agent["user_id"])).values(status="active"))
    ann = bearer(runtime, tenant_id=tenant_id, user_id=uuid.UUID(agent["user_id"]), role="agent")
    queue = (await client.post("/api/v1/queues", json={"name": "Support"}, headers=admin)).json()
    await client.put(f"/api/v1/queues/{queue['id']}/members", json={"agent_ids": [agent["id"]]}, headers=admin)
    entry = (await client.post("/api/v1/entry-points", json={"name": "Web", "queue_id": queue["id"]}, headers=admin)).json()
    assert (await client.post("/api/v1/agent/session", headers=ann)).status_code in (200, 201)
    assert (await client.put("/api/v1/agent/status", json={"status": "available"}, headers=ann)).status_code == 200
    return ann, entry["widget_key"]


@pytest.fixture
async def peers() -> AsyncIterator[tuple[ClientPeer, ClientPeer]]:
    caller, agent = ClientPeer(440.0), ClientPeer(1000.0)
    yield caller, agent
    await caller.close()
    await agent.close()


async def test_a_real_calls_recording_in_object_storage_plays_back_with_byte_ranges(
    runtime: Runtime, client: AsyncClient, s3_server: S3Server, peers: tuple[ClientPeer, ClientPeer], tmp_path: Path  # noqa: F811
) -> None:
    caller, agent = peers
    tenant_id, admin = await a_tenant_with_an_admin(runtime)
    ann, widget_key = await a_ready_agent_behind_a_widget(runtime, client, tenant_id, admin)

    placed = await client.post(f"/api/v1/widget/{widget_key}/calls", json={"caller_name": "Li Lei", "offer_sdp": await caller.offer()})
    assert placed.status_code == 201, placed.text
    call_id = placed.json()["call_id"]
    await caller.accept(placed.json()["answer_sdp"])
    answered = await client.post(f"/api/v1/agent/calls/{call_id}/answer", json={"offer_sdp": await agent.offer()}, headers=ann)
    assert answered.status_code == 200, answered.text
    await agent.accept(answered.json()["answer_sdp"])
    heard = await caller.listen(1.0)  # bridged: the caller hears the agent
    assert dominant_frequency(heard) == pytest.approx(1000, abs=2)
    assert (await client.post(f"/api/v1/agent/calls/{call_id}/hangup", headers=ann)).status_code == 204

    async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
        rows = (await session.scalars(select(Recording).where(Recording.tenant_id == tenant_id).order_by(Recording.party))).all()
        recordings = [(r.id, r.party, r.path) for r in rows]
    assert [(party, path) for _, party, path in recordings] == [
        ("agent", f"{tenant_id}/{call_id}/agent.ogg"), ("caller", f"{tenant_id}/{call_id}/caller.ogg"),
    ]
    store = runtime.components["recordings"]
    assert isinstance(store, S3Store)
    # What the end of a call does (the control plane's finalize); a no-op
    # answer from the stored object when the call's end already did it.
    stored = {party: await store.finalize(runtime.settings.recordings_dir / path, path) for _, party, path in recordings}
    assert not (runtime.settings.recordings_dir / str(tenant_id) / call_id).exists()
    assert s3_server.keys(f"{PREFIX}{tenant_id}/") == [f"{PREFIX}{tenant_id}/{call_id}/agent.ogg", f"{PREFIX}{tenant_id}/{call_id}/caller.ogg"]

    caller_id = next(rid for rid, party, _ in recordings if party == "caller")
    url = f"/api/v1/recordings/{caller_id}/media"
    whole = s3_server.get(f"{PREFIX}{tenant_id}/{call_id}/caller.ogg")
    size = stored["caller"].size_bytes
    assert len(whole) == size > 1000

    first = await client.get(url, headers={**admin, "Range": "bytes=0-99"})
    assert (first.status_code, first.headers["content-type"], first.headers["content-range"], first.headers["content-length"]) == (
        206, "audio/ogg", f"bytes 0-99/{size}", "100",
    )
    assert (first.headers["accept-ranges"], first.content) == ("bytes", whole[:100])

    rest = await client.get(url, headers={**admin, "Range": "bytes=100-"})
    assert (rest.status_code, rest.headers["content-range"], rest.content) == (206, f"bytes 100-{size - 1}/{size}", whole[100:])
    tail = await client.get(url, headers={**admin, "Range": "bytes=-50"})
    assert (tail.status_code, tail.headers["content-range"], tail.content) == (206, f"bytes {size - 50}-{size - 1}/{size}", whole[-50:])

    beyond = await client.get(url, headers={**admin, "Range": f"bytes={size}-"})
    assert (beyond.status_code, beyond.headers["content-range"], beyond.json()["code"]) == (416, f"bytes */{size}", "range_not_satisfiable")

    full = await client.get(url, headers=admin)
    assert (full.status_code, full.headers["content-length"], "content-range" in full.headers) == (200, str(size), False)
    assert full.headers["content-disposition"] == f'inline; filename="{call_id}-caller.ogg"'
    assert full.content == first.content + rest.content == whole
    (tmp_path / "played.ogg").write_bytes(full.content)
    assert dominant_frequency(decode_recording(tmp_path / "played.ogg")[-24_000:]) == pytest.approx(440, abs=3)

    # Malformed or multiple ranges are ignored (RFC 9110): the whole recording.
    for ignored in ("bytes=5-2", "bytes=0-1,4-5", "items=0-1"):
        answer = await client.get(url, headers={**admin, "Range": ignored})
        assert (answer.status_code, answer.content) == (200, whole), ignored

    async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
        played = (await session.scalars(select(AuditEntry).where(AuditEntry.action == "recording.played"))).all()
    assert len(played) == 7  # every answer that sent audio; the 416 sent none
    assert {entry.target for entry in played} == {f"recording:{caller_id}"}


async def test_a_recording_whose_object_is_gone_answers_404_not_500(
    runtime: Runtime, client: AsyncClient, s3_server: S3Server  # noqa: F811
) -> None:
    tenant_id, admin = await a_tenant_with_an_admin(runtime)
    call_id = uuid.uuid4()
    async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
        session.add(Call(id=call_id, tenant_id=tenant_id, caller_name="Li Lei", status="ended"))
        await session.flush()
        recording = Recording(tenant_id=tenant_id, call_id=call_id, party="caller", path=f"{tenant_id}/{call_id}/caller.ogg")
        session.add(recording)
        await session.flush()
        recording_id = recording.id
    answer = await client.get(f"/api/v1/recordings/{recording_id}/media", headers={**admin, "Range": "bytes=0-9"})
    assert (answer.status_code, answer.json()["code"]) == (404, "recording_file_missing")
    s3_server.put(f"{PREFIX}{tenant_id}/{call_id}/caller.ogg", b"OggS0123456789")
    answer = await client.get(f"/api/v1/recordings/{recording_id}/media", headers={**admin, "Range": "bytes=4-7"})
    assert (answer.status_code, answer.content, answer.headers["content-range"]) == (206, b"0123", "bytes 4-7/14")
