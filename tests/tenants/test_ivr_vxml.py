"""The VoiceXML subset import: forms, menus, DTMF fields, prompts of text or audio,
goto and disconnect become a flow document; anything else is refused naming the
element and its line, and nothing is half-imported."""

from __future__ import annotations

import pytest
from httpx import AsyncClient
from hypothesis import given, settings
from hypothesis import strategies as st
from tenants_support import Admin

from kefu.tenants.ivr.flow import FlowContext, parse, validate
from kefu.tenants.ivr.simulate import simulate
from kefu.tenants.ivr.vxml import MAX_VXML_BYTES, VxmlInvalid, import_vxml

SUPPORT_LINE = """<?xml version="1.0" encoding="UTF-8"?>
<vxml version="2.1" xmlns="http://www.w3.org/2001/vxml" xml:lang="en">
  <form id="welcome">
    <block><prompt>Welcome to Acme.</prompt><prompt xml:lang="zh">欢迎致电。</prompt><goto next="#main"/></block>
  </form>
  <menu id="main">
    <prompt>Press 1 for sales, 2 for support.</prompt>
    <prompt xml:lang="zh">销售请按1，服务请按2。</prompt>
    <choice dtmf="1" next="#goodbye"/>
    <choice dtmf="2" next="#support"/>
    <noinput><goto next="#main"/></noinput>
    <nomatch><prompt>Sorry.</prompt><prompt xml:lang="zh">对不起。</prompt><goto next="#main"/></nomatch>
  </menu>
  <menu id="support">
    <prompt>Press 1 for your account.</prompt>
    <prompt xml:lang="zh">账户请按1。</prompt>
    <choice dtmf="1" next="#account"/>
    <choice dtmf="9" next="#main"/>
  </menu>
  <form id="account">
    <field name="account" type="digits?minlength=4;maxlength=8">
      <prompt><audio src="enter-account.wav"/></prompt>
      <prompt xml:lang="zh">请输入账号。</prompt>
      <filled><goto next="#goodbye"/></filled>
      <noinput><disconnect/></noinput>
      <nomatch><goto next="#account"/></nomatch>
    </field>
  </form>
  <form id="goodbye">
    <block><prompt>Goodbye.</prompt><prompt xml:lang="zh">再见。</prompt><disconnect/></block>
  </form>
</vxml>
"""


def test_the_subset_imports_into_a_flow_that_validates_and_walks() -> None:
    document = import_vxml(SUPPORT_LINE)
    flow = parse(document)
    assert flow.start == "welcome" and flow.locales == ("en", "zh")
    errors = validate(flow, FlowContext(locales=("en",), audio=None))
    # The audio prompt has no zh text for the nomatch/noinput handlers VoiceXML left out: generated hangups say nothing.
    assert errors == []
    assert document["nodes"]["account"]["prompt"]["en"] == {"audio": "enter-account.wav"}
    assert (document["nodes"]["account"]["min_length"], document["nodes"]["account"]["max_length"]) == (4, 8)
    walk = simulate(flow, inputs=["2", "1", "12345#"], locale="zh")
    assert [s.node for s in walk.steps] == ["welcome", "main", "support", "account", "goodbye"]
    assert walk.variables["account"] == "12345" and walk.outcome["action"] == "hangup"
    assert walk.steps[0].said == ["欢迎致电。"]
    # A menu without handlers ends the call when nobody answers.
    assert simulate(flow, inputs=["2", "", "", ""]).steps[-1].node == "support__no_input"


