"""The cross-tenant harness's entries for the reporting routes (merged by isolation_registry.py;
the same dictionaries, with the same meaning, as there)."""

from __future__ import annotations

from typing import Any

ID_FACTORIES: dict[str, Any] = {}
ROUTE_ROLES: dict[str, str] = {}
WRITE_BODIES: dict[tuple[str, str], dict[str, Any] | None] = {}
