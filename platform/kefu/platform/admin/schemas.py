"""Request and response bodies of the admin API (the contract, in one place)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType


class Branding(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    primary_color: str | None = None  # "#RRGGBB"
    logo_url: str | None = None  # https URL


class AdminUserSpec(msgspec.Struct, forbid_unknown_fields=True):
    email: str
    display_name: str


class CreateTenant(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    slug: str
    time_zone: str
    admin: AdminUserSpec
    locale: str = "en"
    plan: str = "standard"
    parent_id: uuid.UUID | None = None
    # Seats rented from the start (the seat ledger's opening row).
    seats: int = 0


class UpdateTenant(msgspec.Struct, forbid_unknown_fields=True):
    name: str | UnsetType = UNSET
    locale: str | UnsetType = UNSET
    time_zone: str | UnsetType = UNSET
    plan: str | UnsetType = UNSET
    branding: Branding | UnsetType = UNSET


class SuspendTenant(msgspec.Struct, forbid_unknown_fields=True):
    reason: str | None = None


class TenantView(msgspec.Struct):
    id: uuid.UUID
    slug: str
    name: str
    locale: str
    time_zone: str
    parent_id: uuid.UUID | None
    plan: str
    status: str
    branding: dict[str, Any]
    created_at: datetime
    suspended_at: datetime | None
    closed_at: datetime | None
    purge_after: datetime | None


class CreatedAdmin(msgspec.Struct):
    user_id: uuid.UUID
    email: str
    invitation_url: str


class CreatedTenant(msgspec.Struct):
    tenant: TenantView
    admin: CreatedAdmin


class TenantPage(msgspec.Struct):
    items: list[TenantView]
    total: int
    limit: int
    offset: int


class PurgeScheduled(msgspec.Struct):
    job: str
    key: str
