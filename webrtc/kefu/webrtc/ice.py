"""ICE configuration for the server's peers: explicit ICE servers, loopback host candidates.

aiortc falls back to a public STUN server when no ``iceServers`` are given,
so the configuration is always explicit (empty on loopback and single-host
set-ups).  aioice leaves 127.0.0.1 out of its host candidates; for
single-machine set-ups and tests (``settings.media_allow_loopback``) we wrap
``aioice.ice.get_host_addresses`` so it adds it back; and every media plane makes it
remember the host's addresses for ``HOST_ADDRESSES_TTL_S`` instead of enumerating the
interfaces for each leg.  That function is an aioice internal:
``tests/webrtc/test_internals.py`` fails if it moves.

Browsers may trickle their candidates after the offer; ``parse_candidate``
reads one as ``RTCIceCandidate.candidate`` gives it.  Our own answer stays
non-trickle (aiortc gathers before answering).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import aioice.ice
from aiortc import RTCConfiguration, RTCIceCandidate, RTCIceServer
from aiortc.sdp import candidate_from_sdp

LOOPBACK_V4 = "127.0.0.1"


def rtc_configuration(ice_servers: Iterable[str]) -> RTCConfiguration:
    """One ``RTCIceServer`` per configured URL (``stun:host:port``, ``turn:host:port``)."""
    return RTCConfiguration(iceServers=[RTCIceServer(urls=url) for url in ice_servers])


# How long a media node reuses the host addresses it enumerated (every leg gathers its host
# candidates; enumerating the interfaces each time cost 5-9 % of a busy node's CPU).
HOST_ADDRESSES_TTL_S = 10.0


def cached_host_addresses(
    source: Callable[[bool, bool], list[str]], *, ttl_s: float = HOST_ADDRESSES_TTL_S, clock: Callable[[], float] = time.monotonic,
) -> Callable[[bool, bool], list[str]]:
    """``source`` (aioice's ``get_host_addresses``) asked at most once per ``ttl_s`` for each
    (IPv4, IPv6) choice; every caller gets its own copy of the list."""
    remembered: dict[tuple[bool, bool], tuple[float, list[str]]] = {}

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        key, now = (use_ipv4, use_ipv6), clock()
        known = remembered.get(key)
        if known is None or now >= known[0]:
            known = remembered[key] = (now + ttl_s, list(source(use_ipv4, use_ipv6)))
        return list(known[1])

    return get_host_addresses


def remember_host_addresses() -> None:
    """Make aioice enumerate the host's addresses at most every ``HOST_ADDRESSES_TTL_S``
    (idempotent, process-wide; an interface that appears is offered from the next refresh)."""
    current: Callable[[bool, bool], list[str]] = aioice.ice.get_host_addresses
    if getattr(current, "kefu_cached", False):
        return
    cached = cached_host_addresses(current)
    cached.kefu_cached = True  # type: ignore[attr-defined]
    cached.kefu_wrapped = current  # type: ignore[attr-defined]
    aioice.ice.get_host_addresses = cached


def allow_loopback_host_candidates() -> None:
    """Make aioice offer 127.0.0.1 as a host candidate too (idempotent, process-wide)."""
    current: Callable[[bool, bool], list[str]] = aioice.ice.get_host_addresses
    if getattr(current, "kefu_loopback", False) or getattr(getattr(current, "kefu_wrapped", None), "kefu_loopback", False):
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
