"""One caller's walk through a flow, as a state machine driven by events.

The machine knows the flow's rules (menus and their retries, collections,
branches, variables, lookups with retries and fallback, hours) and nothing of
media or time: each call returns the **actions** to carry out — say a prompt,
wait for keys, look something up, check business hours — and the next event
answers the one it waits for (``answer``, ``looked_up``, ``hours``).  The
simulator drives it from a list of keypresses; a live call drives it from the
media plane's prompts and DTMF, its timers and real lookups.  One set of rules
for both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from kefu.tenants.ivr.flow import CALLER_ACTIONS, DIGITS, TEMPLATE_VARIABLE, Flow, Node

MAX_STEPS = 500


@dataclass(frozen=True)
class Enter:
    node: str
    type: str


@dataclass(frozen=True)
class Say:
    node: str
    text: str | None  # rendered, or None for an audio prompt
    audio: str | None = None
    locale: str | None = None  # the prompt's locale (the caller's, else the first the node has)


@dataclass(frozen=True)
class Ask:
    """Wait for the caller's keys: one key for a menu, up to ``max_keys`` (or the
    terminator) for a collection; nothing within ``timeout_s`` is an empty answer."""

    node: str
    kind: str  # menu | collect
    timeout_s: int
    max_keys: int
    terminator: str | None


@dataclass(frozen=True)
class Lookup:
    node: str
    url: str
    method: str
    body: dict[str, str] | None
    timeout_s: int


@dataclass(frozen=True)
class CheckHours:
    node: str
    schedule_id: str


@dataclass(frozen=True)
class Leave:
    node: str
    exit: str


@dataclass(frozen=True)
class Finish:
    outcome: dict[str, Any]


Action = Enter | Say | Ask | Lookup | CheckHours | Leave | Finish


def render(template: str, variables: dict[str, str]) -> str:
    """``{name}`` replaced by the variable's value (empty when unset)."""
    return TEMPLATE_VARIABLE.sub(lambda m: variables.get(m.group(1), ""), template)


def render_url(template: str, variables: dict[str, str]) -> str:
    """As ``render``, each value percent-encoded: a caller's keys or a lookup's answer
    cannot add a path segment, query or fragment to a lookup's address."""
    return TEMPLATE_VARIABLE.sub(lambda m: quote(variables.get(m.group(1), ""), safe=""), template)


def dig(answer: Any, path: str) -> str | None:
    """The text at ``customer.tier`` in a JSON answer, or None."""
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


def case_matches(op: str, subject: str | None, value: str | None) -> bool:
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


