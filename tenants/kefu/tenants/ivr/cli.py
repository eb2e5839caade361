"""``kefu ivr simulate FLOW --input 1,2,#``: walk a flow document from a file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

from kefu.tenants.ivr.flow import FlowContext, FlowInvalid, parse, validate
from kefu.tenants.ivr.simulate import simulate


def _pairs(values: list[str], what: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name:
            raise ValueError(f"{what} must be NAME=VALUE, not {value!r}")
        pairs[name] = rest
    return pairs


def simulate_command(
    path: str, *, inputs: str, locale: str, variables: list[str], answers: list[str], closed: list[str], out: IO[str],
) -> int:
    """Print the walk; 0 when the flow reached a caller action, 1 otherwise, 2 for bad input."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
        given = _pairs(variables, "--var")
        lookups: dict[str, Any] = {node: json.loads(text) for node, text in _pairs(answers, "--answer").items()}
    except (OSError, ValueError) as exc:
        print(f"kefu ivr simulate: {exc}", file=out)
        return 2
    try:
        flow = parse(document)
    except FlowInvalid as invalid:
        print("the document is not a flow:", file=out)
        for error in invalid.errors:
            print(f"  {error.node or '-'}{'.' + error.exit if error.exit else ''}: {error.code}: {error.message}", file=out)
        return 2
    for error in validate(flow, FlowContext(locales=flow.locales)):
        print(f"warning: {error.node or '-'}{'.' + error.exit if error.exit else ''}: {error.code}: {error.message}", file=out)
    walk = simulate(
        flow, inputs=inputs.split(",") if inputs else [], locale=locale, variables=given,
        lookup=lambda node, _vars: lookups.get(node.id), is_open=lambda schedule: "closed" if schedule in closed else "open",
    )
    for step in walk.steps:
        print(f"{step.node} ({step.type})", file=out)
        for said, heard in zip(step.said, step.heard + [None] * len(step.said)):
            print(f"  says: {said}", file=out)
            if heard is not None:
                print(f"  caller: {heard or '(nothing)'}", file=out)
        if step.exit is not None:
            print(f"  -> {step.exit}", file=out)
    print(f"outcome: {json.dumps(walk.outcome, ensure_ascii=False)}", file=out)
    print(f"variables: {json.dumps(walk.variables, ensure_ascii=False)}", file=out)
    if walk.inputs_left:
        print(f"inputs not used: {','.join(walk.inputs_left)}", file=out)
    return 0 if walk.outcome["action"] in ("queue", "voicemail", "callback", "transfer", "hangup") else 1
