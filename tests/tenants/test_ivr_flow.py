"""IVR flow documents: parsing, validation before publishing (each error names its
node and exit), the simulator, the published JSON Schema and ``kefu ivr simulate``."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from kefu.platform import cli
from kefu.tenants.ivr.cli import simulate_command
from kefu.tenants.ivr.flow import MAX_NODES, FlowContext, FlowInvalid, parse, validate
from kefu.tenants.ivr.schema import flow_schema
from kefu.tenants.ivr.simulate import MAX_STEPS, simulate


def say(en: str, zh: str | None = None) -> dict[str, Any]:
    return {"en": {"text": en}, **({"zh": {"text": zh}} if zh else {})}


# Three menu levels, a digit collection, a lookup, business hours and a branch.
SUPPORT_LINE: dict[str, Any] = {
    "schema": "kefu.ivr/1",
    "start": "hours",
    "locales": ["en", "zh"],
    "nodes": {
        "hours": {"type": "hours", "schedule_id": "weekdays", "exits": {"open": "main", "closed": "after_hours"}},
        "after_hours": {"type": "voicemail", "prompt": say("We are closed. Leave a message.", "我们已下班，请留言。")},
        "main": {"type": "menu", "prompt": say("1 sales, 2 support", "销售请按1，服务请按2"), "exits": {"1": "sales", "2": "support", "invalid": "main", "no_input": "bye"}},
        "support": {"type": "menu", "prompt": say("1 internet, 2 phone, 9 back", "宽带请按1，电话请按2，返回请按9"),
                    "exits": {"1": "internet", "2": "q_phone", "9": "main", "invalid": "support", "no_input": "main"}},
        "internet": {"type": "menu", "prompt": say("1 outage, 2 billing", "故障请按1，账单请按2"), "retries": 1,
                     "exits": {"1": "account", "2": "q_billing", "invalid": "q_internet", "no_input": "q_internet"}},
        "account": {"type": "collect", "prompt": say("Account number, then hash", "请输入账号，以井号结束"), "variable": "account", "min_length": 4, "max_length": 8,
                    "exits": {"done": "lookup", "invalid": "q_internet", "no_input": "q_internet"}},
        "lookup": {"type": "http", "url": "https://crm.acme.test/customers/{account}", "assign": {"tier": "customer.tier"}, "retries": 1,
                   "exits": {"ok": "tier", "fallback": "q_internet"}},
        "tier": {"type": "branch", "on": "var:tier", "cases": [{"op": "equals", "value": "vip", "exit": "vip"}], "exits": {"vip": "q_vip", "else": "q_internet"}},
        "q_vip": {"type": "queue", "queue_id": "internet", "priority": 50, "skills": [{"skill_id": "broadband", "min_proficiency": 7}]},
        "q_internet": {"type": "queue", "queue_id": "internet"},
        "q_phone": {"type": "queue", "queue_id": "phone"},
        "q_billing": {"type": "queue", "queue_id": "billing"},
        "sales": {"type": "queue", "queue_id": "sales"},
        "bye": {"type": "hangup", "prompt": say("Goodbye", "再见")},
    },
}
ACME = FlowContext(
    locales=("en", "zh"), queues=frozenset({"internet", "phone", "billing", "sales"}), skills=frozenset({"broadband"}),
    schedules=frozenset({"weekdays"}), flows=frozenset({"other-flow"}), agents=frozenset({"agent-1"}), audio=frozenset({"welcome.wav"}),
    http_allowed=("https://crm.acme.test/",),
)


def errors_of(document: dict[str, Any], context: FlowContext = ACME) -> list[tuple[str, str | None, str | None]]:
    return [(e.code, e.node, e.exit) for e in validate(parse(document), context)]


def changed(**nodes: Any) -> dict[str, Any]:
    """The support line with nodes replaced (None: removed)."""
    document = copy.deepcopy(SUPPORT_LINE)
    for node_id, node in nodes.items():
        if node is None:
            del document["nodes"][node_id]
        else:
            document["nodes"][node_id] = node
    return document


def test_the_support_line_is_valid_and_matches_the_published_schema() -> None:
    assert errors_of(SUPPORT_LINE) == []
    Draft202012Validator.check_schema(flow_schema())
    assert list(Draft202012Validator(flow_schema()).iter_errors(SUPPORT_LINE)) == []


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (changed(main={"type": "menu", "prompt": say("1", "1"), "exits": {"1": "sales", "2": "support", "invalid": "main"}}),
         [("missing_exit", "main", "no_input"), ("unreachable_node", "bye", None)]),
        (changed(bye={"type": "hangup", "prompt": say("Goodbye", "再见"), "exits": {"next": "main"}}), [("unknown_exit", "bye", "next")]),
        (changed(main={"type": "menu", "prompt": say("1", "1"), "exits": {"1": "nowhere", "2": "support", "invalid": "main", "no_input": "bye"}}),
         [("unknown_target", "main", "1"), ("unreachable_node", "sales", None)]),
        (changed(orphan={"type": "hangup"}), [("unreachable_node", "orphan", None)]),
        (changed(bye={"type": "hangup", "prompt": say("Goodbye")}), [("missing_prompt", "bye", None)]),
        (changed(q_phone={"type": "play", "prompt": say("Hold on", "请稍候"), "exits": {"next": "spin"}},
                 spin={"type": "set", "variable": "x", "value": "1", "exits": {"next": "q_phone"}}),
         [("loop_without_exit", "q_phone", None), ("loop_without_exit", "spin", None)]),
        (changed(sales={"type": "queue", "queue_id": "globex-sales"}), [("unknown_queue", "sales", None)]),
        (changed(q_vip={"type": "queue", "queue_id": "internet", "skills": [{"skill_id": "globex-skill"}]}), [("unknown_skill", "q_vip", None)]),
        (changed(hours={"type": "hours", "schedule_id": "globex-hours", "exits": {"open": "main", "closed": "after_hours"}}), [("unknown_schedule", "hours", None)]),
        (changed(sales={"type": "transfer", "flow_id": "globex-flow"}), [("unknown_flow", "sales", None)]),
        (changed(sales={"type": "transfer", "agent_id": "globex-agent"}), [("unknown_agent", "sales", None)]),
        (changed(lookup={"type": "http", "url": "http://169.254.169.254/latest/meta-data", "exits": {"ok": "tier", "fallback": "q_internet"}}),
         [("http_address_not_allowed", "lookup", None), ("variable_before_set", "tier", None)]),
        (changed(bye={"type": "hangup", "prompt": {"en": {"audio": "never-uploaded.wav"}, "zh": {"text": "再见"}}}), [("unknown_audio", "bye", None)]),
        # {account} is set only when the collection succeeded; the fallback path reads it too.
        (changed(q_internet={"type": "hangup", "prompt": say("Sorry {account}", "抱歉 {account}")}), [("variable_before_set", "q_internet", None)]),
    ],
)
def test_each_validation_error_names_its_node_and_exit(document: dict[str, Any], expected: list[tuple[str, str | None, str | None]]) -> None:
    assert sorted(errors_of(document), key=str) == sorted(expected, key=str)


def test_a_variable_set_on_every_path_may_be_read() -> None:
    document = changed(
        main={"type": "set", "variable": "greeting", "value": "Hi {caller_name}", "exits": {"next": "say_hi"}},
        say_hi={"type": "play", "prompt": say("{greeting}", "{greeting}"), "exits": {"next": "support"}},
    )
    assert [e for e in errors_of(document) if e[0] == "variable_before_set"] == []


@pytest.mark.parametrize(
    ("document", "code", "node"),
    [
        ([], "invalid_document", None),
        ({"start": "a"}, "invalid_document", None),
        ({"start": "a", "nodes": {"a": {"type": "hangup"}}, "extra": 1}, "invalid_document", None),
        ({"schema": "other/2", "start": "a", "nodes": {"a": {"type": "hangup"}}}, "invalid_document", None),
        ({"start": "b", "nodes": {"a": {"type": "hangup"}}}, "missing_start", "b"),
        ({"start": "a", "nodes": {"a": {"type": "dance"}}}, "unknown_node_type", "a"),
        ({"start": "a", "nodes": {"a b": {"type": "hangup"}}}, "invalid_node_id", None),
        ({"start": "a", "nodes": {"a": "hangup"}}, "invalid_node", "a"),
        ({"start": "a", "nodes": {"a": {"type": "menu", "prompt": say("x"), "timeout_s": 0, "exits": {}}}}, "invalid_field", "a"),
        ({"start": "a", "nodes": {"a": {"type": "queue", "queue_id": "q", "priority": 1000}}}, "invalid_field", "a"),
        ({"start": "a", "nodes": {"a": {"type": "play", "exits": {"next": "a"}}}}, "missing_field", "a"),
        ({"start": "a", "nodes": {"a": {"type": "play", "prompt": {"english": {"text": "x"}}, "exits": {"next": "a"}}}}, "invalid_field", "a"),
        ({"start": "a", "nodes": {"a": {"type": "branch", "on": "var:x", "cases": [{"op": "matches", "value": "(", "exit": "y"}], "exits": {}}}}, "invalid_field", "a"),
        ({"start": "a", "nodes": {"a": {"type": "transfer", "agent_id": "x", "flow_id": "y"}}}, "invalid_field", "a"),
        ({"start": "a", "nodes": {"a": {"type": "hangup", "volume": 11}}}, "invalid_field", "a"),
        ({"start": "n0", "nodes": {f"n{i}": {"type": "hangup"} for i in range(MAX_NODES + 1)}}, "too_many_nodes", None),
    ],
)
def test_documents_that_are_not_flows_are_refused_with_a_precise_error(document: Any, code: str, node: str | None) -> None:
    with pytest.raises(FlowInvalid) as refused:
        parse(document)
    assert (code, node) in [(e.code, e.node) for e in refused.value.errors]


def lookup_answer(answer: Any) -> Any:
    def lookup(node: Any, variables: dict[str, str]) -> Any:
        assert node.id == "lookup" and variables["account"] == "12345"
        if isinstance(answer, Exception):
            raise answer
        return answer

    return lookup


@pytest.mark.parametrize(
    ("inputs", "answer", "path_end", "outcome"),
    [
        (["2", "1", "1", "12345#"], {"customer": {"tier": "vip"}}, ["lookup", "tier", "q_vip"], {"queue_id": "internet", "priority": 50}),
        (["2", "1", "1", "12345#"], {"customer": {"tier": "gold"}}, ["tier", "q_internet"], {"queue_id": "internet"}),
        (["2", "1", "1", "12345#"], None, ["lookup", "q_internet"], {"queue_id": "internet"}),  # no answer: fallback
        (["2", "1", "1", "12345#"], TimeoutError("hung"), ["lookup", "q_internet"], {"queue_id": "internet"}),
        (["2", "1", "1", "12345#"], "<html>garbage</html>", ["lookup", "q_internet"], {"queue_id": "internet"}),
        (["2", "1", "1", "12345#"], {"customer": "no tier"}, ["lookup", "q_internet"], {"queue_id": "internet"}),
        (["2", "1", "2"], None, ["internet", "q_billing"], {"queue_id": "billing"}),
        (["2", "9", "1"], None, ["support", "main", "sales"], {"queue_id": "sales"}),  # back up a level
        (["7", "2", "2"], None, ["hours", "main", "support", "q_phone"], {"queue_id": "phone"}),  # an invalid digit: asked again
        (["2", "1", "5", "5"], None, ["internet", "q_internet"], {"queue_id": "internet"}),  # invalid twice: the invalid exit
        ([], None, ["main", "bye"], {}),  # silence: no_input after the retries
        (["2", "1", "1", "12#", "", ""], None, ["account", "q_internet"], {"queue_id": "internet"}),  # too short, then silence
    ],
)
def test_a_caller_walks_three_menu_levels_by_dtmf(inputs: list[str], answer: Any, path_end: list[str], outcome: dict[str, Any]) -> None:
    walk = simulate(parse(SUPPORT_LINE), inputs=inputs, lookup=lookup_answer(answer))
    path = [step.node for step in walk.steps]
    assert path[: len(path_end)] != [] and path[-len(path_end):] == path_end
    assert {k: walk.outcome[k] for k in outcome} == outcome
    if answer == {"customer": {"tier": "vip"}}:
        assert walk.variables["tier"] == "vip" and walk.variables["account"] == "12345"


def test_after_hours_goes_to_voicemail_in_the_callers_language() -> None:
    walk = simulate(parse(SUPPORT_LINE), inputs=[], locale="zh", is_open=lambda schedule: "closed")
    assert [s.node for s in walk.steps] == ["hours", "after_hours"]
    assert walk.outcome["action"] == "voicemail" and walk.steps[-1].said == ["我们已下班，请留言。"]
    holiday = simulate(parse(SUPPORT_LINE), inputs=[], is_open=lambda schedule: "holiday")
    assert holiday.outcome["action"] == "voicemail"  # no holiday exit: a holiday is closed


def test_branch_operators_and_templates() -> None:
    document = {"start": "who", "nodes": {
        "who": {"type": "branch", "on": "caller_number", "cases": [
            {"op": "starts_with", "value": "+86", "exit": "china"}, {"op": "matches", "value": r"^\+1\d{10}$", "exit": "nanp"}],
            "exits": {"china": "cn", "nanp": "us", "else": "other"}},
        "cn": {"type": "set", "variable": "greet", "value": "你好 {caller_name}", "exits": {"next": "bye"}},
        "us": {"type": "set", "variable": "greet", "value": "Hello {caller_name}", "exits": {"next": "bye"}},
        "other": {"type": "set", "variable": "greet", "value": "Hi", "exits": {"next": "bye"}},
        "bye": {"type": "hangup", "prompt": {"en": {"text": "{greet}!"}}},
    }}
    flow = parse(document)
    assert validate(flow, FlowContext(locales=("en",))) == []
    for number, heard in (("+8613800000000", "你好 Li Lei!"), ("+14155550100", "Hello Li Lei!"), ("12", "Hi!")):
        walk = simulate(flow, inputs=[], variables={"caller_number": number, "caller_name": "Li Lei"})
        assert walk.steps[-1].said == [heard]


def test_menus_nest_without_a_depth_limit() -> None:
    depth = 1500
    nodes: dict[str, Any] = {
        f"m{i}": {"type": "menu", "prompt": {"en": {"text": f"level {i}"}}, "exits": {"1": f"m{i + 1}" if i + 1 < depth else "q", "invalid": "bye", "no_input": "bye"}}
        for i in range(depth)
    }
    nodes.update({"q": {"type": "queue", "queue_id": "deep"}, "bye": {"type": "hangup"}})
    flow = parse({"start": "m0", "locales": ["en"], "nodes": nodes})
    assert validate(flow, FlowContext(locales=("en",), queues=frozenset({"deep"}))) == []
    walk = simulate(flow, inputs=["1"] * depth)
    assert walk.outcome["action"] == "step_limit"  # a walk stops after MAX_STEPS nodes
    assert len(walk.steps) == MAX_STEPS
    shallow = simulate(flow, inputs=["1"] * 10 + ["9", "9", "9"])
    assert [s.node for s in shallow.steps][-2:] == ["m10", "bye"]


def test_an_unvalidated_flow_runs_without_crashing() -> None:
    flow = parse({"start": "a", "nodes": {"a": {"type": "play", "prompt": {"en": {"text": "x"}}, "exits": {"next": "a"}}}})
    assert simulate(flow, inputs=[]).outcome == {"action": "step_limit", "node": "a"}
    broken = parse({"start": "a", "nodes": {"a": {"type": "menu", "prompt": {"en": {"text": "x"}}, "exits": {"1": "a"}}}})
    assert simulate(broken, inputs=["2"]).outcome["action"] == "missing_exit"


# --- adversarial documents --------------------------------------------------------------------

_names = st.sampled_from(["a", "b", "c", "d", "next", "1", "2", "#", "invalid", "no_input", "ok", "fallback", "done", "open", "closed", "else", "x y", ""])
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 100), st.text(max_size=8), st.sampled_from(["#", "var:x", "caller_number", "en", "GET"]))
_values = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_names, inner, max_size=3)), max_leaves=6)
_node = st.fixed_dictionaries(
    {"type": st.sampled_from(["play", "menu", "collect", "hours", "branch", "http", "set", "queue", "voicemail", "callback", "transfer", "hangup", "nope"])},
    optional={
        "prompt": st.one_of(_values, st.just({"en": {"text": "hi {x}"}})), "exits": st.dictionaries(_names, _names, max_size=5),
        "variable": st.sampled_from(["x", "y", "Bad", 3]), "value": _values, "on": _values, "cases": _values, "url": _values,
        "assign": st.one_of(_values, st.just({"x": "a.b"})), "queue_id": _values, "schedule_id": _values, "retries": _values,
        "timeout_s": _values, "min_length": _values, "max_length": _values, "terminator": _values, "skills": _values,
        "agent_id": _values, "flow_id": _values, "body": _values, "method": _values, "priority": _values,
    },
)
_documents = st.one_of(
    _values,
    st.fixed_dictionaries({"start": _names, "nodes": st.dictionaries(_names, _node, max_size=6)}, optional={"locales": _values, "schema": _values}),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=_documents, inputs=st.lists(st.sampled_from(["", "1", "2", "#", "12#", "9999999999"]), max_size=6))
def test_random_documents_are_refused_precisely_or_run_without_crashing(document: Any, inputs: list[str]) -> None:
    try:
        flow = parse(document)
    except FlowInvalid as refused:
        assert refused.errors and all(e.code and e.message for e in refused.errors)
        return
    for error in validate(flow, ACME):
        assert error.code and error.message and (error.node is None or error.node in flow.nodes)
    walk = simulate(flow, inputs=inputs, lookup=lambda node, variables: {"a": {"b": "1"}}, is_open=lambda schedule: "closed")
    assert walk.outcome["action"] in ("queue", "voicemail", "callback", "transfer", "hangup", "step_limit", "missing_exit")


# --- the command ------------------------------------------------------------------------------


def test_kefu_ivr_simulate_prints_the_path_prompts_and_variables(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "support.json"
    path.write_text(json.dumps(SUPPORT_LINE), encoding="utf-8")
    code = cli.main(["ivr", "simulate", str(path), "--input", "2,1,1,12345#", "--answer", 'lookup={"customer": {"tier": "vip"}}'])
    printed = capsys.readouterr().out
    assert code == 0
    assert "main (menu)\n  says: 1 sales, 2 support\n  caller: 2\n  -> 2\n" in printed
    assert 'outcome: {"action": "queue", "node": "q_vip", "queue_id": "internet", "priority": 50' in printed
    assert '"account": "12345", "tier": "vip"' in printed
    closed = io.StringIO()
    assert simulate_command(str(path), inputs="", locale="zh", variables=[], answers=[], closed=["weekdays"], out=closed) == 0
    assert "says: 我们已下班，请留言。" in closed.getvalue()


def test_kefu_ivr_simulate_refuses_bad_input(tmp_path: Path) -> None:
    out = io.StringIO()
    assert simulate_command(str(tmp_path / "missing.json"), inputs="", locale="en", variables=[], answers=[], closed=[], out=out) == 2
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"start": "a", "nodes": {"a": {"type": "dance"}}}), encoding="utf-8")
    out = io.StringIO()
    assert simulate_command(str(bad), inputs="", locale="en", variables=[], answers=[], closed=[], out=out) == 2
    assert "a: unknown_node_type" in out.getvalue()
    out = io.StringIO()
    assert simulate_command(str(bad), inputs="", locale="en", variables=["oops"], answers=[], closed=[], out=out) == 2
