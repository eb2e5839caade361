"""Walk an IVR flow without media: the path, what the caller hears, the variables.

The caller's keypresses are given up front, one entry per question the flow
asks (a menu takes one digit, a digit collection a string such as ``"1234#"``);
an empty entry, or running out of entries, is silence until the node's timeout.
Lookups to the tenant's system and business hours are answered by the caller
of ``simulate`` (``lookup``, ``is_open``), so a simulation never touches the
network; a lookup that has no answer takes the fallback exit, as a timeout
would.  The same walk is what ``kefu ivr simulate``, the API and the portal show.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kefu.tenants.ivr.flow import CALLER_ACTIONS, DIGITS, TEMPLATE_VARIABLE, Flow, Node

MAX_STEPS = 500
Lookup = Callable[[Node, dict[str, str]], Any]


@dataclass
class Step:
    node: str
    type: str
    said: list[str] = field(default_factory=list)  # prompts heard, in order
    heard: list[str] = field(default_factory=list)  # what the caller pressed ("" = nothing)
    exit: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"node": self.node, "type": self.type, "said": self.said, "heard": self.heard, "exit": self.exit}


@dataclass
class Walk:
    steps: list[Step]
    outcome: dict[str, Any]  # the caller action the flow ended in ({"action": ...})
    variables: dict[str, str]
    inputs_left: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": [step.node for step in self.steps], "steps": [s.as_dict() for s in self.steps],
            "outcome": self.outcome, "variables": self.variables, "inputs_left": self.inputs_left,
        }


def render(template: str, variables: dict[str, str]) -> str:
    """``{name}`` replaced by the variable's value (empty when unset)."""
    return TEMPLATE_VARIABLE.sub(lambda m: variables.get(m.group(1), ""), template)


def _say(node: Node, locale: str, variables: dict[str, str]) -> list[str]:
    if not node.prompt:
        return []
    part = node.prompt.get(locale) or next(iter(node.prompt.values()))
    if part.text is not None:
        return [render(part.text, variables)]
    return [f"[audio {part.audio}]"]


def _dig(answer: Any, path: str) -> str | None:
    value = answer
    for key in path.split("."):
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)[:500]
    return None


def _case_matches(op: str, subject: str | None, value: str | None) -> bool:
    if op == "is_set":
        return subject is not None and subject != ""
    if subject is None:
        return False
    if op == "equals":
        return subject == value
    if op == "not_equals":
        return subject != value
    if op == "starts_with":
        return subject.startswith(value or "")
    if op == "contains":
        return (value or "") in subject
    if op == "matches":
        return re.search(value or "", subject[:500]) is not None
    try:
        left, right = float(subject), float(value or "")
    except ValueError:
        return False
    return left < right if op == "less_than" else left > right


class _Walker:
    def __init__(self, flow: Flow, inputs: list[str], locale: str, variables: dict[str, str],
                 lookup: Lookup | None, is_open: Callable[[str], str] | None) -> None:
        self.flow, self.inputs, self.locale, self.variables = flow, list(inputs), locale, variables
        self.lookup, self.is_open = lookup, is_open

    def next_input(self) -> str:
        return self.inputs.pop(0) if self.inputs else ""

    def ask(self, node: Node, step: Step, accept: Callable[[str], bool]) -> str:
        """The exit of a question (menu, collection) after its retries."""
        attempts = (node.fields.get("retries") or 0) + 1
        failure = "no_input"
        for _ in range(attempts):
            step.said.extend(_say(node, self.locale, self.variables))
            pressed = self.next_input()
            step.heard.append(pressed)
            if pressed == "":
                failure = "no_input"
            elif accept(pressed):
                return pressed
            else:
                failure = "invalid"
        return "\0" + failure

    def run(self) -> Walk:
        steps: list[Step] = []
        node = self.flow.nodes[self.flow.start]
        for _ in range(MAX_STEPS):
            step = Step(node.id, node.type)
            steps.append(step)
            if node.type in CALLER_ACTIONS:
                step.said.extend(_say(node, self.locale, self.variables))
                outcome = {"action": node.type, "node": node.id, **{k: v for k, v in node.fields.items() if v not in (None, [], {})}}
                return Walk(steps, outcome, self.variables, self.inputs)
            exit_name = self.leave(node, step)
            step.exit = exit_name
            target = node.exits.get(exit_name)
            if target not in self.flow.nodes:  # only an unvalidated flow gets here
                return Walk(steps, {"action": "missing_exit", "node": node.id, "exit": exit_name}, self.variables, self.inputs)
            node = self.flow.nodes[target]
        return Walk(steps, {"action": "step_limit", "node": node.id}, self.variables, self.inputs)

    def leave(self, node: Node, step: Step) -> str:
        f = node.fields
        if node.type == "play":
            step.said.extend(_say(node, self.locale, self.variables))
            return "next"
        if node.type == "menu":
            options = {d for d in node.exits if d in DIGITS}
            answer = self.ask(node, step, lambda pressed: pressed in options)
            return answer.removeprefix("\0")
        if node.type == "collect":
            def valid(pressed: str) -> bool:
                digits = pressed[:-1] if f["terminator"] and pressed.endswith(f["terminator"]) else pressed
                return digits.isdigit() and f["min_length"] <= len(digits) <= f["max_length"]

            answer = self.ask(node, step, valid)
            if answer.startswith("\0"):
                return answer[1:]
            self.variables[f["variable"]] = answer[:-1] if f["terminator"] and answer.endswith(f["terminator"]) else answer
            return "done"
        if node.type == "hours":
            state = self.is_open(f["schedule_id"]) if self.is_open else "open"
            return "closed" if state == "holiday" and "holiday" not in node.exits else state
        if node.type == "branch":
            on = f["on"]
            subject = self.variables.get(on.removeprefix("var:"))
            for case in f["cases"]:
                if _case_matches(case["op"], subject, case["value"]):
                    return str(case["exit"])
            return "else"
        if node.type == "http":
            answer = None
            for _attempt in range((f.get("retries") or 0) + 1):
                try:
                    answer = self.lookup(node, dict(self.variables)) if self.lookup else None
                except Exception:  # a lookup that errors is a failed attempt
                    answer = None
                if answer is not None:
                    break
            if not isinstance(answer, (dict, list)):
                return "fallback"
            values = {name: _dig(answer, path) for name, path in (f.get("assign") or {}).items()}
            if any(value is None for value in values.values()):
                return "fallback"  # the answer lacks what the flow needs: garbage
            self.variables.update({k: v for k, v in values.items() if v is not None})
            return "ok"
        if node.type == "set":
            self.variables[f["variable"]] = render(f.get("value") or "", self.variables)[:500]
            return "next"
        raise AssertionError(f"no walk for {node.type}")


def simulate(
    flow: Flow, *, inputs: list[str], locale: str = "en", variables: dict[str, str] | None = None,
    lookup: Lookup | None = None, is_open: Callable[[str], str] | None = None,
) -> Walk:
    """Walk ``flow`` as a caller pressing ``inputs`` would (see the module's notes).
    ``is_open(schedule_id)`` answers ``open``, ``closed`` or ``holiday`` (default open)."""
    start = {"caller_number": "", "caller_name": "", "entry_point": "", "locale": locale, **(variables or {})}
    return _Walker(flow, inputs, locale, start, lookup, is_open).run()
