"""Kefu's calls to Stripe, through the official library on its pinned API version.

Every call that changes something carries an idempotency key derived from the
Kefu rows it mirrors (a tenant, a plan, a ledger row, a usage report), so a
retry after a timeout or a lost response is the same change in Stripe, never a
second one.  The library retries network errors and 5xx answers itself
(``max_network_retries``) with that same key; what still fails raises, and the
Dramatiq job that made the call is retried with backoff.

``KEFU_STRIPE_API_BASE`` points the library at another server speaking
Stripe's protocol (the local one the tests start).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import stripe

from kefu.platform.settings import Settings

PINNED_API_VERSION = stripe.api_version
METERS = {
    # Kefu's meter → (Stripe event name, display name)
    "overage_minutes": ("kefu_overage_minutes", "Kefu minutes beyond the included ones"),
    "storage_gb_month": ("kefu_storage_milli_gb_months", "Kefu recording storage (thousandths of a GB-month)"),
}


def enabled(settings: Settings) -> bool:
    return bool(settings.stripe_api_key)


@asynccontextmanager
async def stripe_client(settings: Settings) -> AsyncIterator[stripe.StripeClient]:
    """A client for one unit of work (its HTTP connections belong to the running event loop)."""
    if not settings.stripe_api_key:
        raise RuntimeError("Stripe is not configured (KEFU_STRIPE_API_KEY)")
    http = stripe.HTTPXClient(timeout=settings.stripe_timeout_s)
    client = stripe.StripeClient(
        settings.stripe_api_key,
        stripe_version=PINNED_API_VERSION,
        base_addresses={"api": settings.stripe_api_base},
        max_network_retries=2,
        http_client=http,
    )
    try:
        yield client
    finally:
        await http.close_async()


def options(idempotency_key: str) -> dict[str, Any]:
    return {"idempotency_key": idempotency_key}
