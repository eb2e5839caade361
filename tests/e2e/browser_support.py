"""Real-browser test helpers: a live Kefu server thread, headless Chromium with a tone as its microphone,
and WebAudio tone detection on ``window.kefuSoftphone.remoteStream``.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import threading
import wave
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import uvicorn
from litestar import Litestar
from playwright.sync_api import BrowserContext, Page, Playwright

T = TypeVar("T")

# What each party's fake microphone plays.
AGENT_HZ = 440.0
CALLER_HZ = 1000.0

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
  window.kefuTestAnalyser = { context, analyser };
}
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


def wait_for_tone(page: Page, hz: float, *, timeout_ms: float = 15_000) -> float:
    """Wait until the page hears ``hz`` as its loudest frequency; return the frequency found."""
    if not page.evaluate("() => Boolean(window.kefuTestAnalyser)"):
        page.evaluate(INSTALL_ANALYSER_JS)
    handle = page.wait_for_function(TONE_DETECTED_JS, arg=[hz, 15], timeout=timeout_ms, polling=100)
    return float(handle.json_value()["frequency"])
