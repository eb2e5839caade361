"""A leg against real Chromium: trickled candidates and RFC 4733 key presses from RTCDTMFSender.

Chromium offers telephone-event (aiortc alone would drop it from the answer
and Chromium's ``canInsertDTMF`` would stay false).  The page trickles its
candidates after the offer, the way browsers do by default.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from aiortc import RTCConfiguration
from browser_support import LiveServer, launch_chromium
from playwright.sync_api import Playwright

from kefu.webrtc.leg import Leg
from kefu.webrtc.rtp import MediaFrame

OFFER_WITHOUT_WAITING_FOR_CANDIDATES_JS = """
async () => {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  const pc = new RTCPeerConnection({ iceServers: [] });
  window.testPc = pc;
  window.testCandidates = [];
  window.testGathered = false;
  pc.onicecandidate = (event) => {
    if (event.candidate) {
      window.testCandidates.push({
        candidate: event.candidate.candidate, sdpMid: event.candidate.sdpMid, sdpMLineIndex: event.candidate.sdpMLineIndex,
      });
    } else {
      window.testGathered = true;
    }
  };
  window.testSender = pc.addTrack(stream.getAudioTracks()[0], stream);
  await pc.setLocalDescription(await pc.createOffer());
  return pc.localDescription.sdp;  // gathering has only just started
}
"""

DIGITS = "5#"
EVENT_CODES = {5: "5", 11: "#"}


class Heard:
    def __init__(self) -> None:
        self.events: list[tuple[bytes, int]] = []
        self.frames = 0

    def deliver(self, source: object, packet: MediaFrame) -> None:
        self.frames += 1


def wait_until(condition, timeout_s: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    """Poll a condition that depends on the browser (a real external process)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.browser
def test_chromium_trickles_its_candidates_and_its_dtmf_reaches_the_telephone_event_hook(
    live_server: LiveServer, playwright: Playwright, tone_wavs: dict[str, Path], tmp_path: Path
) -> None:
    heard = Heard()

    async def new_leg() -> Leg:
        leg = Leg(party="caller", configuration=RTCConfiguration(iceServers=[]), on_closed=lambda leg: None)
        leg.sinks = (heard,)
        return leg

    leg = live_server.call(new_leg())
    context = launch_chromium(playwright, tmp_path / "profile", tone_wavs["caller"])
    try:
        page = context.new_page()
        page.goto(f"{live_server.url}/health")
        offer = page.evaluate(OFFER_WITHOUT_WAITING_FOR_CANDIDATES_JS)
        assert "a=candidate:" not in offer and "telephone-event/8000" in offer

        answer = live_server.call(leg.answer(offer, timeout_s=10))
        leg.on_telephone_event = lambda payload, timestamp: heard.events.append((payload, timestamp))
        assert leg.codec == "opus"
        [telephone_event] = [line for line in answer.splitlines() if "telephone-event" in line]
        assert telephone_event.endswith(" telephone-event/8000")
        page.evaluate("(sdp) => window.testPc.setRemoteDescription({ type: 'answer', sdp })", answer)

        wait_until(lambda: page.evaluate("() => window.testGathered"))
        candidates = page.evaluate("() => window.testCandidates")
        assert candidates
        for candidate in candidates:
            live_server.call(leg.add_ice_candidate(candidate["candidate"], candidate["sdpMid"], candidate["sdpMLineIndex"]))
        live_server.call(leg.add_ice_candidate(None, None, None))
        wait_until(lambda: page.evaluate("() => window.testPc.connectionState") == "connected")
        wait_until(lambda: heard.frames > 10)  # the microphone's Opus arrives as audio

        assert page.evaluate("() => window.testSender.dtmf.canInsertDTMF")
        page.evaluate(f"() => window.testSender.dtmf.insertDTMF('{DIGITS}', 100, 70)")

        def ended_digits() -> str:
            ends = [(payload[0], timestamp) for payload, timestamp in heard.events if payload[1] & 0x80]
            unique = list(dict.fromkeys(ends))  # RFC 4733 repeats the end packet
            return "".join(EVENT_CODES.get(code, "?") for code, _ in unique)

        wait_until(lambda: ended_digits() == DIGITS)
    finally:
        context.close()
        live_server.call(leg.close())
    assert leg.connection_state == "closed"
