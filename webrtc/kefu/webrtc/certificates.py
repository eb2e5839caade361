"""One DTLS certificate per media node at a time, instead of one per leg.

aiortc 1.16 generates a fresh EC key and self-signed certificate in every
``RTCPeerConnection()`` (``RTCCertificate.generateCertificate``) and takes no
certificate from its caller; on a busy node that was about a tenth of its CPU.
Browsers reuse their certificates across connections too (RFC 8827 lets an
endpoint keep one; the keys of each session still come from ECDHE), so a node
hands every leg the certificate it made last, and makes a new one every
``CERTIFICATE_LIFETIME_S`` (aiortc's certificates are valid 30 days).

``reuse_dtls_certificates()`` installs this process-wide (idempotent);
``check_internals()`` fails if aiortc stops creating its certificate there.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import Any

from aiortc import RTCPeerConnection
from aiortc.rtcdtlstransport import RTCCertificate

CERTIFICATE_LIFETIME_S = 3600.0


def check_internals() -> None:
    """Raise RuntimeError unless ``RTCPeerConnection()`` takes its certificate from ``RTCCertificate.generateCertificate``."""
    if "RTCCertificate.generateCertificate()" not in inspect.getsource(RTCPeerConnection.__init__):
        raise RuntimeError("aiortc's RTCPeerConnection no longer calls RTCCertificate.generateCertificate(): re-check kefu.webrtc.certificates")


def reusing(generate: Callable[[], Any], *, lifetime_s: float = CERTIFICATE_LIFETIME_S,
            clock: Callable[[], float] = time.monotonic) -> Callable[[], Any]:
    """``generate`` called at most once per ``lifetime_s``; the certificate in between."""
    current: list[tuple[float, Any]] = []

    def certificate() -> Any:
        now = clock()
        if not current or now >= current[0][0]:
            current[:] = [(now + lifetime_s, generate())]
        return current[0][1]

    return certificate


def reuse_dtls_certificates() -> None:
    """Every ``RTCPeerConnection`` of this process gets the node's current certificate."""
    if getattr(RTCCertificate.generateCertificate, "kefu_reused", False):
        return
    check_internals()
    fresh = RTCCertificate.generateCertificate  # bound to the class: a new key and certificate each call
    certificate = reusing(fresh)

    def generateCertificate(cls: type[RTCCertificate]) -> RTCCertificate:  # noqa: N802 (aiortc's name)
        return certificate()

    generateCertificate.kefu_reused = True  # type: ignore[attr-defined]
    RTCCertificate.generateCertificate = classmethod(generateCertificate)  # type: ignore[method-assign,assignment]
