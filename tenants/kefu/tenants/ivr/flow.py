"""The IVR flow document: parsing with precise errors, and validation before publishing.

A flow is a JSON object::

    {"schema": "kefu.ivr/1", "start": "welcome", "locales": ["en", "zh"],
     "nodes": {"welcome": {"type": "play", "prompt": {"en": {"text": "Welcome"}}, "exits": {"next": "menu"}}, ...}}

Nodes are joined by named exits (``exits``: exit name → node id).  Each node
type has its own fields and exits (``NODE_TYPES``); five types end the flow with
a caller action (``CALLER_ACTIONS``: queue, voicemail, callback, transfer,
hangup) and have no exits.  Menus nest to any depth: a menu's digit exits lead
to further nodes, menus included.

``parse`` turns a document into a :class:`Flow` or raises :class:`FlowInvalid`
listing every structural error; ``validate`` checks a parsed flow against the
tenant's facts (:class:`FlowContext`) and returns every error: each names its
node and, where it applies, its exit.  Error codes are stable (docs/ivr.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

SCHEMA = "kefu.ivr/1"
MAX_NODES = 2000
MAX_TEXT = 2000
DIGITS = "0123456789*#"
NODE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
VARIABLE = re.compile(r"^[a-z_][a-z0-9_]{0,31}$")
LOCALE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
TEMPLATE_VARIABLE = re.compile(r"\{([a-z_][a-z0-9_]{0,31})\}")
# Always set when a flow starts.
BUILTIN_VARIABLES = frozenset({"caller_number", "caller_name", "entry_point", "locale"})
CALLER_ACTIONS = frozenset({"queue", "voicemail", "callback", "transfer", "hangup"})
BRANCH_OPS = ("equals", "not_equals", "starts_with", "contains", "matches", "less_than", "greater_than", "is_set")
BRANCH_ON = re.compile(r"^(caller_number|caller_name|var:[a-z_][a-z0-9_]{0,31})$")


@dataclass(frozen=True)
class FlowError:
    code: str
    message: str
    node: str | None = None
    exit: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "node": self.node, "exit": self.exit}


class FlowInvalid(ValueError):
    """The document is not a flow; ``errors`` lists every reason."""

    def __init__(self, errors: list[FlowError]) -> None:
        super().__init__("; ".join(f"{e.node or '-'}: {e.message}" for e in errors[:5]))
        self.errors = errors


@dataclass(frozen=True)
class PromptPart:
    text: str | None = None
    audio: str | None = None  # an uploaded audio id


@dataclass(frozen=True)
class Node:
    id: str
    type: str
    exits: dict[str, str]
    prompt: dict[str, PromptPart] | None = None
    fields: dict[str, Any] = field(default_factory=dict)

    def targets(self) -> Iterator[tuple[str, str]]:
        yield from self.exits.items()


@dataclass(frozen=True)
class Flow:
    start: str
    locales: tuple[str, ...]
    nodes: dict[str, Node]


@dataclass(frozen=True)
class FlowContext:
    """What a flow may refer to in its tenant.  ``None``: not checked (the simulator)."""

    locales: tuple[str, ...] = ()
    queues: frozenset[str] | None = None
    skills: frozenset[str] | None = None
    schedules: frozenset[str] | None = None
    flows: frozenset[str] | None = None
    agents: frozenset[str] | None = None
    audio: frozenset[str] | None = None
    http_allowed: tuple[str, ...] | None = None  # URL prefixes the tenant configured


# --- parsing -----------------------------------------------------------------------------


class _Reader:
    """Reads one node's fields, collecting errors that name the node."""

    def __init__(self, node_id: str, raw: dict[str, Any], errors: list[FlowError]) -> None:
        self.node_id, self.raw, self.errors = node_id, raw, errors

    def error(self, code: str, message: str, exit: str | None = None) -> None:
        self.errors.append(FlowError(code, message, self.node_id, exit))

    def integer(self, name: str, default: int | None, low: int, high: int) -> int | None:
        value = self.raw.get(name, default)
        if value is None and default is None:
            self.error("missing_field", f"{name} is required")
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.error("invalid_field", f"{name} must be a whole number from {low} to {high}")
            return default
        return value

    def text(self, name: str, *, required: bool = True, pattern: re.Pattern[str] | None = None, limit: int = MAX_TEXT) -> str | None:
        value = self.raw.get(name)
        if value is None:
            if required:
                self.error("missing_field", f"{name} is required")
            return None
        if not isinstance(value, str) or not value.strip() or len(value) > limit or (pattern is not None and not pattern.match(value)):
            self.error("invalid_field", f"{name} must be " + (f"text matching {pattern.pattern}" if pattern else f"non-blank text of at most {limit} characters"))
            return None
        return value


