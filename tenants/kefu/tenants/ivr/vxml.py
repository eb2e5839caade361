"""Import a VoiceXML subset into a flow document.

The subset (docs/ivr.md): ``<vxml>`` holding ``<form>`` and ``<menu>`` dialogs
(the first is where the flow starts); in a form, ``<block>`` (prompts, then
``<goto next="#dialog"/>`` or ``<disconnect/>``) or one ``<field>`` with a DTMF
grammar (``type="digits?minlength=4;maxlength=8"`` or ``<grammar mode="dtmf">``),
its ``<prompt>``, and ``<filled>``, ``<noinput>``, ``<nomatch>`` each ending in
a ``<goto>``; a menu's ``<prompt>``, ``<choice dtmf="1" next="#dialog"/>`` and
``<noinput>``/``<nomatch>``; prompts of text or ``<audio src="…"/>`` with an
``xml:lang``.  A handler left out ends the call (a generated hangup node).

Anything outside the subset — another element, a DTD or entity, script,
``<submit>``, an expression — is refused with a clear error naming the element
and its line; nothing is half-imported.
"""

from __future__ import annotations

import re
import xml.parsers.expat
from dataclasses import dataclass, field
from typing import Any

from kefu.tenants.ivr.flow import DIGITS, LOCALE, NODE_ID, SCHEMA

MAX_VXML_BYTES = 256 * 1024
DIGITS_TYPE = re.compile(r"^(builtin:dtmf/)?digits(\?(?P<params>[a-z=;0-9]*))?$")


@dataclass(frozen=True)
class VxmlError:
    code: str
    message: str
    line: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "line": self.line}


class VxmlInvalid(ValueError):
    def __init__(self, errors: list[VxmlError]) -> None:
        super().__init__("; ".join(e.message for e in errors[:5]))
        self.errors = errors


@dataclass
class _El:
    tag: str
    attrs: dict[str, str]
    line: int
    children: list[_El] = field(default_factory=list)
    text: str = ""


class _Refused(Exception):
    def __init__(self, error: VxmlError) -> None:
        self.error = error


def _tree(source: str) -> _El:
    if len(source.encode("utf-8")) > MAX_VXML_BYTES:
        raise VxmlInvalid([VxmlError("vxml_too_large", f"a VoiceXML document has at most {MAX_VXML_BYTES // 1024} KiB")])
    parser = xml.parsers.expat.ParserCreate()
    stack: list[_El] = []
    roots: list[_El] = []

    def refuse(what: str) -> Any:
        def handler(*_args: Any) -> None:
            raise _Refused(VxmlError("vxml_unsupported", f"{what} is not supported", parser.CurrentLineNumber))
        return handler

    def start(tag: str, attrs: dict[str, str]) -> None:
        element = _El(tag, dict(attrs), parser.CurrentLineNumber)
        (stack[-1].children if stack else roots).append(element)
        stack.append(element)

    def end(_tag: str) -> None:
        stack.pop()

    def text(data: str) -> None:
        if stack:
            stack[-1].text += data

    parser.StartElementHandler, parser.EndElementHandler, parser.CharacterDataHandler = start, end, text
    parser.StartDoctypeDeclHandler = refuse("a DOCTYPE")
    parser.EntityDeclHandler = refuse("an entity declaration")
    parser.ProcessingInstructionHandler = refuse("a processing instruction")
    try:
        parser.Parse(source, True)
    except _Refused as refused:
        raise VxmlInvalid([refused.error]) from None
    except xml.parsers.expat.ExpatError as exc:
        raise VxmlInvalid([VxmlError("vxml_malformed", f"not well-formed XML: {xml.parsers.expat.ErrorString(exc.code)}", exc.lineno)]) from None
    if len(roots) != 1 or roots[0].tag != "vxml":
        raise VxmlInvalid([VxmlError("vxml_malformed", "the document element must be <vxml>", roots[0].line if roots else None)])
    return roots[0]


