"""The caller page and the agent desktop trickle their ICE candidates and use the ICE servers the API
hands out, in real Chromium (docs/signalling.md, "What a browser does").

The pages' offers carry no candidates: the caller's first offer goes over HTTP and its candidates
follow on the caller socket once the call exists; the agent answers with an ``offer`` on its socket
and trickles right behind it; a caller whose connection fails re-attaches with an ``offer`` on its
socket.  Every peer connection is built with the ICE servers fetched just before it (the server
hands out a TURN entry with a fresh credential).  An init script records, in each page, what it
sends on its sockets, what it fetched from the ICE-server routes, the HTTP offers it posted and the
configuration of every RTCPeerConnection it made.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from browser_support import AGENT_HZ, CALLER_HZ, STEP_MS, LiveServer, connect_call, launch_chromium, sign_in_agent_ready, wait_for_tone
from playwright.sync_api import BrowserContext, Page, Playwright, expect

RECORD_SIGNALLING_JS = """
window.kefuTest = { sent: [], iceFetched: [], posted: [], configured: [] };
const sendFrame = WebSocket.prototype.send;
WebSocket.prototype.send = function (data) {
  window.kefuTest.sent.push({ path: new URL(this.url).pathname, message: JSON.parse(data) });
  return sendFrame.call(this, data);
};
const fetchPage = window.fetch.bind(window);
window.fetch = async (path, init = {}) => {
  if (init.body) window.kefuTest.posted.push({ path: String(path), body: JSON.parse(init.body) });
  const response = await fetchPage(path, init);
  if (String(path).endsWith("/ice-servers")) window.kefuTest.iceFetched.push(await response.clone().json());
  return response;
};
const PeerConnection = window.RTCPeerConnection;
window.RTCPeerConnection = class extends PeerConnection {
  constructor(configuration, ...rest) {
    super(configuration, ...rest);
    window.kefuTest.configured.push(JSON.parse(JSON.stringify(configuration.iceServers)));
  }
};
"""

# True once the page has sent the end of its candidates (candidate null) for `call_id` on `path` `count` times.
CANDIDATES_ENDED_JS = """
([path, callId, count]) => window.kefuTest.sent.filter(
  ({ path: p, message: m }) => p === path && m.type === "ice_candidate" && m.call_id === callId && m.candidate === null,
).length >= count
"""


def recording_page(playwright: Playwright, profile: Path, microphone: Path) -> tuple[Page, BrowserContext]:
    context = launch_chromium(playwright, profile, microphone)
    context.add_init_script(RECORD_SIGNALLING_JS)
    return context.new_page(), context


def recorded(page: Page) -> dict:
    return page.evaluate("() => window.kefuTest")


def sent_on(record: dict, path: str, message_type: str) -> list[dict]:
    return [frame["message"] for frame in record["sent"] if frame["path"] == path and frame["message"]["type"] == message_type]


def assert_trickled(candidates: list[dict], call_id: str) -> None:
    """Candidate lines, each for the call, then the end of candidates."""
    assert candidates, "no candidates were trickled"
    assert {message["call_id"] for message in candidates} == {call_id}
    assert candidates[-1]["candidate"] is None
    lines = [message["candidate"] for message in candidates[:-1] if message["candidate"]]
    assert lines and all(line.startswith("candidate:") for line in lines)


def assert_each_connection_used_the_ice_servers_fetched_for_it(record: dict, connections: int) -> None:
    assert len(record["configured"]) == len(record["iceFetched"]) == connections
    for configured, fetched in zip(record["configured"], record["iceFetched"], strict=True):
        [turn] = fetched["ice_servers"]
        assert turn["username"] and turn["credential"]
        assert configured == fetched["ice_servers"]


@pytest.mark.browser
def test_caller_and_agent_pages_trickle_their_candidates_with_the_ice_servers_the_api_hands_out(
    demo_server_with_turn: tuple[LiveServer, dict[str, str]], playwright: Playwright, tone_wavs: dict[str, Path], tmp_path: Path
) -> None:
    server, demo = demo_server_with_turn
    contexts: list[BrowserContext] = []
    try:
        agent, agent_context = recording_page(playwright, tmp_path / "agent-profile", tone_wavs["agent"])
        caller, caller_context = recording_page(playwright, tmp_path / "caller-profile", tone_wavs["caller"])
        contexts += [agent_context, caller_context]
        sign_in_agent_ready(agent, server.url, demo)
        call_id = connect_call(agent, caller, server.url, demo)
        caller_socket, agent_socket = f"/ws/caller/{call_id}", "/ws/agent"
        caller.wait_for_function(CANDIDATES_ENDED_JS, arg=[caller_socket, call_id, 1], timeout=STEP_MS)
        agent.wait_for_function(CANDIDATES_ENDED_JS, arg=[agent_socket, call_id, 1], timeout=STEP_MS)
        assert wait_for_tone(agent, CALLER_HZ) == pytest.approx(CALLER_HZ, abs=15)
        assert wait_for_tone(caller, AGENT_HZ) == pytest.approx(AGENT_HZ, abs=15)

        # The caller: its first offer over HTTP without candidates, its candidates on its socket.
        calls = recorded(caller)
        [created] = [post for post in calls["posted"] if post["path"] == f"/api/v1/widget/{demo['widget_key']}/calls"]
        assert "a=candidate" not in created["body"]["offer_sdp"]
        assert sent_on(calls, caller_socket, "offer") == []
        assert_trickled(sent_on(calls, caller_socket, "ice_candidate"), call_id)
        assert_each_connection_used_the_ice_servers_fetched_for_it(calls, 1)

        # The agent: the answering offer on its socket without candidates, then its candidates there.
        desk = recorded(agent)
        [offer] = sent_on(desk, agent_socket, "offer")
        assert offer["call_id"] == call_id and offer["request_id"]
        assert "a=candidate" not in offer["sdp"]
        assert not [post for post in desk["posted"] if "offer_sdp" in post["body"]]  # no HTTP offer
        assert_trickled(sent_on(desk, agent_socket, "ice_candidate"), call_id)
        assert_each_connection_used_the_ice_servers_fetched_for_it(desk, 1)
        # The server's answer is not trickled: it holds all of its candidates.
        assert "a=candidate:" in agent.evaluate("() => window.kefuSoftphone.pc.remoteDescription.sdp")

        # A network change: the caller re-attaches with an offer on its socket, on ICE servers fetched again.
        caller.evaluate("() => { window.kefuTestOldConnection = window.kefuSoftphone.pc; }")
        caller.evaluate("() => window.kefuSoftphone.onState('failed')")
        caller.wait_for_function(
            "() => window.kefuSoftphone.pc !== window.kefuTestOldConnection && window.kefuSoftphone.pc.connectionState === 'connected'",
            timeout=STEP_MS,
        )
        caller.wait_for_function(CANDIDATES_ENDED_JS, arg=[caller_socket, call_id, 2], timeout=STEP_MS)
        assert wait_for_tone(caller, AGENT_HZ) == pytest.approx(AGENT_HZ, abs=15)
        calls = recorded(caller)
        [reoffer] = sent_on(calls, caller_socket, "offer")
        assert reoffer["call_id"] == call_id and "a=candidate" not in reoffer["sdp"]
        assert_each_connection_used_the_ice_servers_fetched_for_it(calls, 2)
        first, second = (fetched["ice_servers"][0]["username"] for fetched in calls["iceFetched"])
        assert first != second  # a fresh credential for the new connection
        expect(agent.locator("#call-state")).to_have_text("connected")

        caller.click("#hangup-button")
        expect(agent.locator("#call-state")).to_have_text("ended", timeout=STEP_MS)
    finally:
        for context in contexts:
            context.close()
