"""The cross-tenant harness's entries for the qa routes (merged by isolation_registry.py;
the same dictionaries, with the same meaning, as there)."""

from __future__ import annotations

from typing import Any

ID_FACTORIES: dict[str, Any] = {}
ROUTE_ROLES: dict[str, str] = {}
WRITE_BODIES: dict[tuple[str, str], dict[str, Any] | None] = {}
BODY_REFERENCES: dict[tuple[str, str], dict[str, Any]] = {}
NOT_REFERENCES: dict[tuple[str, str], str] = {}
LIST_ROUTES: dict[str, Any] = {}
CREATE_ROUTES: dict[str, Any] = {}
PUBLIC_ROUTES: dict[str, str] = {}
