"""The guard on forwarding without decoding (DESIGN.md, "Media plane"): are aiortc's internals where we hook them?

Legs forward Opus and PCMU at the RTP level (``kefu.webrtc.fastpath``):
packets are never decoded or re-encoded, and never pass through aiortc's
receiver, jitter buffer, decoder thread or sender.  That path shadows a few
private aiortc and aioice attributes, so aiortc and aioice are pinned in
pyproject.toml and ``check_aiortc_internals`` (run by ``MediaPlane.start()``,
asserted by ``tests/webrtc/test_internals.py``) refuses to start on another
version, or when an internal we rely on has moved, instead of letting calls
go silent.
"""

from __future__ import annotations

import aioice
import aiortc

from kefu.webrtc import fastpath

SUPPORTED_AIORTC = "1.16.0"
SUPPORTED_AIOICE = "0.13.0"


def check_aiortc_internals() -> None:
    """Raise RuntimeError if aiortc / aioice are not the versions, or lack the internals, the media path hooks."""
    for name, found, supported in (
        ("aiortc", aiortc.__version__, SUPPORTED_AIORTC),
        ("aioice", aioice.__version__, SUPPORTED_AIOICE),
    ):
        if found != supported:
            raise RuntimeError(
                f"kefu.webrtc.fastpath was written against {name} {supported}, found {found}: "
                "re-check the hooks it lists before upgrading"
            )
    fastpath.check_internals()