def _prompt(reader: _Reader, *, required: bool) -> dict[str, PromptPart] | None:
    raw = reader.raw.get("prompt")
    if raw is None:
        if required:
            reader.error("missing_field", "prompt is required")
        return None
    if not isinstance(raw, dict) or not raw:
        reader.error("invalid_field", "prompt must map locales to {\"text\": ...} or {\"audio\": ...}")
        return None
    parts: dict[str, PromptPart] = {}
    for locale, part in raw.items():
        if not isinstance(locale, str) or not LOCALE.match(locale):
            reader.error("invalid_field", f"prompt locale {str(locale)[:16]!r} is not a locale such as en or zh-CN")
            continue
        if not isinstance(part, dict) or set(part) not in ({"text"}, {"audio"}):
            reader.error("invalid_field", f"the {locale} prompt must be {{\"text\": ...}} or {{\"audio\": ...}}")
            continue
        value = part.get("text", part.get("audio"))
        if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
            reader.error("invalid_field", f"the {locale} prompt must be non-blank text of at most {MAX_TEXT} characters")
            continue
        parts[locale] = PromptPart(text=value) if "text" in part else PromptPart(audio=value)
    return parts


def _skills(reader: _Reader) -> list[dict[str, Any]]:
    raw = reader.raw.get("skills", [])
    if not isinstance(raw, list) or len(raw) > 20:
        reader.error("invalid_field", "skills must be a list of at most 20 {skill_id, min_proficiency, required}")
        return []
    skills = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("skill_id"), str):
            reader.error("invalid_field", "each skill needs a skill_id")
            continue
        level = item.get("min_proficiency", 1)
        required = item.get("required", True)
        if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 10 or not isinstance(required, bool):
            reader.error("invalid_field", "min_proficiency is 1-10 and required true or false")
            continue
        skills.append({"skill_id": item["skill_id"], "min_proficiency": level, "required": required})
    return skills