@pytest.mark.parametrize(
    ("source", "message", "line"),
    [
        ('<vxml>\n<form id="a"><block><submit next="http://x"/></block></form></vxml>', "<submit> in <block>", 2),
        ('<vxml><form id="a"><block><goto next="#a"/></block></form>\n<script>x()</script></vxml>', "<script> in <vxml>", 2),
        ('<vxml><form id="a"><field name="n" type="boolean"><filled><goto next="#a"/></filled></field></form></vxml>', "DTMF digits only", 1),
        ('<vxml><menu id="m"><choice dtmf="12" next="#m"/></menu></vxml>', "dtmf", 1),
        ('<vxml><menu id="m"><choice dtmf="1" next="other.vxml#m"/></menu></vxml>', "a dialog of this document", 1),
        ('<vxml><menu id="m"><choice dtmf="1" expr="x" next="#m"/></menu></vxml>', "attribute(s) expr", 1),
        ('<vxml><menu id="m"><choice dtmf="1" next="#nowhere"/></menu></vxml>', "#nowhere", None),
        ('<vxml><form id="a"><block><goto next="#b"/></block></form><form id="b"><block><goto next="#a"/></block></form></vxml>', "only go to each other", None),
        ('<!DOCTYPE vxml [<!ENTITY lol "lol">]><vxml/>', "DOCTYPE", 1),
        ('<?xml-stylesheet href="x"?><vxml/>', "processing instruction", 1),
        ("<vxml><form id='a'>", "not well-formed", 1),
        ("<html/>", "<vxml>", 1),
        ("<vxml/>", "no <form> or <menu>", 1),
        ('<vxml><form id="a b"><block><disconnect/></block></form></vxml>', "needs an id", 1),
        ('<vxml><form id="a"><block><disconnect/></block></form><form id="a"><block><disconnect/></block></form></vxml>', "two dialogs", 1),
    ],
)
def test_what_is_outside_the_subset_is_refused_naming_element_and_line(source: str, message: str, line: int | None) -> None:
    with pytest.raises(VxmlInvalid) as refused:
        import_vxml(source)
    assert any(message in e.message and (line is None or e.line == line) for e in refused.value.errors), refused.value.errors


def test_an_entity_expansion_attack_and_an_oversized_document_are_refused() -> None:
    laughs = '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><vxml>&lol2;</vxml>'
    with pytest.raises(VxmlInvalid):
        import_vxml(laughs)
    with pytest.raises(VxmlInvalid) as big:
        import_vxml("<vxml>" + " " * MAX_VXML_BYTES + "</vxml>")
    assert big.value.errors[0].code == "vxml_too_large"


_tags = st.sampled_from(["vxml", "form", "menu", "block", "field", "prompt", "choice", "goto", "disconnect", "filled", "noinput", "nomatch", "audio", "grammar", "submit"])
_attrs = st.dictionaries(st.sampled_from(["id", "next", "dtmf", "name", "type", "src", "xml:lang", "mode"]),
                         st.sampled_from(["#a", "#b", "a", "b", "1", "12", "digits?length=4", "en", "zh", "x y", ""]), max_size=3)


@st.composite
def _element(draw: st.DrawFn, depth: int = 0) -> str:
    tag = draw(_tags)
    attrs = "".join(f' {k}="{v}"' for k, v in draw(_attrs).items())
    children = draw(st.lists(_element(depth + 1), max_size=3)) if depth < 3 else []
    text = draw(st.sampled_from(["", "Hello", "再见", "  "]))
    return f"<{tag}{attrs}>{text}{''.join(children)}</{tag}>"


@settings(max_examples=300, deadline=None)
@given(body=st.lists(_element(1), max_size=4), noise=st.sampled_from(["", "<", "&amp;", "]]>"]))
def test_random_vxml_is_refused_or_imports_into_a_document_that_parses(body: list[str], noise: str) -> None:
    try:
        document = import_vxml(f'<vxml xml:lang="en">{"".join(body)}{noise}</vxml>')
    except VxmlInvalid as refused:
        assert refused.errors and all(e.code.startswith("vxml_") for e in refused.errors)
        return
    flow = parse(document)  # never FlowInvalid: an import is a flow
    validate(flow, FlowContext(locales=("en",)))
    simulate(flow, inputs=["1", "2", "1234#"])


async def test_the_import_route_creates_a_draft_or_answers_every_error(client: AsyncClient, acme: Admin) -> None:
    created = await client.post("/api/v1/ivr/flows/import", json={"name": "From VXML", "vxml": SUPPORT_LINE}, headers=acme.headers)
    assert created.status_code == 201, created.text
    assert created.json()["draft"]["start"] == "welcome"
    # Audio upload is not built yet, so the audio prompt is reported (the draft is kept).
    assert [(e["code"], e["node"]) for e in created.json()["errors"]] == [("unknown_audio", "account")]
    refused = await client.post("/api/v1/ivr/flows/import", json={"name": "Bad", "vxml": "<vxml><script/></vxml>"}, headers=acme.headers)
    assert (refused.status_code, refused.json()["code"]) == (400, "vxml_invalid")
    assert {"code": "vxml_unsupported", "message": "<script> in <vxml> is outside the supported subset", "line": 1} in refused.json()["errors"]
    assert [f["name"] for f in (await client.get("/api/v1/ivr/flows", headers=acme.headers)).json()] == ["From VXML"]
