"""Real-browser test helpers: a live Kefu server thread, headless Chromium with a tone as its microphone,
and WebAudio tone detection on ``window.kefuSoftphone.remoteStream``.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import threading
import wave
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import uvicorn
from litestar import Litestar
from playwright.sync_api import BrowserContext, Page, Playwright, expect

T = TypeVar("T")

# How long a browser step may take.
STEP_MS = 15_000

# What each party's fake microphone plays.
AGENT_HZ = 440.0
CALLER_HZ = 1000.0
SUPERVISOR_HZ = 1700.0
# A tone clear of the built-in music on hold's notes (294-587 Hz) and their
# overtones (up to 1762 Hz): where a test must tell an agent from the music.
BRIGHT_HZ = 1250.0
# The built-in music on hold's notes (kefu.webrtc.prompts.chime_loop).
MUSIC_HZ = (587.33, 493.88, 523.25, 440.0, 392.0, 293.66)

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
]


# The signing secret of the webhook endpoint of demo_server_with_stripe.
STRIPE_WEBHOOK_SECRET = "whsec_e2e_secret"


def write_tone_wav(path: Path, frequency: float, *, seconds: float = 4.0, rate: int = 48_000) -> Path:
    """A 16-bit mono WAV of a sine tone; a whole number of cycles, so Chromium's looping is seamless."""
    cycles = round(frequency * seconds)
    samples = round(cycles * rate / frequency)
    t = np.arange(samples) / rate
    signal = (0.5 * 32767 * np.sin(2 * np.pi * frequency * t)).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(signal.tobytes())
    return path


def launch_chromium(playwright: Playwright, user_data_dir: Path, microphone_wav: Path) -> BrowserContext:
    """A separate headless Chromium whose (fake) microphone plays ``microphone_wav`` in a loop."""
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium package is needed for browser tests"
    return playwright.chromium.launch_persistent_context(
        user_data_dir=str(user_data_dir),
        executable_path=chromium,
        headless=True,
        args=[*CHROMIUM_ARGS, f"--use-file-for-fake-audio-capture={microphone_wav}"],
    )


@contextlib.contextmanager
def agent_and_caller(playwright: Playwright, tmp_path: Path, tone_wavs: dict[str, Path]) -> Iterator[tuple[Page, Page]]:
    """An agent's and a caller's page, each in its own Chromium whose microphone plays its
    tone (``tone_wavs["agent"]``, ``tone_wavs["caller"]``); both browsers are closed after."""
    contexts: list[BrowserContext] = []
    try:
        contexts.append(launch_chromium(playwright, tmp_path / "agent-profile", tone_wavs["agent"]))
        contexts.append(launch_chromium(playwright, tmp_path / "caller-profile", tone_wavs["caller"]))
        yield contexts[0].new_page(), contexts[1].new_page()
    finally:
        for context in contexts:
            context.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """The real app under uvicorn on a background thread with its own event loop."""

    def __init__(self, app: Litestar, port: int) -> None:
        self.app = app
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="kefu-live-server", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._server.serve())

    def start(self, *, timeout_s: float = 30.0) -> None:
        self._thread.start()
        started = threading.Event()

        def check() -> None:
            if self._server.started:
                started.set()
            elif self._thread.is_alive():
                self._loop.call_later(0.02, check)

        self._loop.call_soon_threadsafe(check)
        if not started.wait(timeout_s):
            raise RuntimeError("the live server did not start")

    def call(self, coro: Coroutine[Any, Any, T], *, timeout_s: float = 20.0) -> T:
        """Run a coroutine on the server's event loop (where the media plane lives)."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout_s)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(30)


# Plays the softphone's remote stream (Chromium pulls remote WebRTC audio only
# into a playing media element) and analyses it with an AnalyserNode.
INSTALL_ANALYSER_JS = """
() => {
  const stream = window.kefuSoftphone.remoteStream;
  if (window.kefuTestAnalyser) window.kefuTestAnalyser.context.close();
  let audio = document.querySelector("audio#kefu-test-remote");
  if (!audio) {
    audio = document.createElement("audio");
    audio.id = "kefu-test-remote";
    audio.autoplay = true;
    document.body.appendChild(audio);
  }
  audio.srcObject = stream;
  audio.play().catch(() => {});
  const context = new AudioContext();
  const analyser = context.createAnalyser();
  analyser.fftSize = 8192;
  analyser.smoothingTimeConstant = 0;
  context.createMediaStreamSource(stream).connect(analyser);
  context.resume();
  window.kefuTestAnalyser = { context, analyser, stream };
}
"""

# Listens to the softphone's current remote stream (a re-offer makes a new one).
ANALYSER_CURRENT_JS = """
() => Boolean(window.kefuTestAnalyser) && window.kefuTestAnalyser.stream === window.kefuSoftphone.remoteStream
"""

# The strongest frequency of what the page hears right now, if it is loud and
# within `tolerance` Hz of `hz`; false otherwise (so wait_for_function polls).
TONE_DETECTED_JS = """
([hz, tolerance]) => {
  const { context, analyser } = window.kefuTestAnalyser;
  const bins = new Float32Array(analyser.frequencyBinCount);
  analyser.getFloatFrequencyData(bins);
  let peak = 1;
  for (let i = 2; i < bins.length; i++) if (bins[i] > bins[peak]) peak = i;
  const frequency = peak * context.sampleRate / analyser.fftSize;
  if (bins[peak] < -60 || Math.abs(frequency - hz) > tolerance) return false;
  return { frequency, level: bins[peak] };
}
"""

# Each tone's level (dB, the strongest bin within `tolerance` Hz) and the spectrum's peak level
# (the body of a function, pasted into the checks below).
TONE_LEVELS_JS = """
  const toneLevels = (hzs, tolerance) => {
    const { context, analyser } = window.kefuTestAnalyser;
    const bins = new Float32Array(analyser.frequencyBinCount);
    analyser.getFloatFrequencyData(bins);
    const width = context.sampleRate / analyser.fftSize;
    let peak = -Infinity;
    for (let i = 2; i < bins.length; i++) peak = Math.max(peak, bins[i]);
    const levels = hzs.map((hz) => {
      let level = -Infinity;
      for (let i = Math.max(2, Math.floor((hz - tolerance) / width)); i <= Math.ceil((hz + tolerance) / width); i++) level = Math.max(level, bins[i]);
      return level;
    });
    return { peak, levels };
  };
  const present = (level, peak) => level > -60 && level > peak - 20;