def _fields(reader: _Reader, kind: str) -> tuple[dict[str, Any], dict[str, PromptPart] | None]:
    """The typed fields of a node of ``kind`` (errors collected on the reader)."""
    f: dict[str, Any] = {}
    prompt = None
    if kind == "play":
        prompt = _prompt(reader, required=True)
    elif kind == "menu":
        prompt = _prompt(reader, required=True)
        f["timeout_s"] = reader.integer("timeout_s", 5, 1, 60)
        f["retries"] = reader.integer("retries", 2, 0, 10)
    elif kind == "collect":
        prompt = _prompt(reader, required=True)
        f["variable"] = reader.text("variable", pattern=VARIABLE)
        f["min_length"] = reader.integer("min_length", 1, 1, 32)
        f["max_length"] = reader.integer("max_length", 16, 1, 32)
        f["timeout_s"] = reader.integer("timeout_s", 5, 1, 60)
        f["retries"] = reader.integer("retries", 2, 0, 10)
        terminator = reader.raw.get("terminator", "#")
        if terminator is not None and (not isinstance(terminator, str) or terminator not in ("#", "*")):
            reader.error("invalid_field", "terminator must be \"#\", \"*\" or null")
            terminator = "#"
        f["terminator"] = terminator
        if f["min_length"] and f["max_length"] and f["min_length"] > f["max_length"]:
            reader.error("invalid_field", "min_length must not exceed max_length")
    elif kind == "hours":
        f["schedule_id"] = reader.text("schedule_id", limit=64)
    elif kind == "branch":
        f["on"] = reader.text("on", pattern=BRANCH_ON)
        cases = reader.raw.get("cases")
        f["cases"] = []
        if not isinstance(cases, list) or not cases or len(cases) > 50:
            reader.error("invalid_field", "cases must be a list of 1 to 50 {op, value, exit}")
        else:
            for case in cases:
                op = case.get("op") if isinstance(case, dict) else None
                value = case.get("value") if isinstance(case, dict) else None
                exit_name = case.get("exit") if isinstance(case, dict) else None
                if op not in BRANCH_OPS or not isinstance(exit_name, str) or not VARIABLE.match(exit_name) or exit_name == "else":
                    reader.error("invalid_field", f"each case needs op (one of {', '.join(BRANCH_OPS)}) and an exit name (not else)")
                    continue
                if op != "is_set" and (not isinstance(value, str) or len(value) > 200):
                    reader.error("invalid_field", f"the {op} case needs a text value of at most 200 characters")
                    continue
                if op == "matches":
                    try:
                        re.compile(value)
                    except re.error:
                        reader.error("invalid_field", f"{value!r} is not a regular expression")
                        continue
                f["cases"].append({"op": op, "value": value, "exit": exit_name})
    elif kind == "http":
        f["url"] = reader.text("url", limit=500)
        method = reader.raw.get("method", "GET")
        if method not in ("GET", "POST"):
            reader.error("invalid_field", "method must be GET or POST")
        f["method"] = method
        f["timeout_s"] = reader.integer("timeout_s", 3, 1, 10)
        f["retries"] = reader.integer("retries", 0, 0, 3)
        body = reader.raw.get("body")
        if body is not None and (not isinstance(body, dict) or not all(isinstance(v, str) for v in body.values())):
            reader.error("invalid_field", "body must map names to text templates")
            body = None
        f["body"] = body
        assign = reader.raw.get("assign", {})
        if not isinstance(assign, dict) or not all(isinstance(k, str) and VARIABLE.match(k) and isinstance(v, str) and v for k, v in assign.items()):
            reader.error("invalid_field", "assign must map variable names to paths in the answer (such as customer.tier)")
            assign = {}
        f["assign"] = assign
    elif kind == "set":
        f["variable"] = reader.text("variable", pattern=VARIABLE)
        f["value"] = reader.text("value", limit=500) if reader.raw.get("value") != "" else ""
    elif kind == "queue":
        f["queue_id"] = reader.text("queue_id", limit=64)
        f["priority"] = reader.integer("priority", 0, -100, 100)
        f["skills"] = _skills(reader)
    elif kind in ("voicemail", "callback"):
        prompt = _prompt(reader, required=False)
        # Whose task the message or callback is (the entry point's queue when absent).
        f["queue_id"] = reader.text("queue_id", required=False, limit=64)
    elif kind == "transfer":
        agent, flow = reader.raw.get("agent_id"), reader.raw.get("flow_id")
        if (agent is None) == (flow is None):
            reader.error("invalid_field", "a transfer goes to exactly one of agent_id and flow_id")
        f["agent_id"] = reader.text("agent_id", required=False, limit=64)
        f["flow_id"] = reader.text("flow_id", required=False, limit=64)
    elif kind == "hangup":
        prompt = _prompt(reader, required=False)
    return f, prompt


