"""The published JSON Schema of a flow document (draft 2020-12).

It describes the shape (``kefu.tenants.ivr.flow.parse`` is the authority and
says more: exits per node type, loops, prompts per locale, references).
"""

from __future__ import annotations

from typing import Any

from kefu.tenants.ivr.flow import (
    BRANCH_OPS,
    DIGITS,
    LOCALE,
    MAX_NODES,
    NODE_ID,
    SCHEMA,
    VARIABLE,
)

_TEXT = {"type": "string", "minLength": 1, "maxLength": 2000}
_ID = {"type": "string", "minLength": 1, "maxLength": 64}
_PROMPT = {
    "type": "object",
    "description": "locale -> what is said: text (spoken by text-to-speech, {variable} filled in) or an uploaded audio id",
    "propertyNames": {"pattern": LOCALE.pattern},
    "minProperties": 1,
    "additionalProperties": {
        "oneOf": [
            {"type": "object", "properties": {"text": _TEXT}, "required": ["text"], "additionalProperties": False},
            {"type": "object", "properties": {"audio": _ID}, "required": ["audio"], "additionalProperties": False},
        ]
    },
}
_EXITS = {"type": "object", "additionalProperties": {"type": "string", "pattern": NODE_ID.pattern}}


def _node(kind: str, properties: dict[str, Any], required: list[str], exits: dict[str, Any] | None, description: str) -> dict[str, Any]:
    props: dict[str, Any] = {"type": {"const": kind}, "label": {"type": "string", "maxLength": 200}, **properties}
    if exits is not None:
        props["exits"] = exits
    return {
        "type": "object", "description": description, "properties": props,
        "required": ["type", *required, *(["exits"] if exits is not None else [])], "additionalProperties": False,
    }


def _named_exits(*names: str, optional: tuple[str, ...] = ()) -> dict[str, Any]:
    target = {"type": "string", "pattern": NODE_ID.pattern}
    return {
        "type": "object", "properties": {name: target for name in (*names, *optional)}, "required": list(names),
        "additionalProperties": False,
    }


def flow_schema() -> dict[str, Any]:
    timeout = {"type": "integer", "minimum": 1, "maximum": 60, "default": 5}
    retries = {"type": "integer", "minimum": 0, "maximum": 10, "default": 2}
    menu_exits = {
        "type": "object",
        "description": "one exit per digit the menu offers (0-9, *, #), plus invalid and no_input (after the retries)",
        "properties": {name: {"type": "string", "pattern": NODE_ID.pattern} for name in (*DIGITS, "invalid", "no_input")},
        "required": ["invalid", "no_input"], "additionalProperties": False,
    }
    nodes = [
        _node("play", {"prompt": _PROMPT}, ["prompt"], _named_exits("next"), "say something, then go on"),
        _node("menu", {"prompt": _PROMPT, "timeout_s": timeout, "retries": retries}, ["prompt"], menu_exits,
              "ask for one digit; menus nest without limit"),
        _node("collect", {
            "prompt": _PROMPT, "variable": {"type": "string", "pattern": VARIABLE.pattern},
            "min_length": {"type": "integer", "minimum": 1, "maximum": 32, "default": 1},
            "max_length": {"type": "integer", "minimum": 1, "maximum": 32, "default": 16},
            "terminator": {"enum": ["#", "*", None], "default": "#"}, "timeout_s": timeout, "retries": retries,
        }, ["prompt", "variable"], _named_exits("done", "invalid", "no_input"), "collect digits into a variable"),
        _node("hours", {"schedule_id": _ID}, ["schedule_id"], _named_exits("open", "closed", optional=("holiday",)),
              "branch on a schedule's business hours and holidays (no holiday exit: a holiday is closed)"),
        _node("branch", {
            "on": {"type": "string", "pattern": "^(caller_number|caller_name|var:[a-z_][a-z0-9_]{0,31})$"},
            "cases": {"type": "array", "minItems": 1, "maxItems": 50, "items": {
                "type": "object", "properties": {"op": {"enum": list(BRANCH_OPS)}, "value": {"type": "string", "maxLength": 200},
                                                 "exit": {"type": "string", "pattern": VARIABLE.pattern}},
                "required": ["op", "exit"], "additionalProperties": False,
            }},
        }, ["on", "cases"], _EXITS, "the first case that matches names the exit; none: else"),
        _node("http", {
            "url": {"type": "string", "maxLength": 500, "description": "under an address the tenant configured; {variable} filled in"},
            "method": {"enum": ["GET", "POST"], "default": "GET"},
            "timeout_s": {"type": "integer", "minimum": 1, "maximum": 10, "default": 3},
            "retries": {"type": "integer", "minimum": 0, "maximum": 3, "default": 0},
            "body": {"type": "object", "additionalProperties": {"type": "string"}},
            "assign": {"type": "object", "propertyNames": {"pattern": VARIABLE.pattern}, "additionalProperties": {"type": "string", "minLength": 1},
                       "description": "variable -> path in the JSON answer (customer.tier)"},
        }, ["url"], _named_exits("ok", "fallback"), "look something up in the tenant's own system; a timeout, an error or an answer without the paths: fallback"),
        _node("set", {"variable": {"type": "string", "pattern": VARIABLE.pattern}, "value": {"type": "string", "maxLength": 500}},
              ["variable", "value"], _named_exits("next"), "set a variable ({variable} filled in)"),
        _node("queue", {
            "queue_id": _ID, "priority": {"type": "integer", "minimum": -100, "maximum": 100, "default": 0},
            "skills": {"type": "array", "maxItems": 20, "items": {
                "type": "object", "properties": {"skill_id": _ID, "min_proficiency": {"type": "integer", "minimum": 1, "maximum": 10},
                                                 "required": {"type": "boolean"}},
                "required": ["skill_id"], "additionalProperties": False,
            }},
        }, ["queue_id"], None, "caller action: wait in a queue for an agent"),
        _node("voicemail", {"prompt": _PROMPT, "queue_id": _ID}, [], None, "caller action: leave a message (a task for the queue's agents)"),
        _node("callback", {"prompt": _PROMPT, "queue_id": _ID}, [], None, "caller action: be called back, keeping the place in the queue"),
        _node("transfer", {"agent_id": _ID, "flow_id": _ID}, [], None, "caller action: to one agent or into another flow"),
        _node("hangup", {"prompt": _PROMPT}, [], None, "caller action: say goodbye and end the call"),
    ]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://kefu.example/schemas/ivr-flow-1.json",
        "title": "Kefu IVR flow",
        "type": "object",
        "properties": {
            "schema": {"const": SCHEMA},
            "name": {"type": "string", "maxLength": 200},
            "description": {"type": "string", "maxLength": 2000},
            "start": {"type": "string", "pattern": NODE_ID.pattern},
            "locales": {"type": "array", "maxItems": 20, "items": {"type": "string", "pattern": LOCALE.pattern}},
            "nodes": {
                "type": "object", "minProperties": 1, "maxProperties": MAX_NODES,
                "propertyNames": {"pattern": NODE_ID.pattern},
                "additionalProperties": {"oneOf": nodes},
            },
        },
        "required": ["start", "nodes"],
        "additionalProperties": False,
    }
