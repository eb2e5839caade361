"""The live wallboard: snapshots per tenant, queue and team pushed over WebSocket (docs/wallboard.md)."""

from __future__ import annotations

from typing import Any

from kefu.platform.runtime import Runtime


def install(runtime: Runtime) -> list[Any]:
    return []
