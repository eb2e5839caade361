"""ICE configuration for the server's peers: explicit ICE servers, loopback host candidates.

aiortc falls back to a public STUN server when no ``iceServers`` are given,
so the configuration is always explicit (empty on loopback and single-host
set-ups).  aioice leaves 127.0.0.1 out of its host candidates; for
single-machine set-ups and tests (``settings.media_allow_loopback``) we wrap
``aioice.ice.get_host_addresses`` so it adds it back.  That function is an
aioice internal: ``tests/webrtc/test_internals.py`` fails if it moves.

Browsers may trickle their candidates after the offer; ``parse_candidate``
reads one as ``RTCIceCandidate.candidate`` gives it.  Our own answer stays
non-trickle (aiortc gathers before answering).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import aioice.ice
from aiortc import RTCConfiguration, RTCIceCandidate, RTCIceServer
from aiortc.sdp import candidate_from_sdp

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


def parse_candidate(candidate: str | None, sdp_mid: str | None, sdp_mline_index: int | None) -> RTCIceCandidate | None:
    """A trickled candidate as the browser gives it (``RTCIceCandidate.candidate``), or None for the end of candidates.

    Accepts ``candidate:...`` with or without the ``a=`` prefix; None or an
    empty string means end-of-candidates.  Without a media id or index the
    candidate is for the first (the only) media section.  Raises
    ``ValueError`` for a line that is not a candidate.
    """
    if candidate is None or not candidate.strip():
        return None
    text = candidate.strip()
    text = text.removeprefix("a=")
    text = text.removeprefix("candidate:")
    try:
        parsed = candidate_from_sdp(text)
    except (AssertionError, ValueError, IndexError):
        raise ValueError("the ICE candidate is not a candidate line") from None
    if parsed.protocol.lower() not in ("udp", "tcp") or not 0 < parsed.port < 65536:
        raise ValueError("the ICE candidate has no usable transport address")
    parsed.sdpMid = sdp_mid
    parsed.sdpMLineIndex = 0 if sdp_mid is None and sdp_mline_index is None else sdp_mline_index
    return parsed
