"""Walk an IVR flow without media: the path, what the caller hears, the variables.

It drives :class:`kefu.tenants.ivr.machine.IvrMachine`, the rules a live call
follows too.  The caller's keypresses are given up front, one entry per question the flow
asks (a menu takes one digit, a digit collection a string such as ``"1234#"``);
an empty entry, or running out of entries, is silence until the node's timeout.
Lookups to the tenant's system and business hours are answered by the caller
of ``simulate`` (``lookup``, ``is_open``), so a simulation never touches the
network; a lookup that has no answer takes the fallback exit, as a timeout
would.  The same walk is what ``kefu ivr simulate``, the API and the portal show.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kefu.tenants.ivr.flow import Flow, Node
from kefu.tenants.ivr.machine import (
    MAX_STEPS,
    Action,
    Ask,
    CheckHours,
    Enter,
    IvrMachine,
    Leave,
    Say,
    render,
)
from kefu.tenants.ivr.machine import Lookup as LookupAction

__all__ = ["MAX_STEPS", "Step", "Walk", "render", "simulate"]

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


def simulate(
    flow: Flow, *, inputs: list[str], locale: str = "en", variables: dict[str, str] | None = None,
    lookup: Lookup | None = None, is_open: Callable[[str], str] | None = None,
) -> Walk:
    """Walk ``flow`` as a caller pressing ``inputs`` would (see the module's notes).
    ``is_open(schedule_id)`` answers ``open``, ``closed`` or ``holiday`` (default open)."""
    machine = IvrMachine(flow, locale=locale, variables=variables)
    left = list(inputs)
    steps: list[Step] = []
    pending = machine.start()
    while pending:
        event: Callable[[], list[Action]] | None = None
        for action in pending:
            if isinstance(action, Enter):
                steps.append(Step(action.node, action.type))
            elif isinstance(action, Say):
                steps[-1].said.append(action.text if action.text is not None else f"[audio {action.audio}]")
            elif isinstance(action, Leave):
                steps[-1].exit = action.exit
            elif isinstance(action, Ask):
                pressed = left.pop(0) if left else ""
                steps[-1].heard.append(pressed)
                event = lambda pressed=pressed: machine.answer(pressed)
            elif isinstance(action, LookupAction):
                node = flow.nodes[action.node]
                try:
                    answer = lookup(node, dict(machine.variables)) if lookup else None
                except Exception:  # noqa: BLE001 - a lookup that errors is a failed attempt
                    answer = None
                event = lambda answer=answer: machine.looked_up(answer)
            elif isinstance(action, CheckHours):
                state = is_open(action.schedule_id) if is_open else "open"
                event = lambda state=state: machine.hours(state)
        pending = event() if event is not None else []
    outcome = machine.outcome or {"action": "missing_exit"}
    return Walk(steps, outcome, machine.variables, left)
