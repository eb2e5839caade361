"""Billing's settings and its upkeep scheduler."""

from __future__ import annotations

from typing import Any

import pytest
from billing_support import Admin, new_tenant

from kefu.billing.api import BillingScheduler
from kefu.platform.runtime import Runtime
from kefu.platform.settings import SettingsError, load_settings


def test_a_stripe_key_needs_the_webhook_secret(tmp_path: Any) -> None:
    base = {"KEFU_DATA_DIR": str(tmp_path)}
    with pytest.raises(SettingsError, match="KEFU_STRIPE_WEBHOOK_SECRET"):
        load_settings({**base, "KEFU_STRIPE_API_KEY": "sk_test_x"})
    settings = load_settings({**base, "KEFU_STRIPE_API_KEY": "sk_test_x", "KEFU_STRIPE_WEBHOOK_SECRET": "whsec_x", "KEFU_STRIPE_TIMEOUT_MS": "1500"})
    assert (settings.stripe_timeout_s, settings.stripe_quantity_updates_per_hour, settings.billing_grace_days) == (1.5, 4, 7)
    assert "sk_test_x" not in repr(settings) and "whsec_x" not in repr(settings)
    local = load_settings(base)
    assert (local.stripe_api_key, local.stripe_api_base) == (None, "https://api.stripe.com")
    with pytest.raises(SettingsError, match="KEFU_BILLING_GRACE_DAYS"):
        load_settings({**base, "KEFU_BILLING_GRACE_DAYS": "-1"})


async def test_the_scheduler_queues_one_upkeep_per_open_account(client: Any, runtime: Runtime, acme: Admin, globex: Admin) -> None:
    scheduler = next(s for s in runtime.services if isinstance(s, BillingScheduler))
    assert await scheduler.tick() == 2
    await runtime.components["jobs"].drain()
    closed = await new_tenant(runtime, "closed", seats=1)
    async with runtime.db.platform_session(reason="test") as session:
        from sqlalchemy import update

        from kefu.platform.models import Tenant

        await session.execute(update(Tenant).where(Tenant.id == closed.tenant_id).values(status="closed"))
    assert await scheduler.tick() == 2  # a closed tenant has nothing to bill
    await runtime.components["jobs"].drain()
