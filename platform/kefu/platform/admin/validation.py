"""Checks on operator input that a type alone cannot express; each failure has a stable code."""

from __future__ import annotations

import re
import zoneinfo
from functools import lru_cache

from kefu.platform.admin.schemas import Branding
from kefu.platform.problems import Problem

LOCALES = ("en", "zh-CN")
TENANT_STATUSES = ("active", "suspended", "closed")
# A DNS label: it appears in log-in names and may appear in host names.
_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])$")
_PLAN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def check_slug(slug: str) -> str:
    if not _SLUG.match(slug) or "--" in slug:
        raise Problem(400, "invalid_slug", "a slug has 3 to 63 lowercase letters, digits or single hyphens, not at either end")
    return slug



def check_locale(locale: str) -> str:
    if locale not in LOCALES:
        raise Problem(400, "invalid_locale", f"the locale must be one of {', '.join(LOCALES)}")
    return locale


def check_time_zone(time_zone: str) -> str:
    if time_zone not in _zones():
        raise Problem(400, "invalid_time_zone", "the time zone must be an IANA name such as 'Asia/Shanghai'")
    return time_zone


def check_plan(plan: str) -> str:
    if not _PLAN.match(plan):
        raise Problem(400, "invalid_plan", "a plan name has up to 64 lowercase letters, digits, '-' or '_'")
    return plan


def check_branding(branding: Branding) -> dict[str, str]:
    if branding.primary_color is not None and not _COLOR.match(branding.primary_color):
        raise Problem(400, "invalid_branding", "primary_color must look like '#1a2b3c'")
    if branding.logo_url is not None and (not branding.logo_url.startswith("https://") or len(branding.logo_url) > 500):
        raise Problem(400, "invalid_branding", "logo_url must be an https URL of at most 500 characters")
    return {k: v for k, v in (("primary_color", branding.primary_color), ("logo_url", branding.logo_url)) if v is not None}


def check_status(status: str) -> str:
    if status not in TENANT_STATUSES:
        raise Problem(400, "invalid_status", f"status must be one of {', '.join(TENANT_STATUSES)}")
    return status
