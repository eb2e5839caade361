"""Short-lived signed links to recordings: made per recording (listen or download) or per
call (every party, for a two-channel player), served without a bearer token, byte ranges
included, audited once per link; expired, altered and other tenants' links refused."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from recordings_support import T0, RecordedCall, Tenant, add_agent, audio, audit_entries, recorded_call
from sqlalchemy import select, update

from kefu.platform.identity.principal import Principal
from kefu.platform.models import User
from kefu.tenants.models import Recording
from kefu.tenants.recordings.links import sign_link


def links_url(recording_id: uuid.UUID) -> str:
    return f"/api/v1/recordings/{recording_id}/links"


async def make_link(client: Any, tenant: Tenant, recording_id: uuid.UUID, purpose: str = "listen", **kwargs: Any) -> dict[str, Any]:
    response = await client.post(links_url(recording_id), json={"purpose": purpose}, headers=kwargs.get("headers") or tenant.headers())
    assert response.status_code == 201, response.text
    return response.json()


def with_query(url: str, pairs: list[tuple[str, str]]) -> str:
    return f"{urlsplit(url).path}?{urlencode(pairs)}"


def query_of(url: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(url).query, keep_blank_values=True)


async def stored(*tenants: Tenant) -> list[Any]:
    """Every tenant's audit entries and recording rows, as they are: a refused request changes none."""
    snapshot: list[Any] = []
    for tenant in tenants:
        entries = await audit_entries(tenant)
        async with tenant.runtime.db.tenant_session(tenant_id=tenant.id) as session:
            recordings = await session.scalars(select(Recording).where(Recording.tenant_id == tenant.id).order_by(Recording.id))
            rows = [{c.name: getattr(r, c.key) for c in Recording.__table__.columns} for r in recordings]
        snapshot.append(([(e.id, e.action, e.actor, e.target, e.detail) for e in entries], rows))
    return snapshot


async def problem(client: Any, url: str, status: int = 403) -> str:
    response = await client.get(url)
    assert response.status_code == status, response.text
    return response.json()["code"]


@pytest.fixture
async def call(acme: Tenant) -> RecordedCall:
    return await recorded_call(acme, started_at=T0 - timedelta(hours=1), caller_name="Wang Wei")


