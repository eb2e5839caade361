"""Quality assurance meets recording management: an agent plays a library call that is not
its own through short-lived signed links (audited), and the recordings search filters by
QA status (evaluated: a scored evaluation; drafts and calibrations do not count)."""

from __future__ import annotations

import uuid
from typing import Any

from qa_support import World, evaluate, make_call, scorecard


async def test_an_agent_plays_a_library_call_through_signed_links_and_each_link_is_audited(client: Any, acme: World, globex: World) -> None:
    bobs_call = await make_call(acme, acme.bob)
    item = (await client.post("/api/v1/qa/library", json={"call_id": str(bobs_call), "kind": "excellent", "title": "Calm"},
                              headers=acme.rita.headers)).json()
    playback = await client.post(f"/api/v1/qa/library/{item['id']}/playback", headers=acme.alice.headers)
    assert playback.status_code == 201, playback.text
    body = playback.json()
    assert (body["call_id"], sorted(p["party"] for p in body["parties"])) == (str(bobs_call), ["agent", "caller"])
    assert body["serial"].endswith(bobs_call.hex[:8])
    for party in body["parties"]:
        media = await client.get(party["url"])  # no bearer: the link is the authority
        assert (media.status_code, media.content[:4]) == (200, b"OggS"), media.text
        assert media.content[4:9] == party["party"].encode()[:5]
    # The same link altered (another recording's id) is refused, and another tenant's item is not found.
    other = body["parties"][0]["url"].replace(body["parties"][0]["recording_id"], body["parties"][1]["recording_id"])
    assert (await client.get(other)).json()["code"] == "invalid_signature"
    foreign_item = (await client.post("/api/v1/qa/library", json={"call_id": str(await make_call(globex, globex.bob)), "kind": "excellent",
                                      "title": "Theirs"}, headers=globex.rita.headers)).json()
    assert (await client.post(f"/api/v1/qa/library/{foreign_item['id']}/playback", headers=acme.alice.headers)).status_code == 404
    # Both links are in the tenant's audit log, made for Alice.
    log = await client.get("/api/v1/audit-log?action=recording.listened", headers=acme.admin.headers)
    assert [e["actor"] for e in log.json()["items"]] == [f"user:{acme.alice.user_id}"] * 2


async def test_the_recordings_search_filters_by_qa_status(client: Any, acme: World) -> None:
    scorecard_id, _ = await scorecard(client, acme)
    scored, drafted, untouched = [await make_call(acme, acme.alice) for _ in range(3)]
    await evaluate(client, acme, acme.rita, scorecard_id, [scored])
    draft = await client.post("/api/v1/qa/evaluations", json={"scorecard_id": scorecard_id, "call_ids": [str(drafted)]}, headers=acme.rita.headers)
    assert draft.status_code == 201

    async def found(qa_status: str) -> set[uuid.UUID]:
        response = await client.get(f"/api/v1/recordings?qa_status={qa_status}", headers=acme.admin.headers)
        assert response.status_code == 200, response.text
        return {uuid.UUID(c["call_id"]) for c in response.json()["items"]}

    assert await found("evaluated") == {scored}
    assert await found("unevaluated") == {drafted, untouched}
    bad = await client.get("/api/v1/recordings?qa_status=maybe", headers=acme.admin.headers)
    assert (bad.status_code, bad.json()["code"]) == (400, "invalid_qa_status")