"""

# True once every tone in `hzs` is present: loud, and within 20 dB of the loudest sound.
TONES_PRESENT_JS = """
([hzs, tolerance]) => {""" + TONE_LEVELS_JS + """
  const { peak, levels } = toneLevels(hzs, tolerance);
  return levels.every((level) => present(level, peak)) ? levels : false;
}
"""

# Samples the tones every 50 ms for `ms` (an observation window of live audio):
# for each tone, in how many samples it was present, and how many samples there were.
OBSERVE_TONES_JS = """
async ([hzs, tolerance, ms]) => {""" + TONE_LEVELS_JS + """
  const counts = hzs.map(() => 0);
  let samples = 0;
  const end = performance.now() + ms;
  while (performance.now() < end) {
    const { peak, levels } = toneLevels(hzs, tolerance);
    levels.forEach((level, i) => { if (present(level, peak)) counts[i] += 1; });
    samples += 1;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { counts, samples };
}
"""


def _listen(page: Page) -> None:
    """Analyse what the page's softphone hears now (again after a re-offer replaced its stream)."""
    page.wait_for_function(
        "() => Boolean(window.kefuSoftphone) && window.kefuSoftphone.remoteStream.getAudioTracks().length > 0", timeout=STEP_MS, polling=50
    )
    if not page.evaluate(ANALYSER_CURRENT_JS):
        page.evaluate(INSTALL_ANALYSER_JS)


def wait_for_tone(page: Page, hz: float, *, timeout_ms: float = 15_000) -> float:
    """Wait until the page hears ``hz`` as its loudest frequency; return the frequency found."""
    _listen(page)
    handle = page.wait_for_function(TONE_DETECTED_JS, arg=[hz, 15], timeout=timeout_ms, polling=100)
    return float(handle.json_value()["frequency"])


def wait_for_any_tone(page: Page, hzs: tuple[float, ...], *, timeout_ms: float = 15_000) -> float:
    """Wait until the loudest frequency the page hears is one of ``hzs``; return it."""
    _listen(page)
    any_of = "([hzs, tolerance]) => { for (const hz of hzs) { const found = (" + TONE_DETECTED_JS + ")([hz, tolerance]); if (found) return found; } return false; }"
    handle = page.wait_for_function(any_of, arg=[list(hzs), 12], timeout=timeout_ms, polling=100)
    return float(handle.json_value()["frequency"])


def wait_for_tones(page: Page, *hzs: float, timeout_ms: float = 15_000) -> None:
    """Wait until the page hears every tone in ``hzs`` at once (each loud and near the loudest)."""
    _listen(page)
    page.wait_for_function(TONES_PRESENT_JS, arg=[list(hzs), 15], timeout=timeout_ms, polling=100)


def wait_until_gone(page: Page, hz: float, *, timeout_ms: float = 5_000) -> None:
    """Wait until ``hz`` is no longer present in what the page hears (audio already in flight has drained)."""
    _listen(page)
    gone = "([hzs, tolerance]) => {" + TONE_LEVELS_JS + """
  const { peak, levels } = toneLevels(hzs, tolerance);
  return !present(levels[0], peak);
}"""
    page.wait_for_function(gone, arg=[[hz], 15], timeout=timeout_ms, polling=50)


def tones_heard_over(page: Page, *hzs: float, seconds: float = 1.5) -> dict[float, float]:
    """For each tone, the share of a ``seconds``-long observation window in which the page heard it."""
    _listen(page)
    result = page.evaluate(OBSERVE_TONES_JS, [list(hzs), 15, seconds * 1000])
    return {hz: count / max(1, result["samples"]) for hz, count in zip(hzs, result["counts"], strict=True)}


# --- the pages, step by step ------------------------------------------------------------------


def sign_in(page: Page, url: str, path: str, tenant: str, email: str, password: str) -> None:
    page.goto(f"{url}{path}")
    page.fill("#tenant", tenant)
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("#login-button")


def sign_in_agent_ready(page: Page, url: str, demo: dict[str, str], *, email: str | None = None, password: str | None = None) -> None:
    """The demo agent (or another agent of the demo tenant) on the desktop, available."""
    sign_in(page, url, "/agent/", demo["tenant"], email or demo["agent_email"], password or demo["agent_password"])
    expect(page.locator("#ready-button")).to_be_visible(timeout=STEP_MS)
    page.click("#ready-button")
    expect(page.locator("#agent-state")).to_have_text("available", timeout=STEP_MS)


def connect_call(agent: Page, caller: Page, url: str, demo: dict[str, str], caller_name: str = "Li Lei") -> str:
    """A caller calls from the demo caller page, the (ready) agent answers; returns the call id once both are connected."""
    caller.goto(f"{url}/call/{demo['widget_key']}")
    caller.fill("#caller-name", caller_name)
    caller.click("#call-button")
    expect(agent.locator("#answer-button")).to_be_enabled(timeout=STEP_MS)
    agent.click("#answer-button")
    expect(agent.locator("#call-state")).to_have_text("connected", timeout=STEP_MS)
    expect(caller.locator("#call-state")).to_have_text("connected", timeout=STEP_MS)
    return agent.locator("#call-id").inner_text().strip()


@contextlib.contextmanager
def admin_api(server: LiveServer, demo: dict[str, str]) -> Iterator[httpx.Client]:
    """The demo tenant's admin on the live server's API, to read the call log."""
    with httpx.Client(base_url=server.url, timeout=10) as api:
        login = api.post("/api/v1/auth/login", json={"tenant": demo["tenant"], "email": demo["admin_email"], "password": demo["admin_password"]})
        assert login.status_code == 200, login.text
        api.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        yield api


def add_agent(server: LiveServer, demo: dict[str, str], *, email: str, display_name: str, password: str,
              queue_name: str | None = None) -> dict[str, str]:
    """A second agent of the demo tenant (through the admin API), alone in a new queue when ``queue_name`` is given.

    Returns ``agent_id`` and, with a queue, ``queue_id``.  The demo queue keeps
    only the demo agent, so the caller page's calls still ring there first.
    """
    with admin_api(server, demo) as api:
        agent = api.post("/api/v1/agents", json={"email": email, "display_name": display_name, "password": password})
        assert agent.status_code == 201, agent.text
        created = {"agent_id": agent.json()["id"]}
        if queue_name is not None:
            queue = api.post("/api/v1/queues", json={"name": queue_name})
            assert queue.status_code == 201, queue.text
            members = api.put(f"/api/v1/queues/{queue.json()['id']}/members", json={"agent_ids": [created["agent_id"]]})
            assert members.status_code == 200, members.text
            created["queue_id"] = queue.json()["id"]
    return created
