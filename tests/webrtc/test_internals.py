"""The aiortc / aioice internals the media plane hooks into are still where it expects them.

These fail (rather than calls silently losing audio) when an upgrade moves them.
"""

from __future__ import annotations

import inspect

import aioice
import aioice.ice
import pytest

from kefu.platform.settings import Settings
from kefu.webrtc import ice
from kefu.webrtc.media import MediaPlane
from kefu.webrtc.passthrough import check_aiortc_internals


def test_aioice_gathers_host_candidates_through_get_host_addresses() -> None:
    source = inspect.getsource(aioice.ice.Connection.gather_candidates)
    assert "get_host_addresses(" in source
    assert list(inspect.signature(aioice.ice.get_host_addresses).parameters) == ["use_ipv4", "use_ipv6"]


async def test_loopback_host_candidates_are_gathered_once_allowed(media: MediaPlane) -> None:
    assert media.settings.media_allow_loopback
    assert "127.0.0.1" in aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False)
    connection = aioice.Connection(ice_controlling=False, use_ipv6=False)
    try:
        await connection.gather_candidates()
        assert "127.0.0.1" in [c.host for c in connection.local_candidates]
    finally:
        await connection.close()


def test_allowing_loopback_twice_wraps_aioice_once(media_settings: Settings) -> None:
    ice.allow_loopback_host_candidates()
    wrapped = aioice.ice.get_host_addresses
    ice.allow_loopback_host_candidates()
    assert aioice.ice.get_host_addresses is wrapped
    assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False).count("127.0.0.1") == 1


def test_the_receiver_hook_matches_the_installed_aiortc() -> None:
    check_aiortc_internals()


def test_the_receiver_hook_refuses_an_aiortc_it_was_not_written_for(monkeypatch: pytest.MonkeyPatch) -> None:
    import aiortc

    monkeypatch.setattr(aiortc, "__version__", "9.9.9")
    with pytest.raises(RuntimeError, match="aiortc 1.16.0"):
        check_aiortc_internals()