async def test_a_listen_link_plays_without_a_token_seeks_with_ranges_and_is_audited_once(
    client: Any, acme: Tenant, call: RecordedCall
) -> None:
    recording_id = call.recording_id("caller")
    link = await make_link(client, acme, recording_id)
    assert link["recording_id"] == str(recording_id) and link["purpose"] == "listen"
    expires_at = datetime.fromisoformat(link["expires_at"])
    assert timedelta(seconds=299) <= expires_at - T0 <= timedelta(seconds=310)  # five minutes from now (time ticks on from T0)
    assert dict(query_of(link["url"]))["expires"] == str(int(expires_at.timestamp()))
    assert link["url"].startswith(f"/api/v1/recordings/{recording_id}/media?")
    assert [name for name, _ in query_of(link["url"])] == ["tenant", "user", "purpose", "expires", "signature"]
    whole = await client.get(link["url"])
    assert whole.status_code == 200, whole.text
    assert whole.content == audio(call.id, "caller")
    assert whole.headers["content-disposition"] == f'inline; filename="{call.id}-caller.ogg"'
    assert whole.headers["accept-ranges"] == "bytes"
    # A browser seeks with Range; every request answers from the same link.
    part = await client.get(link["url"], headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.content == audio(call.id, "caller")[100:200]
    assert part.headers["content-range"] == "bytes 100-199/4000"
    tail = await client.get(link["url"], headers={"Range": "bytes=-10"})
    assert (tail.status_code, tail.content) == (206, audio(call.id, "caller")[-10:])
    outside = await client.get(link["url"], headers={"Range": "bytes=4000-"})
    assert (outside.status_code, outside.json()["code"], outside.headers["content-range"]) == (416, "range_not_satisfiable", "bytes */4000")
    [entry] = await audit_entries(acme, "recording.listened")
    assert (entry.actor, entry.target) == (f"user:{acme.admin_id}", f"recording:{recording_id}")
    assert entry.detail == {"call_id": str(call.id), "party": "caller", "purpose": "listen", "expires_at": entry.detail["expires_at"]}
    assert await audit_entries(acme, "recording.played") == []


async def test_a_download_link_answers_as_an_attachment_and_is_audited_as_a_download(client: Any, acme: Tenant, call: RecordedCall) -> None:
    link = await make_link(client, acme, call.recording_id("agent"), "download")
    response = await client.get(link["url"])
    assert response.status_code == 200
    assert response.content == audio(call.id, "agent")
    assert response.headers["content-disposition"] == f'attachment; filename="{call.id}-agent.ogg"'
    [entry] = await audit_entries(acme, "recording.downloaded")
    assert entry.detail["purpose"] == "download" and entry.detail["party"] == "agent"
    # The purpose is part of the signature: the download link cannot be turned into a listen link or back.
    pairs = [(k, "listen" if k == "purpose" else v) for k, v in query_of(link["url"])]
    assert await problem(client, with_query(link["url"], pairs)) == "invalid_signature"


async def test_a_link_expires_after_five_minutes(client: Any, acme: Tenant, call: RecordedCall, traveller: Any) -> None:
    link = await make_link(client, acme, call.recording_id())
    traveller.shift(timedelta(seconds=290))
    assert (await client.get(link["url"])).status_code == 200
    before = await stored(acme)
    [[entries, recordings]] = before
    assert ([action for _, action, *_ in entries].count("recording.listened"), len(recordings)) == (1, 2)
    traveller.shift(timedelta(seconds=11))
    assert await problem(client, link["url"]) == "link_expired"
    assert await problem(client, link["url"] + "&x=1") == "invalid_signature"
    assert await stored(acme) == before


async def test_any_change_to_a_link_makes_its_signature_invalid(client: Any, acme: Tenant, globex: Tenant, call: RecordedCall) -> None:
    link = await make_link(client, acme, call.recording_id())
    pairs = query_of(link["url"])
    values = dict(pairs)

    def changed(name: str, value: str) -> str:
        return with_query(link["url"], [(k, value if k == name else v) for k, v in pairs])

    flipped = values["signature"][:-1] + ("0" if values["signature"][-1] != "0" else "1")
    variants = {
        "the signature": changed("signature", flipped),
        "the signature in capitals": changed("signature", values["signature"].upper()),
        "the expiry, later": changed("expires", str(int(values["expires"]) + 3600)),
        "the expiry, not a number": changed("expires", "soon"),
        "the user": changed("user", str(uuid.uuid4())),
        "the tenant": changed("tenant", str(globex.id)),
        "the purpose": changed("purpose", "download"),
        "an empty signature": changed("signature", ""),
        "a missing parameter": with_query(link["url"], [(k, v) for k, v in pairs if k != "user"]),
        "an extra parameter": with_query(link["url"], pairs + [("download", "1")]),
        "a repeated parameter": with_query(link["url"], pairs + [("purpose", "listen")]),
        "another recording of the same call": with_query(f"/api/v1/recordings/{call.recording_id('agent')}/media", pairs),
    }
    before = await stored(acme, globex)
    answers = {what: await problem(client, url) for what, url in variants.items()}
    assert answers == {what: "invalid_signature" for what in variants}
    assert await stored(acme, globex) == before
    # Unchanged, it still works (and that is logged).
    assert (await client.get(link["url"])).status_code == 200
    assert [e.target for e in await audit_entries(acme, "recording.listened")] == [f"recording:{call.recording_id()}"]


async def test_links_never_cross_tenants(client: Any, runtime: Any, acme: Tenant, globex: Tenant, call: RecordedCall) -> None:
    theirs = await recorded_call(globex, started_at=T0 - timedelta(hours=2), caller_name="Globex caller")
    # Acme cannot make a link to Globex's recording: exactly as for a recording that does not exist.
    for recording_id in (theirs.recording_id(), uuid.uuid4()):
        response = await client.post(links_url(recording_id), json={"purpose": "listen"}, headers=acme.headers())
        assert (response.status_code, response.json()["code"]) == (404, "not_found")
    assert (await client.post(f"/api/v1/calls/{theirs.id}/playback", headers=acme.headers())).status_code == 404
    # Acme's link, pointed at Globex's recording, is not signed for it.
    mine = await make_link(client, acme, call.recording_id())
    assert await problem(client, with_query(f"/api/v1/recordings/{theirs.recording_id()}/media", query_of(mine["url"]))) == "invalid_signature"
    # Even a correctly signed link naming Acme and Globex's recording finds nothing: Acme's session cannot see it.
    forged = sign_link(runtime.settings, tenant_id=acme.id, recording_id=theirs.recording_id(), user_id=acme.admin_id, purpose="listen",
                       expires_at=T0 + timedelta(minutes=5))
    assert await problem(client, forged.url, 404) == "not_found"
    # Globex's own link serves Globex's file, and only from Globex's tenant.
    own = await make_link(client, globex, theirs.recording_id())
    response = await client.get(own["url"])
    assert (response.status_code, response.content) == (200, audio(theirs.id, "caller"))
    assert await audit_entries(globex, "recording.listened") != []
    assert [e.target for e in await audit_entries(acme, "recording.listened")] == [f"recording:{call.recording_id()}"]


async def test_the_playback_link_set_gives_every_party_its_own_channel(client: Any, acme: Tenant, call: RecordedCall) -> None:
    response = await client.post(f"/api/v1/calls/{call.id}/playback", headers=acme.headers())
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["call_id"] == str(call.id)
    assert body["serial"] == f"{call.started_at:%Y%m%d%H%M%S}-{call.id.hex[:8]}"
    assert [(p["party"], p["recording_id"], p["media_type"], p["duration_ms"]) for p in body["parties"]] == [
        ("agent", str(call.recording_id("agent")), "audio/ogg", 60000),
        ("caller", str(call.recording_id("caller")), "audio/ogg", 60000),
    ]
    for party in body["parties"]:
        played = await client.get(party["url"])
        assert played.content == audio(call.id, party["party"])
    entries = await audit_entries(acme, "recording.listened")
    assert sorted(e.detail["party"] for e in entries) == ["agent", "caller"]


async def test_an_agent_gets_links_to_its_own_calls_only(client: Any, acme: Tenant) -> None:
    ann, bob = await add_agent(client, acme, "Ann"), await add_agent(client, acme, "Bob")
    anns = await recorded_call(acme, started_at=T0 - timedelta(hours=1), agent_id=ann.id)
    bobs = await recorded_call(acme, started_at=T0 - timedelta(hours=2), agent_id=bob.id)
    as_ann = acme.headers("agent", user_id=ann.user_id)
    link = await make_link(client, acme, anns.recording_id(), headers=as_ann)
    assert (await client.get(link["url"])).content == audio(anns.id, "caller")
    for url in (links_url(bobs.recording_id()), f"/api/v1/calls/{bobs.id}/playback"):
        response = await client.post(url, json={"purpose": "listen"} if url.endswith("links") else None, headers=as_ann)
        assert (response.status_code, response.json()["code"]) == (404, "not_found")


async def test_a_link_stops_working_when_its_user_is_disabled(client: Any, acme: Tenant, call: RecordedCall) -> None:
    link = await make_link(client, acme, call.recording_id())
    async with acme.runtime.db.tenant_session(tenant_id=acme.id) as session:
        await session.execute(update(User).where(User.tenant_id == acme.id, User.id == acme.admin_id).values(status="disabled"))
    assert await problem(client, link["url"]) == "user_disabled"


async def test_bad_link_requests_answer_problems(client: Any, acme: Tenant, call: RecordedCall) -> None:
    response = await client.post(links_url(call.recording_id()), json={"purpose": "share"}, headers=acme.headers())
    assert (response.status_code, response.json()["code"]) == (400, "validation_error")
    response = await client.post(links_url(call.recording_id()), json={"purpose": "listen", "ttl": 99999}, headers=acme.headers())
    assert response.status_code == 400
    response = await client.post(links_url(call.recording_id()), json={"purpose": "listen"})
    assert (response.status_code, response.json()["code"]) == (401, "unauthorized")
    # A link names a person: an integration client plays with its own token instead.
    client_token = acme.runtime.tokens.issue(Principal("integration", "crm-sync", acme.id, scopes=frozenset({"recordings.read"})))
    response = await client.post(links_url(call.recording_id()), json={"purpose": "download"}, headers={"Authorization": f"Bearer {client_token}"})
    assert (response.status_code, response.json()["code"]) == (403, "user_required")
    # Without a link or a token the media route asks for one.
    assert await problem(client, f"/api/v1/recordings/{call.recording_id()}/media", 401) == "unauthorized"
    assert await audit_entries(acme, "recording.listened") == [] and await audit_entries(acme, "recording.downloaded") == []


async def test_the_access_log_lists_who_got_links_and_who_played_with_a_token(client: Any, acme: Tenant, call: RecordedCall) -> None:
    recording_id = call.recording_id()
    await make_link(client, acme, recording_id)
    await make_link(client, acme, recording_id, "download")
    played = await client.get(f"/api/v1/recordings/{recording_id}/media", headers=acme.headers("supervisor"))
    assert played.status_code == 200
    response = await client.get(f"/api/v1/recordings/{recording_id}/access-log", headers=acme.headers())
    assert response.status_code == 200, response.text
    assert [(e["action"], e["actor"]) for e in response.json()] == [
        ("recording.played", f"user:{acme.users['supervisor']}"),
        ("recording.downloaded", f"user:{acme.admin_id}"),
        ("recording.listened", f"user:{acme.admin_id}"),
    ]
    other = await client.get(f"/api/v1/recordings/{call.recording_id('agent')}/access-log", headers=acme.headers())
    assert other.json() == []
    denied = await client.get(f"/api/v1/recordings/{recording_id}/access-log", headers=acme.headers("supervisor"))
    assert (denied.status_code, denied.json()["code"]) == (403, "permission_denied")