NODE_TYPES = ("play", "menu", "collect", "hours", "branch", "http", "set", *sorted(CALLER_ACTIONS))
_FIELDS = {
    "play": {"prompt"}, "menu": {"prompt", "timeout_s", "retries"},
    "collect": {"prompt", "variable", "min_length", "max_length", "timeout_s", "retries", "terminator"},
    "hours": {"schedule_id"}, "branch": {"on", "cases"},
    "http": {"url", "method", "timeout_s", "retries", "body", "assign"}, "set": {"variable", "value"},
    "queue": {"queue_id", "priority", "skills"}, "voicemail": {"prompt", "queue_id"}, "callback": {"prompt", "queue_id"},
    "transfer": {"agent_id", "flow_id"}, "hangup": {"prompt"},
}


def exits_of(node: Node) -> tuple[frozenset[str], frozenset[str]]:
    """(the exits the node must have, the exits it may have)."""
    kind = node.type
    if kind in ("play", "set"):
        return frozenset({"next"}), frozenset({"next"})
    if kind == "menu":
        return frozenset({"invalid", "no_input"}), frozenset({"invalid", "no_input", *DIGITS})
    if kind == "collect":
        return frozenset({"done", "invalid", "no_input"}), frozenset({"done", "invalid", "no_input"})
    if kind == "hours":
        return frozenset({"open", "closed"}), frozenset({"open", "closed", "holiday"})
    if kind == "branch":
        names = frozenset({"else", *(case["exit"] for case in node.fields.get("cases", []))})
        return names, names
    if kind == "http":
        return frozenset({"ok", "fallback"}), frozenset({"ok", "fallback"})
    return frozenset(), frozenset()


def parse(document: Any) -> Flow:
    """The flow in ``document``, or ``FlowInvalid`` listing every structural error."""
    errors: list[FlowError] = []
    if not isinstance(document, dict):
        raise FlowInvalid([FlowError("invalid_document", "a flow is a JSON object with start and nodes")])
    unknown = set(document) - {"schema", "start", "locales", "nodes", "name", "description"}
    if unknown:
        errors.append(FlowError("invalid_document", f"unknown top-level fields: {', '.join(sorted(map(str, unknown)))[:200]}"))
    if document.get("schema", SCHEMA) != SCHEMA:
        errors.append(FlowError("invalid_document", f"schema must be {SCHEMA}"))
    locales = document.get("locales", [])
    if not isinstance(locales, list) or not all(isinstance(x, str) and LOCALE.match(x) for x in locales) or len(locales) > 20:
        errors.append(FlowError("invalid_document", "locales must be a list of locales such as en or zh-CN"))
        locales = []
    raw_nodes = document.get("nodes")
    if not isinstance(raw_nodes, dict) or not raw_nodes:
        raise FlowInvalid([*errors, FlowError("invalid_document", "nodes must map node ids to nodes")])
    if len(raw_nodes) > MAX_NODES:
        raise FlowInvalid([*errors, FlowError("too_many_nodes", f"a flow has at most {MAX_NODES} nodes")])
    start = document.get("start")
    if not isinstance(start, str) or start not in raw_nodes:
        errors.append(FlowError("missing_start", "start must name one of the nodes", node=start if isinstance(start, str) else None))
    nodes: dict[str, Node] = {}
    for node_id, raw in raw_nodes.items():
        if not isinstance(node_id, str) or not NODE_ID.match(node_id):
            errors.append(FlowError("invalid_node_id", f"node ids are 1-64 letters, digits, _ or -: {str(node_id)[:70]!r}"))
            continue
        if not isinstance(raw, dict):
            errors.append(FlowError("invalid_node", "a node is an object with a type", node=node_id))
            continue
        kind = raw.get("type")
        if kind not in NODE_TYPES:
            errors.append(FlowError("unknown_node_type", f"type must be one of {', '.join(NODE_TYPES)}", node=node_id))
            continue
        reader = _Reader(node_id, raw, errors)
        extra = set(raw) - _FIELDS[kind] - {"type", "exits", "label"}
        if extra:
            reader.error("invalid_field", f"a {kind} node has no field {', '.join(sorted(map(str, extra)))[:200]}")
        fields, prompt = _fields(reader, kind)
        exits = raw.get("exits", {})
        if not isinstance(exits, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in exits.items()):
            reader.error("invalid_field", "exits must map exit names to node ids")
            exits = {}
        nodes[node_id] = Node(node_id, kind, dict(exits), prompt, fields)
    if errors:
        raise FlowInvalid(errors)
    return Flow(start=start, locales=tuple(locales), nodes=nodes)  # type: ignore[arg-type]


