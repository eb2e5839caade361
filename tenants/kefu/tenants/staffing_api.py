"""Staffing: the Erlang C calculator over HTTP (docs/staffing.md)."""

from __future__ import annotations

from typing import Any

from kefu.platform.runtime import Runtime


def install(runtime: Runtime) -> list[Any]:
    return []
