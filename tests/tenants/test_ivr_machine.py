"""The IVR state machine a live call will drive: the actions it asks for, the events
it waits for, and refusal of an event it is not waiting for."""

from __future__ import annotations

import pytest

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