# --- validation ----------------------------------------------------------------------------


def validate(flow: Flow, context: FlowContext) -> list[FlowError]:
    """Every reason ``flow`` cannot be published in ``context`` (empty: it can)."""
    errors: list[FlowError] = []
    errors.extend(_check_exits(flow))
    reachable = _reachable(flow)
    for node_id in flow.nodes:
        if node_id not in reachable:
            errors.append(FlowError("unreachable_node", "no path from the start leads here", node=node_id))
    errors.extend(_check_loops(flow, reachable))
    errors.extend(_check_prompts(flow, context))
    errors.extend(_check_references(flow, context))
    errors.extend(_check_variables(flow, reachable))
    return errors


def _check_exits(flow: Flow) -> Iterator[FlowError]:
    for node in flow.nodes.values():
        required, allowed = exits_of(node)
        for name in sorted(required - set(node.exits)):
            yield FlowError("missing_exit", f"the {node.type} node needs a {name} exit", node=node.id, exit=name)
        for name, target in sorted(node.exits.items()):
            if name not in allowed:
                yield FlowError("unknown_exit", f"a {node.type} node has no exit {name!r}", node=node.id, exit=name)
            elif target not in flow.nodes:
                yield FlowError("unknown_target", f"exit {name} leads to {target!r}, which is not a node", node=node.id, exit=name)
        if node.type == "menu" and not set(node.exits) & set(DIGITS):
            yield FlowError("missing_exit", "a menu needs at least one digit exit", node=node.id)


def _edges(flow: Flow, node: Node) -> Iterator[tuple[str, str]]:
    for name, target in node.exits.items():
        if target in flow.nodes:
            yield name, target


def _reachable(flow: Flow) -> set[str]:
    seen = {flow.start}
    todo = [flow.start]
    while todo:
        for _, target in _edges(flow, flow.nodes[todo.pop()]):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def _check_loops(flow: Flow, reachable: set[str]) -> Iterator[FlowError]:
    """A reachable node from which no caller action can be reached traps the caller."""
    incoming: dict[str, list[str]] = {node_id: [] for node_id in flow.nodes}
    for node in flow.nodes.values():
        for _, target in _edges(flow, node):
            incoming[target].append(node.id)
    leads_out = {node.id for node in flow.nodes.values() if node.type in CALLER_ACTIONS}
    todo = list(leads_out)
    while todo:
        for source in incoming[todo.pop()]:
            if source not in leads_out:
                leads_out.add(source)
                todo.append(source)
    for node_id in flow.nodes:
        if node_id in reachable and node_id not in leads_out:
            yield FlowError("loop_without_exit", "every path from here loops or stops without a caller action (queue, voicemail, callback, transfer or hangup)", node=node_id)


def _check_prompts(flow: Flow, context: FlowContext) -> Iterator[FlowError]:
    locales = tuple(dict.fromkeys((*context.locales, *flow.locales)))
    for node in flow.nodes.values():
        if node.prompt is None:
            continue
        for locale in locales:
            if locale not in node.prompt:
                yield FlowError("missing_prompt", f"no {locale} prompt (the tenant uses {', '.join(locales)})", node=node.id)
        if context.audio is not None:
            for locale, part in node.prompt.items():
                if part.audio is not None and part.audio not in context.audio:
                    yield FlowError("unknown_audio", f"the {locale} prompt's audio {part.audio!r} was not uploaded", node=node.id)


