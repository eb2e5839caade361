"""Historical reports: /api/v1/reports… (docs/reports.md)."""

from __future__ import annotations

from typing import Any

from kefu.platform.runtime import Runtime


def install(runtime: Runtime) -> list[Any]:
    return []
