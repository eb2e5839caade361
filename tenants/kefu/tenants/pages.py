"""Pages (filled in below)."""
from typing import Any


def route_handlers() -> list[Any]:
    return []