def _check_references(flow: Flow, context: FlowContext) -> Iterator[FlowError]:
    def unknown(known: frozenset[str] | None, value: str | None) -> bool:
        return known is not None and value is not None and value not in known

    for node in flow.nodes.values():
        f = node.fields
        if node.type in ("queue", "voicemail", "callback"):
            if unknown(context.queues, f.get("queue_id")):
                yield FlowError("unknown_queue", f"queue {f['queue_id']!r} is not one of the tenant's queues", node=node.id)
            for skill in f.get("skills", []):
                if unknown(context.skills, skill["skill_id"]):
                    yield FlowError("unknown_skill", f"skill {skill['skill_id']!r} is not one of the tenant's skills", node=node.id)
        elif node.type == "hours" and unknown(context.schedules, f.get("schedule_id")):
            yield FlowError("unknown_schedule", f"schedule {f['schedule_id']!r} is not one of the tenant's schedules", node=node.id)
        elif node.type == "transfer":
            if unknown(context.agents, f.get("agent_id")):
                yield FlowError("unknown_agent", f"agent {f['agent_id']!r} is not one of the tenant's agents", node=node.id)
            if unknown(context.flows, f.get("flow_id")):
                yield FlowError("unknown_flow", f"flow {f['flow_id']!r} is not one of the tenant's flows", node=node.id)
        elif node.type == "http" and context.http_allowed is not None and f.get("url"):
            if not any(f["url"].startswith(prefix) for prefix in context.http_allowed):
                yield FlowError("http_address_not_allowed", "the URL is not under an address the tenant configured for lookups", node=node.id)


def used_variables(node: Node) -> set[str]:
    """The variables a node reads (prompt texts, templates, branch subject)."""
    texts: list[str] = [part.text for part in (node.prompt or {}).values() if part.text]
    f = node.fields
    if node.type == "http":
        texts.append(f.get("url") or "")
        texts.extend((f.get("body") or {}).values())
    elif node.type == "set":
        texts.append(f.get("value") or "")
    used = {name for text in texts for name in TEMPLATE_VARIABLE.findall(text)}
    on = f.get("on") if node.type == "branch" else None
    if on and on.startswith("var:") and not any(case["op"] == "is_set" for case in f.get("cases", [])):
        used.add(on[4:])
    return used


def set_variables(node: Node, exit_name: str) -> set[str]:
    """The variables set when the node leaves through ``exit_name``."""
    f = node.fields
    if node.type == "collect" and exit_name == "done" and f.get("variable"):
        return {f["variable"]}
    if node.type == "set" and f.get("variable"):
        return {f["variable"]}
    if node.type == "http" and exit_name == "ok":
        return set(f.get("assign") or {})
    return set()


def _check_variables(flow: Flow, reachable: set[str]) -> Iterator[FlowError]:
    """Definite assignment: a variable read at a node must be set on every path to it."""
    every = set(BUILTIN_VARIABLES)
    for node in flow.nodes.values():
        for name in node.exits:
            every |= set_variables(node, name)
    known: dict[str, set[str]] = {node_id: set(every) for node_id in reachable}
    known[flow.start] = set(BUILTIN_VARIABLES)
    changed = True
    while changed:
        changed = False
        for node_id in reachable:
            node = flow.nodes[node_id]
            for name, target in _edges(flow, node):
                arriving = known[node_id] | set_variables(node, name)
                narrowed = known[target] & arriving
                if narrowed != known[target]:
                    known[target] = narrowed
                    changed = True
    for node_id in sorted(reachable):
        missing = used_variables(flow.nodes[node_id]) - known[node_id]
        for name in sorted(missing):
            yield FlowError("variable_before_set", f"{{{name}}} is read here but not set on every path that leads here", node=node_id)


def caller_action_nodes(flow: Flow) -> Iterable[Node]:
    return (node for node in flow.nodes.values() if node.type in CALLER_ACTIONS)
