"""Media-plane fixtures: settings on a fresh data folder and a started ``MediaPlane``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kefu.platform.settings import Settings, load_settings
from kefu.webrtc.media import MediaPlane


@pytest.fixture
def media_settings(tmp_path: Path) -> Settings:
    return load_settings({"KEFU_DATA_DIR": str(tmp_path / "data"), "KEFU_MEDIA_ALLOW_LOOPBACK": "1"})


@pytest.fixture
async def media(media_settings: Settings) -> AsyncIterator[MediaPlane]:
    plane = MediaPlane(media_settings)
    await plane.start()
    try:
        yield plane
    finally:
        await plane.stop()
