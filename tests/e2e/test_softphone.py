"""softphone.js in real headless Chromium against the media plane, without the control plane.

Two separate browsers (agent: 440 Hz microphone, caller: 1000 Hz) each make a
leg; the test bridges them on the server and each page must hear the other's
tone; each recording must hold its own party's tone.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from browser_support import AGENT_HZ, CALLER_HZ, LiveServer, launch_chromium, wait_for_tone
from media_support import decode_recording, steady_frequency
from playwright.sync_api import Page, Playwright

from kefu.webrtc.media import MediaPlane

OPEN_LEG_JS = """
async () => {
  const { Softphone } = await import("/static/webrtc/softphone.js");
  window.kefuStates = [];
  window.kefuSoftphone = new Softphone({ iceServers: [], onState: (state) => window.kefuStates.push(state) });
  return await window.kefuSoftphone.createOffer();
}
"""


@pytest.mark.browser
def test_two_browsers_bridged_by_the_media_plane_hear_each_other_and_are_recorded(
    live_server: LiveServer, playwright: Playwright, tone_wavs: dict[str, Path], tmp_path: Path
) -> None:
    media: MediaPlane = live_server.app.state.runtime.components["media"]
    tenant_id, call_id = uuid.uuid4(), uuid.uuid4()
    pages: dict[str, Page] = {}
    contexts = [launch_chromium(playwright, tmp_path / f"{party}-profile", tone_wavs[party]) for party in ("agent", "caller")]
    try:
        for party, context in zip(("agent", "caller"), contexts):
            page = pages[party] = context.new_page()
            page.goto(f"{live_server.url}/health")
            offer = page.evaluate(OPEN_LEG_JS)
            assert "a=candidate:" in offer  # non-trickle: gathered before the offer is returned
            answer = live_server.call(
                media.answer_leg(tenant_id=tenant_id, call_id=call_id, party=party, offer_sdp=offer)  # type: ignore[arg-type]
            )
            assert "a=candidate:" in answer
            page.evaluate("(sdp) => window.kefuSoftphone.acceptAnswer(sdp)", answer)
        for page in pages.values():
            page.wait_for_function("() => window.kefuStates.includes('connected')", timeout=15_000)

        live_server.call(media.bridge(tenant_id=tenant_id, call_id=call_id))

        assert wait_for_tone(pages["agent"], CALLER_HZ) == pytest.approx(CALLER_HZ, abs=15)
        assert wait_for_tone(pages["caller"], AGENT_HZ) == pytest.approx(AGENT_HZ, abs=15)

        pages["caller"].evaluate("() => window.kefuSoftphone.hangup()")
        files = live_server.call(media.end_call(tenant_id=tenant_id, call_id=call_id))
    finally:
        for context in contexts:
            context.close()

    assert sorted(f.party for f in files) == ["agent", "caller"]
    for recorded in files:
        samples = decode_recording(media.settings.recordings_dir / recorded.relative_path)
        assert len(samples) / 48 == pytest.approx(recorded.duration_ms, abs=30)
        assert len(samples) >= 9_600  # both tones were heard, so both parties spoke for a while
        expected = AGENT_HZ if recorded.party == "agent" else CALLER_HZ
        assert steady_frequency(samples, seconds=1.0, window_s=0.2) == pytest.approx(expected, abs=6)
