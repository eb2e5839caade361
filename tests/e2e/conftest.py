"""Browser fixtures: Playwright, tone WAVs for the fake microphones, a live Kefu server on a fresh data folder."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from browser_support import AGENT_HZ, CALLER_HZ, LiveServer, free_port, write_tone_wav
from playwright.sync_api import Playwright, sync_playwright

from kefu.platform.app import create_app
from kefu.platform.db import migrate
from kefu.platform.runtime import Runtime
from kefu.platform.settings import load_settings

# Recording checks are shared with the media-plane tests.
sys.path.insert(0, str(Path(__file__).parents[1] / "webrtc"))


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def tone_wavs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("tones")
    return {
        "agent": write_tone_wav(folder / "agent-440hz.wav", AGENT_HZ),
        "caller": write_tone_wav(folder / "caller-1000hz.wav", CALLER_HZ),
    }


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    """``kefu serve`` on the embedded default (SQLite, fresh data folder), on a free port."""
    port = free_port()
    settings = load_settings({"KEFU_DATA_DIR": str(tmp_path / "kefu-data"), "KEFU_PORT": str(port)})
    # Playwright's sync API keeps an event loop running on this thread, so
    # anything that runs its own loop (Alembic's async env) gets a thread.
    with ThreadPoolExecutor(1) as thread:
        thread.submit(migrate.upgrade, settings.db.migration_url).result()
    server = LiveServer(create_app(runtime=Runtime.build(settings)), port)
    server.start()
    try:
        yield server
    finally:
        server.stop()
