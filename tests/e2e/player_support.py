"""Helpers for the pages that play recordings: a real recorded call between the demo
agent (440 Hz) and a caller (1000 Hz), users with passwords, and an analyser on the
page's recording player (both parties' <audio> elements mixed, as the listener hears them)."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, Playwright, expect

from browser_support import AGENT_HZ, CALLER_HZ, STEP_MS, TONE_LEVELS_JS, LiveServer, admin_api, launch_chromium, sign_in_agent_ready, tones_heard_over


def recorded_call(server: LiveServer, demo: dict[str, str], playwright: Playwright, tone_wavs: dict[str, Path], tmp_path: Path,
                  caller_name: str = "Li Lei", seconds: float = 6.0) -> str:
    """A call the demo agent answers and hangs up after both sides heard each other for about ``seconds``
    (long enough for a player test to listen to each party in turn); returns its id."""
    contexts = [launch_chromium(playwright, tmp_path / f"{party}-call-profile", tone_wavs[party]) for party in ("agent", "caller")]
    try:
        agent, caller = (context.new_page() for context in contexts)
        sign_in_agent_ready(agent, server.url, demo)
        caller.goto(f"{server.url}/call/{demo['widget_key']}")
        caller.fill("#caller-name", caller_name)
        caller.click("#call-button")
        expect(agent.locator("#answer-button")).to_be_enabled(timeout=STEP_MS)
        agent.click("#answer-button")
        expect(caller.locator("#call-state")).to_have_text("connected", timeout=STEP_MS)
        call_id = agent.locator("#call-id").inner_text().strip()
        # The conversation: each side hears the other most of the time.
        assert tones_heard_over(agent, CALLER_HZ, seconds=seconds - 1)[CALLER_HZ] > 0.5
        assert tones_heard_over(caller, AGENT_HZ, seconds=1.0)[AGENT_HZ] > 0.5
        agent.click("#hangup-button")
        expect(caller.locator("#call-state")).to_have_text("ended", timeout=STEP_MS)
        expect(agent.locator("#agent-state")).to_have_text("available", timeout=STEP_MS)
    finally:
        for context in contexts:
            context.close()
    with admin_api(server, demo) as api:
        parties = sorted(r["party"] for r in api.get(f"/api/v1/calls/{call_id}/recordings").json())
        assert parties == ["agent", "caller"], parties
    return call_id


def user_with_password(server: LiveServer, demo: dict[str, str], *, email: str, name: str, roles: list[str], password: str) -> str:
    """A user of the demo tenant who accepted the invitation (its id)."""
    with admin_api(server, demo) as api:
        created = api.post("/api/v1/users", json={"email": email, "display_name": name, "roles": roles})
        assert created.status_code == 201, created.text
        token = created.json()["invitation_link"].split("#", 1)[1]
        accepted = api.post("/api/v1/invitations/accept", json={"token": token, "password": password})
        assert accepted.status_code == 200, accepted.text
        return str(created.json()["user"]["id"])


INSTALL_PLAYER_ANALYSER_JS = """
() => {
  if (window.kefuTestAnalyser) window.kefuTestAnalyser.context.close();
  const context = new AudioContext();
  const analyser = context.createAnalyser();
  analyser.fftSize = 8192;
  analyser.smoothingTimeConstant = 0;
  for (const audio of document.querySelectorAll(".player audio")) {
    const source = context.createMediaElementSource(audio);
    source.connect(analyser);
    source.connect(context.destination);
  }
  context.resume();
  window.kefuTestAnalyser = { context, analyser, stream: null };
}
"""

# For each tone: present (loud and near the loudest) in the player's output right now.
PLAYER_TONES_JS = """
([hzs, tolerance]) => {""" + TONE_LEVELS_JS + """
  const { peak, levels } = toneLevels(hzs, tolerance);
  return levels.map((level) => present(level, peak));
}
"""


def listen_to_player(page: Page) -> None:
    page.evaluate(INSTALL_PLAYER_ANALYSER_JS)


def wait_for_player_tones(page: Page, expected: dict[float, bool]) -> None:
    """Wait until the player's output holds exactly the tones marked True (and none marked False)."""
    hzs = list(expected)
    wanted = [expected[hz] for hz in hzs]
    page.wait_for_function(
        "([hzs, wanted]) => { const got = (" + PLAYER_TONES_JS + ")([hzs, 15]); return got.every((g, i) => g === wanted[i]); }",
        arg=[hzs, wanted], timeout=STEP_MS, polling=100,
    )