class IvrMachine:
    def __init__(self, flow: Flow, *, locale: str = "en", variables: dict[str, str] | None = None, max_steps: int = MAX_STEPS) -> None:
        self.flow, self.locale, self.max_steps = flow, locale, max_steps
        self.variables: dict[str, str] = {"caller_number": "", "caller_name": "", "entry_point": "", "locale": locale, **(variables or {})}
        self.node: Node | None = None
        self.attempt = 0
        self.failure = "no_input"
        self.entered = 0
        self.outcome: dict[str, Any] | None = None

    @property
    def waiting_for(self) -> str | None:
        """``keys``, ``lookup``, ``hours`` or None (finished)."""
        if self.outcome is not None or self.node is None:
            return None
        return {"menu": "keys", "collect": "keys", "http": "lookup", "hours": "hours"}.get(self.node.type)

    def start(self) -> list[Action]:
        return self._go(self.flow.start)

    def snapshot(self) -> dict[str, Any]:
        """The machine's state as JSON, to carry on from with ``resume`` (another process, after a restart)."""
        return {
            "node": self.node.id if self.node else None, "attempt": self.attempt, "failure": self.failure,
            "entered": self.entered, "locale": self.locale, "variables": dict(self.variables),
        }

    @classmethod
    def resume(cls, flow: Flow, snapshot: dict[str, Any], *, max_steps: int = MAX_STEPS) -> IvrMachine:
        """The machine as ``snapshot`` left it, waiting at the same node of the same ``flow``."""
        machine = cls(flow, locale=str(snapshot.get("locale") or "en"), variables=dict(snapshot.get("variables") or {}), max_steps=max_steps)
        node = snapshot.get("node")
        machine.node = flow.nodes.get(node) if isinstance(node, str) else None
        machine.attempt = int(snapshot.get("attempt") or 0)
        machine.failure = str(snapshot.get("failure") or "no_input")
        machine.entered = int(snapshot.get("entered") or 0)
        return machine

    def enter_flow(self, flow: Flow) -> list[Action]:
        """Go on in another flow (a transfer), keeping the variables and the step count."""
        self.flow, self.outcome = flow, None
        return self._go(flow.start)

    # --- events -------------------------------------------------------------------------

    def answer(self, pressed: str) -> list[Action]:
        """The caller's keys for the question asked ("" = nothing before the timeout)."""
        node = self._expect("keys")
        if pressed and self._valid(node, pressed):
            if node.type == "menu":
                return self._leave(node, pressed)
            f = node.fields
            self.variables[f["variable"]] = pressed[:-1] if f["terminator"] and pressed.endswith(f["terminator"]) else pressed
            return self._leave(node, "done")
        self.failure = "invalid" if pressed else "no_input"
        if self.attempt <= (node.fields.get("retries") or 0):
            return self._ask(node)
        return self._leave(node, self.failure)

    def looked_up(self, answer: Any) -> list[Action]:
        """What the lookup got back: parsed JSON, or None (timeout, error, not JSON)."""
        node = self._expect("lookup")
        if isinstance(answer, (dict, list)):
            values = {name: dig(answer, path) for name, path in (node.fields.get("assign") or {}).items()}
            if all(value is not None for value in values.values()):
                self.variables.update({k: v for k, v in values.items() if v is not None})
                return self._leave(node, "ok")
        if self.attempt <= (node.fields.get("retries") or 0):
            return self._lookup(node)
        return self._leave(node, "fallback")

    def hours(self, state: str) -> list[Action]:
        """``open``, ``closed`` or ``holiday`` for the node's schedule."""
        node = self._expect("hours")
        if state == "holiday" and "holiday" not in node.exits:
            state = "closed"
        return self._leave(node, state if state in ("open", "closed", "holiday") else "closed")

    # --- walking --------------------------------------------------------------------------

    def _expect(self, what: str) -> Node:
        if self.waiting_for != what or self.node is None:
            raise RuntimeError(f"the flow is not waiting for {what}")
        return self.node

    def _valid(self, node: Node, pressed: str) -> bool:
        if node.type == "menu":
            return len(pressed) == 1 and pressed in DIGITS and pressed in node.exits
        f = node.fields
        digits = pressed[:-1] if f["terminator"] and pressed.endswith(f["terminator"]) else pressed
        return digits.isdigit() and f["min_length"] <= len(digits) <= f["max_length"]

    def _say(self, node: Node) -> list[Action]:
        if not node.prompt:
            return []
        locale = self.locale if self.locale in node.prompt else next(iter(node.prompt))
        part = node.prompt[locale]
        if part.text is not None:
            return [Say(node.id, render(part.text, self.variables), locale=locale)]
        return [Say(node.id, None, part.audio, locale=locale)]

    def _ask(self, node: Node) -> list[Action]:
        self.attempt += 1
        f = node.fields
        max_keys = 1 if node.type == "menu" else f["max_length"] + (1 if f["terminator"] else 0)
        return [*self._say(node), Ask(node.id, node.type, f.get("timeout_s") or 5, max_keys, f.get("terminator") if node.type == "collect" else None)]

    def _lookup(self, node: Node) -> list[Action]:
        self.attempt += 1
        f = node.fields
        body = {k: render(v, self.variables) for k, v in f["body"].items()} if f.get("body") else None
        return [Lookup(node.id, render_url(f["url"], self.variables), f.get("method") or "GET", body, f.get("timeout_s") or 3)]

    def _leave(self, node: Node, exit_name: str) -> list[Action]:
        actions: list[Action] = [Leave(node.id, exit_name)]
        target = node.exits.get(exit_name)
        if target not in self.flow.nodes:  # only an unvalidated flow gets here
            return [*actions, self._finish({"action": "missing_exit", "node": node.id, "exit": exit_name})]
        return [*actions, *self._go(target)]

    def _finish(self, outcome: dict[str, Any]) -> Finish:
        self.outcome = outcome
        return Finish(outcome)

    def _go(self, node_id: str) -> list[Action]:
        """Enter nodes until one waits for an event or the flow ends."""
        actions: list[Action] = []
        while True:
            node = self.flow.nodes[node_id]
            self.node, self.attempt, self.failure = node, 0, "no_input"
            self.entered += 1
            if self.entered > self.max_steps:
                actions.append(self._finish({"action": "step_limit", "node": node.id}))
                return actions
            actions.append(Enter(node.id, node.type))
            f = node.fields
            if node.type in CALLER_ACTIONS:
                actions.extend(self._say(node))
                actions.append(self._finish({"action": node.type, "node": node.id, **{k: v for k, v in f.items() if v not in (None, [], {})}}))
                return actions
            if node.type in ("menu", "collect"):
                return [*actions, *self._ask(node)]
            if node.type == "http":
                return [*actions, *self._lookup(node)]
            if node.type == "hours":
                return [*actions, CheckHours(node.id, f["schedule_id"])]
            if node.type == "play":
                actions.extend(self._say(node))
                exit_name = "next"
            elif node.type == "set":
                self.variables[f["variable"]] = render(f.get("value") or "", self.variables)[:500]
                exit_name = "next"
            else:  # branch
                on = f["on"]
                subject = self.variables.get(on.removeprefix("var:"))
                exit_name = next((str(c["exit"]) for c in f["cases"] if case_matches(c["op"], subject, c["value"])), "else")
            actions.append(Leave(node.id, exit_name))
            target = node.exits.get(exit_name)
            if target not in self.flow.nodes:
                actions.append(self._finish({"action": "missing_exit", "node": node.id, "exit": exit_name}))
                return actions
            node_id = target
