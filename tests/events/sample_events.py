"""Event types used only by the tests."""

from __future__ import annotations

import uuid
from typing import ClassVar

from kefu.platform.events import TenantEvent


class WidgetPinged(TenantEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "test.widget_pinged"
    permission: ClassVar[str] = "calls.read"
    widget_id: uuid.UUID
    note: str = ""


class SecretAudited(TenantEvent, frozen=True, kw_only=True):
    """Only holders of ``audit.read`` may see it."""

    event_type: ClassVar[str] = "test.secret_audited"
    permission: ClassVar[str] = "audit.read"
