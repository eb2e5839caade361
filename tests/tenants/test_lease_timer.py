"""The presence-lease timer re-arms itself when it fires a little early (the
event loop's monotonic clock and utcnow drift apart), so an expired lease is
processed at once, not only by the 5 s sweep."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from httpx import AsyncClient
from tenants_support import Admin, MakeAgent
from test_acd import go_ready, state_of

from kefu.tenants.clock import ManualClock, ManualTimers, TimerCallback, TimerHandle
from kefu.tenants.services import ContactCenter

EARLY = timedelta(milliseconds=1)


class EarlyOnceTimers(ManualTimers):
    """Timers fire 1 ms early, except one armed again by a firing timer (the loop's clock moved on)."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__(clock)
        self.firing = False

    def call_at(self, when: datetime, callback: TimerCallback) -> TimerHandle:
        async def fire() -> None:
            self.firing = True
            try:
                await callback()
            finally:
                self.firing = False

        return super().call_at(when if self.firing else when - EARLY, fire)


@pytest.fixture
def timers(clock: ManualClock) -> ManualTimers:
    return EarlyOnceTimers(clock)


async def test_a_lease_timer_firing_early_is_re_armed_and_expires_the_lease_on_time(
    cc: ContactCenter, client: AsyncClient, acme: Admin, make_agent: MakeAgent, timers: EarlyOnceTimers, clock: ManualClock
) -> None:
    ann = await make_agent(acme, "Ann")
    ready = await go_ready(client, ann)
    lease = datetime.fromisoformat(ready["lease_expires_at"])
    assert timers.pending() == [lease - EARLY]

    await timers.advance(30 - EARLY.total_seconds())  # the early timer fires: the lease still runs
    assert clock() == lease - EARLY
    assert (await state_of(client, ann))["state"] == "available"
    assert timers.pending() == [lease]  # re-armed at the lease's real end

    await timers.advance(EARLY.total_seconds())
    state = await state_of(client, ann)
    assert (state["state"], state["system_state"], state["lease_expires_at"]) == ("offline", "idle", None)
    assert timers.pending() == []