class _Importer:
    def __init__(self, root: _El) -> None:
        self.root = root
        self.errors: list[VxmlError] = []
        self.nodes: dict[str, dict[str, Any]] = {}
        self.locale = root.attrs.get("xml:lang", "en")
        if not LOCALE.match(self.locale):
            self.error("vxml_invalid", f"xml:lang {self.locale!r} is not a locale such as en or zh-CN", root)
            self.locale = "en"
        self.locales: set[str] = set()
        self.dialogs = [c for c in root.children if c.tag in ("form", "menu")]
        self.aliases: dict[str, str] = {}

    def error(self, code: str, message: str, element: _El | None) -> None:
        self.errors.append(VxmlError(code, message, element.line if element else None))

    def unsupported(self, element: _El, where: str) -> None:
        self.error("vxml_unsupported", f"<{element.tag}> in <{where}> is outside the supported subset", element)

    def dialog_id(self, element: _El) -> str | None:
        value = element.attrs.get("id")
        if value is None or not NODE_ID.match(value):
            self.error("vxml_invalid", f"<{element.tag}> needs an id of 1-64 letters, digits, _ or -", element)
            return None
        return value

    def target(self, element: _El) -> str | None:
        """``#dialog`` of a goto or choice."""
        extra = set(element.attrs) - {"next", "dtmf"}
        if extra:
            self.error("vxml_unsupported", f"<{element.tag}> attribute(s) {', '.join(sorted(extra))} are outside the subset (only next=\"#dialog\")", element)
        next_ = element.attrs.get("next", "")
        if not next_.startswith("#") or not NODE_ID.match(next_[1:]):
            self.error("vxml_unsupported", f"<{element.tag}> must go to a dialog of this document (next=\"#id\")", element)
            return None
        return next_[1:]

    def prompt(self, elements: list[_El]) -> dict[str, dict[str, str]] | None:
        parts: dict[str, dict[str, str]] = {}
        for element in elements:
            locale = element.attrs.get("xml:lang", self.locale)
            if not LOCALE.match(locale):
                self.error("vxml_invalid", f"xml:lang {locale!r} is not a locale", element)
                continue
            audio = [c for c in element.children if c.tag == "audio"]
            others = [c for c in element.children if c.tag not in ("audio", "break")]
            for other in others:
                self.unsupported(other, "prompt")
            words = " ".join(element.text.split())
            if audio and not words:
                source = audio[0].attrs.get("src", "")
                if not source or len(audio) > 1:
                    self.error("vxml_invalid", "a prompt plays one <audio src=\"…\"/>", element)
                    continue
                parts[locale] = {"audio": source[:64]}
            elif words and len(words) <= 2000:
                parts[locale] = {"text": words}
            else:
                self.error("vxml_invalid", "a prompt says text (at most 2,000 characters) or plays one audio file", element)
            self.locales.add(locale)
        return parts or None

    def handler_target(self, handler: _El | None, dialog: str, kind: str) -> str:
        """Where a filled/noinput/nomatch handler goes: its goto, a disconnect, or a hangup."""
        if handler is None:
            return self.hangup(f"{dialog}__{kind}")
        steps = [c for c in handler.children if c.tag != "prompt"]
        prompts = [c for c in handler.children if c.tag == "prompt"]
        for other in (c for c in steps if c.tag not in ("goto", "disconnect")):
            self.unsupported(other, handler.tag)
        if len(steps) != 1 or steps[0].tag not in ("goto", "disconnect"):
            self.error("vxml_unsupported", f"<{handler.tag}> must end in one <goto next=\"#…\"/> or <disconnect/> (optionally after prompts)", handler)
            return self.hangup(f"{dialog}__{kind}")
        if steps[0].tag == "disconnect":
            return self.hangup(f"{dialog}__{kind}", self.prompt(prompts))
        goto = self.target(steps[0]) or dialog
        if prompts:
            node_id = f"{dialog}__{kind}_say"
            self.nodes[node_id] = {"type": "play", "prompt": self.prompt(prompts), "exits": {"next": goto}}
            return node_id
        return goto

    def hangup(self, node_id: str, prompt: dict[str, Any] | None = None) -> str:
        self.nodes[node_id] = {"type": "hangup", **({"prompt": prompt} if prompt else {})}
        return node_id

    def menu(self, element: _El, dialog: str) -> None:
        exits: dict[str, str] = {}
        handlers: dict[str, _El] = {}
        prompts = []
        for child in element.children:
            if child.tag == "prompt":
                prompts.append(child)
            elif child.tag == "choice":
                dtmf = child.attrs.get("dtmf", "")
                target = self.target(child)
                if len(dtmf) != 1 or dtmf not in DIGITS:
                    self.error("vxml_unsupported", "a <choice> needs dtmf=\"<one key>\" (0-9, * or #)", child)
                elif dtmf in exits:
                    self.error("vxml_invalid", f"two choices for key {dtmf}", child)
                elif target is not None:
                    exits[dtmf] = target
            elif child.tag in ("noinput", "nomatch"):
                handlers[child.tag] = child
            else:
                self.unsupported(child, "menu")
        exits["no_input"] = self.handler_target(handlers.get("noinput"), dialog, "no_input")
        exits["invalid"] = self.handler_target(handlers.get("nomatch"), dialog, "invalid")
        self.nodes[dialog] = {"type": "menu", "prompt": self.prompt(prompts) or {self.locale: {"text": "Please choose."}}, "exits": exits}

    def field(self, element: _El, dialog: str) -> None:
        name = element.attrs.get("name", "")
        if not re.match(r"^[a-z_][a-z0-9_]{0,31}$", name):
            self.error("vxml_invalid", "a <field> needs a name of lower-case letters, digits and _", element)
            name = "input"
        limits = {"min_length": 1, "max_length": 16}
        kind = element.attrs.get("type")
        grammars = [c for c in element.children if c.tag == "grammar"]
        spec = kind or (grammars[0].attrs.get("src") if grammars else None) or ""
        matched = DIGITS_TYPE.match(spec)
        if matched is None or (grammars and grammars[0].attrs.get("mode", "dtmf") != "dtmf"):
            self.error("vxml_unsupported", "a <field> takes DTMF digits only (type=\"digits?minlength=N;maxlength=M\")", element)
        else:
            for pair in filter(None, (matched.group("params") or "").split(";")):
                key, _, value = pair.partition("=")
                if key in ("minlength", "maxlength", "length") and value.isdigit() and 1 <= int(value) <= 32:
                    if key in ("minlength", "length"):
                        limits["min_length"] = int(value)
                    if key in ("maxlength", "length"):
                        limits["max_length"] = int(value)
                else:
                    self.error("vxml_unsupported", f"digits parameter {pair!r} is outside the subset (minlength, maxlength, length: 1-32)", element)
        handlers: dict[str, _El] = {}
        prompts = []
        for child in element.children:
            if child.tag == "prompt":
                prompts.append(child)
            elif child.tag in ("filled", "noinput", "nomatch"):
                handlers[child.tag] = child
            elif child.tag != "grammar":
                self.unsupported(child, "field")
        self.nodes[dialog] = {
            "type": "collect", "prompt": self.prompt(prompts) or {self.locale: {"text": "Please enter the digits."}}, "variable": name,
            **limits, "terminator": "#",
            "exits": {
                "done": self.handler_target(handlers.get("filled"), dialog, "done"),
                "no_input": self.handler_target(handlers.get("noinput"), dialog, "no_input"),
                "invalid": self.handler_target(handlers.get("nomatch"), dialog, "invalid"),
            },
        }

    def block(self, element: _El, dialog: str) -> None:
        prompts = [c for c in element.children if c.tag == "prompt"]
        steps = [c for c in element.children if c.tag != "prompt"]
        for other in (c for c in steps if c.tag not in ("goto", "disconnect")):
            self.unsupported(other, "block")
        if len(steps) != 1 or steps[0].tag not in ("goto", "disconnect"):
            self.error("vxml_unsupported", "a <block> says its prompts, then ends in one <goto next=\"#…\"/> or <disconnect/>", element)
            return
        if steps[0].tag == "disconnect":
            self.hangup(dialog, self.prompt(prompts))
            return
        target = self.target(steps[0])
        if target is None:
            return
        if prompts:
            self.nodes[dialog] = {"type": "play", "prompt": self.prompt(prompts), "exits": {"next": target}}
        else:
            self.aliases[dialog] = target  # a block that only goes on: whoever goes there goes straight on

    def form(self, element: _El, dialog: str) -> None:
        items = [c for c in element.children if c.tag in ("block", "field")]
        for other in (c for c in element.children if c.tag not in ("block", "field")):
            self.unsupported(other, "form")
        if len(items) != 1:
            self.error("vxml_unsupported", "a <form> holds exactly one <block> or one <field> in this subset", element)
            return
        (self.block if items[0].tag == "block" else self.field)(items[0], dialog)

    def resolve(self, target: str) -> str:
        """Follow blocks that only go on; a ring of them is an error."""
        seen = []
        while target in self.aliases:
            if target in seen:
                self.error("vxml_invalid", f"the blocks {', '.join(seen)} only go to each other", None)
                return target
            seen.append(target)
            target = self.aliases[target]
        return target

    def run(self) -> dict[str, Any]:
        for other in (c for c in self.root.children if c.tag not in ("form", "menu")):
            self.unsupported(other, "vxml")
        if not self.dialogs:
            self.error("vxml_invalid", "the document has no <form> or <menu>", self.root)
        seen: set[str] = set()
        for dialog in self.dialogs:
            dialog_id = self.dialog_id(dialog)
            if dialog_id is None:
                continue
            if dialog_id in seen:
                self.error("vxml_invalid", f"two dialogs are called {dialog_id}", dialog)
                continue
            seen.add(dialog_id)
            (self.menu if dialog.tag == "menu" else self.form)(dialog, dialog_id)
        for node_id, node in self.nodes.items():
            exits = node.get("exits", {})
            for name, target in exits.items():
                exits[name] = target = self.resolve(target)
                if target is not None and target not in self.nodes:
                    self.error("vxml_invalid", f"{node_id} goes to #{target}, which is no dialog of this document", None)
        start = self.resolve(self.dialog_id(self.dialogs[0]) or "") if self.dialogs else ""
        if self.errors:
            raise VxmlInvalid(self.errors)
        return {"schema": SCHEMA, "start": start, "locales": sorted(self.locales | {self.locale}), "nodes": self.nodes}


def import_vxml(source: str) -> dict[str, Any]:
    """The flow document for a VoiceXML document of the subset, or ``VxmlInvalid``."""
    return _Importer(_tree(source)).run()
