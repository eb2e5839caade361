"""The IVR state machine a live call will drive: the actions it asks for, the events
it waits for, and refusal of an event it is not waiting for."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kefu.tenants.ivr.flow import parse
from kefu.tenants.ivr.machine import Ask, CheckHours, Enter, Finish, IvrMachine, Leave, Lookup, Say

FLOW = parse({"start": "hours", "nodes": {
    "hours": {"type": "hours", "schedule_id": "s1", "exits": {"open": "menu", "closed": "vm"}},
    "menu": {"type": "menu", "prompt": {"en": {"text": "1 account"}, "zh": {"text": "账户请按1"}}, "timeout_s": 7, "retries": 1,
             "exits": {"1": "account", "invalid": "vm", "no_input": "vm"}},
    "account": {"type": "collect", "prompt": {"en": {"text": "Account?"}}, "variable": "acct", "max_length": 6, "timeout_s": 9,
                "exits": {"done": "look", "invalid": "vm", "no_input": "vm"}},
    "look": {"type": "http", "url": "https://crm.test/c/{acct}", "method": "POST", "body": {"who": "{caller_number}"}, "retries": 1, "timeout_s": 2,
             "assign": {"tier": "tier"}, "exits": {"ok": "q", "fallback": "q"}},
    "q": {"type": "queue", "queue_id": "support", "priority": 3},
    "vm": {"type": "voicemail"},
}})


def test_a_live_walk_is_actions_out_and_events_in() -> None:
    machine = IvrMachine(FLOW, locale="zh", variables={"caller_number": "+861380000"})
    assert machine.start() == [Enter("hours", "hours"), CheckHours("hours", "s1")]
    assert machine.waiting_for == "hours"
    assert machine.hours("open") == [Leave("hours", "open"), Enter("menu", "menu"), Say("menu", "账户请按1", locale="zh"), Ask("menu", "menu", 7, 1, None)]
    assert machine.answer("") == [Say("menu", "账户请按1", locale="zh"), Ask("menu", "menu", 7, 1, None)]  # silence: asked again
    actions = machine.answer("1")
    assert actions == [Leave("menu", "1"), Enter("account", "collect"), Say("account", "Account?", locale="en"), Ask("account", "collect", 9, 7, "#")]
    lookup = Lookup("look", "https://crm.test/c/4242", "POST", {"who": "+861380000"}, 2)
    assert machine.answer("4242#") == [Leave("account", "done"), Enter("look", "http"), lookup]
    assert machine.waiting_for == "lookup"
    assert machine.looked_up(None) == [lookup]  # one retry
    final = machine.looked_up({"tier": "gold"})
    assert final == [Leave("look", "ok"), Enter("q", "queue"), Finish({"action": "queue", "node": "q", "queue_id": "support", "priority": 3})]
    assert machine.variables["tier"] == "gold" and machine.waiting_for is None


def test_an_event_the_flow_is_not_waiting_for_is_refused() -> None:
    machine = IvrMachine(FLOW)
    machine.start()
    with pytest.raises(RuntimeError):
        machine.answer("1")
    machine.hours("closed")
    assert machine.outcome == {"action": "voicemail", "node": "vm"}
    with pytest.raises(RuntimeError):
        machine.hours("open")


def test_a_snapshot_resumes_the_walk_where_it_waits() -> None:
    machine = IvrMachine(FLOW, locale="zh", variables={"caller_number": "+861380000"})
    machine.start()
    machine.hours("open")
    machine.answer("")  # one silence used up
    resumed = IvrMachine.resume(FLOW, machine.snapshot())
    assert resumed.waiting_for == "keys" and resumed.attempt == machine.attempt and resumed.variables == machine.variables
    # The same answer gives the same walk on both.
    assert resumed.answer("9") == machine.answer("9")


def test_a_lookup_address_cannot_be_extended_by_a_variable() -> None:
    machine = IvrMachine(FLOW, locale="en")
    machine.start()
    machine.hours("open")
    machine.answer("1")
    machine.variables["caller_number"] = "x"
    machine.node = FLOW.nodes["account"]
    # A collected value is digits; a lookup's own answer or a set variable is not: it is encoded.
    machine.variables["acct"] = "../admin?x=1#"
    lookup = machine._lookup(FLOW.nodes["look"])[0]
    assert lookup.url == "https://crm.test/c/..%2Fadmin%3Fx%3D1%23"


_EVENTS = st.lists(
    st.one_of(
        st.tuples(st.just("keys"), st.sampled_from(["", "1", "2", "9", "#", "4242#", "12", "1234567#"])),
        st.tuples(st.just("lookup"), st.sampled_from([None, {"tier": "gold"}, {"other": 1}, [1, 2], "text"])),
        st.tuples(st.just("hours"), st.sampled_from(["open", "closed", "holiday", "nonsense"])),
    ),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(events=_EVENTS, locale=st.sampled_from(["en", "zh", "fr"]))
def test_a_machine_resumed_from_its_snapshot_after_every_event_walks_exactly_as_one_that_never_stopped(
    events: list[tuple[str, object]], locale: str
) -> None:
    """What a live call does: every event is fed to a machine restored from the stored
    state (another process, after a restart).  Events the machine is not waiting for are
    refused by both alike."""
    steady = IvrMachine(FLOW, locale=locale, variables={"caller_number": "+8613800"})
    steady.start()
    stored = json.loads(json.dumps(steady.snapshot()))
    for kind, value in events:
        resumed = IvrMachine.resume(FLOW, stored)
        assert resumed.waiting_for == steady.waiting_for
        feed = {"keys": "answer", "lookup": "looked_up", "hours": "hours"}[kind]
        try:
            expected = getattr(steady, feed)(value)
        except RuntimeError:
            with pytest.raises(RuntimeError):
                getattr(resumed, feed)(value)
            continue
        assert getattr(resumed, feed)(value) == expected
        assert resumed.snapshot() == steady.snapshot() and resumed.outcome == steady.outcome
        stored = json.loads(json.dumps(resumed.snapshot()))  # what ivr_sessions.state holds
