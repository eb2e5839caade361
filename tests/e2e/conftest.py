"""Browser fixtures: Playwright, tone WAVs for the fake microphones, a live Kefu server on a fresh data folder."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from browser_support import STRIPE_WEBHOOK_SECRET, AGENT_HZ, BRIGHT_HZ, CALLER_HZ, SUPERVISOR_HZ, LiveServer, free_port, write_tone_wav
from playwright.sync_api import Playwright, sync_playwright

from kefu.platform.app import create_app
from kefu.platform.db import migrate
from kefu.platform.runtime import Runtime
from kefu.platform.settings import Settings, load_settings

# Recording checks are shared with the media-plane tests.
sys.path.insert(0, str(Path(__file__).parents[1] / "webrtc"))


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    # Module scope, not session: the sync API keeps an event loop running in this
    # thread while it is open, which would break every asyncio test run after it.
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def tone_wavs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("tones")
    return {
        "agent": write_tone_wav(folder / "agent-440hz.wav", AGENT_HZ),
        "caller": write_tone_wav(folder / "caller-1000hz.wav", CALLER_HZ),
        "supervisor": write_tone_wav(folder / "supervisor-1700hz.wav", SUPERVISOR_HZ),
        "bright": write_tone_wav(folder / "bright-1250hz.wav", BRIGHT_HZ),
    }


def _start_live_server(data_dir: Path, *, demo: bool, env: dict[str, str] | None = None) -> tuple[LiveServer, dict[str, str]]:
    """What ``kefu serve [--demo]`` does on the embedded default (SQLite), on a free port, with ``env`` added."""
    port = free_port()
    settings = load_settings({"KEFU_DATA_DIR": str(data_dir), "KEFU_PORT": str(port), **(env or {})})
    # Playwright's sync API keeps an event loop running on this thread, so
    # anything that runs its own loop (Alembic's async env, the demo loader)
    # runs on a thread of its own.
    with ThreadPoolExecutor(1) as thread:
        thread.submit(migrate.upgrade, settings.db.migration_url).result()
        info = thread.submit(asyncio.run, _load_demo(settings)).result() if demo else {}
    server = LiveServer(create_app(runtime=Runtime.build(settings)), port)
    server.start()
    return server, info


async def _load_demo(settings: Settings) -> dict[str, str]:
    from kefu.tenants.demo import load_demo

    runtime = Runtime.build(settings)
    try:
        return dict(await load_demo(runtime))
    finally:
        await runtime.db.dispose()


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    """A fresh Kefu (no demo data) on a free port."""
    server, _ = _start_live_server(tmp_path / "kefu-data", demo=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def demo_server(tmp_path: Path) -> Iterator[tuple[LiveServer, dict[str, str]]]:
    """A fresh Kefu with the demo tenant loaded (``kefu serve --demo``); yields the server and the demo log-ins."""
    server, info = _start_live_server(tmp_path / "kefu-data", demo=True)
    try:
        yield server, info
    finally:
        server.stop()


# A TURN server nobody runs: the API hands out its URL with a credential, which the pages must
# pass to their peer connections; connecting needs only the loopback host candidates.
UNUSED_TURN_URL = f"turn:127.0.0.1:{free_port()}?transport=udp"


@pytest.fixture
def demo_server_with_turn(tmp_path: Path) -> Iterator[tuple[LiveServer, dict[str, str]]]:
    """``demo_server`` whose ICE-server routes answer a TURN entry with a credential (KEFU_TURN_URLS, KEFU_TURN_SECRET)."""
    env = {"KEFU_TURN_URLS": UNUSED_TURN_URL, "KEFU_TURN_SECRET": "e2e-turn-secret"}
    server, info = _start_live_server(tmp_path / "kefu-data", demo=True, env=env)
    try:
        yield server, info
    finally:
        server.stop()


@pytest.fixture
def demo_server_with_stripe(tmp_path: Path) -> Iterator[tuple[LiveServer, dict[str, str], Any]]:
    """``demo_server`` billing through the local server speaking Stripe's API (tests/billing/fake_stripe.py);
    yields the server, the demo log-ins and that Stripe server (its webhook secret: ``STRIPE_WEBHOOK_SECRET``)."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "billing"))
    from fake_stripe import FakeStripe

    with FakeStripe(api_key="sk_test_kefu") as stripe_server:
        env = {"KEFU_STRIPE_API_KEY": "sk_test_kefu", "KEFU_STRIPE_WEBHOOK_SECRET": STRIPE_WEBHOOK_SECRET, "KEFU_STRIPE_API_BASE": stripe_server.url}
        server, info = _start_live_server(tmp_path / "kefu-data", demo=True, env=env)
        try:
            yield server, info, stripe_server
        finally:
            server.stop()

