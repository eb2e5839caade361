"""ICE configuration for the server's peers: explicit ICE servers, loopback host candidates.

aiortc falls back to a public STUN server when no ``iceServers`` are given,
so the configuration is always explicit (empty on loopback and single-host
set-ups).  aioice leaves 127.0.0.1 out of its host candidates; for
single-machine set-ups and tests (``settings.media_allow_loopback``) we wrap
``aioice.ice.get_host_addresses`` so it adds it back.  That function is an
aioice internal: ``tests/webrtc/test_ice.py`` fails if it moves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import aioice.ice
from aiortc import RTCConfiguration, RTCIceServer

LOOPBACK_V4 = "127.0.0.1"


def rtc_configuration(ice_servers: Iterable[str]) -> RTCConfiguration:
    """One ``RTCIceServer`` per configured URL (``stun:host:port``, ``turn:host:port``)."""
    return RTCConfiguration(iceServers=[RTCIceServer(urls=url) for url in ice_servers])


def allow_loopback_host_candidates() -> None:
    """Make aioice offer 127.0.0.1 as a host candidate too (idempotent, process-wide)."""
    current: Callable[[bool, bool], list[str]] = aioice.ice.get_host_addresses
    if getattr(current, "kefu_loopback", False):
        return

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        addresses = current(use_ipv4, use_ipv6)
        if use_ipv4 and LOOPBACK_V4 not in addresses:
            addresses.append(LOOPBACK_V4)
        return addresses

    get_host_addresses.kefu_loopback = True  # type: ignore[attr-defined]
    get_host_addresses.kefu_wrapped = current  # type: ignore[attr-defined]
    aioice.ice.get_host_addresses = get_host_addresses
