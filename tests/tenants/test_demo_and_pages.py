"""The demo loader, and the server-rendered pages in both languages."""

from __future__ import annotations

import re

from tenants_support import Admin
from httpx import AsyncClient
from test_acd import make_queue

from kefu.platform.runtime import Runtime
from kefu.tenants.demo import load_demo

CALLER_IDS = ("caller-name", "call-button", "hangup-button", "call-state")
AGENT_IDS = ("tenant", "email", "password", "login-button", "ready-button", "not-ready-button", "agent-state", "answer-button", "hangup-button", "call-state", "call-id")
PORTAL_IDS = ("tenant", "email", "password", "login-button", "agents-table", "queues-table", "entry-points-table", "calls-table", "agent-form", "queue-form", "entry-point-form")


def ids_in(html: str) -> set[str]:
    return set(re.findall(r'\bid="([^"]+)"', html))


async def test_demo_is_idempotent_and_its_people_can_log_in(runtime: Runtime, client: AsyncClient) -> None:
    first = await load_demo(runtime)
    second = await load_demo(runtime)
    assert first == second
    assert {k: v for k, v in first.items() if k != "widget_key"} == {
        "tenant": "demo", "admin_email": "admin@demo.kefu", "admin_password": "kefu-demo-admin",
        "agent_email": "agent@demo.kefu", "agent_password": "kefu-demo-agent",
    }
    admin = await client.post("/api/v1/auth/login", json={"tenant": "demo", "email": "admin@demo.kefu", "password": "kefu-demo-admin"})
    assert admin.status_code == 200, admin.text
    assert admin.json()["tenant"]["name"] == "Demo Company"
    headers = {"Authorization": f"Bearer {admin.json()['access_token']}"}
    agents = (await client.get("/api/v1/agents", headers=headers)).json()
    queues = (await client.get("/api/v1/queues", headers=headers)).json()
    entries = (await client.get("/api/v1/entry-points", headers=headers)).json()
    assert [a["email"] for a in agents] == ["agent@demo.kefu"]
    assert [(q["name"], q["agent_ids"]) for q in queues] == [("Support", [agents[0]["id"]])]
    assert [(e["widget_key"], e["queue_id"]) for e in entries] == [(first["widget_key"], queues[0]["id"])]
    agent = await client.post("/api/v1/auth/login", json={"tenant": "demo", "email": "agent@demo.kefu", "password": "kefu-demo-agent"})
    agent_headers = {"Authorization": f"Bearer {agent.json()['access_token']}"}
    assert (await client.post("/api/v1/agent/session", headers=agent_headers)).json()["state"] == "not_ready"


async def test_caller_page_has_the_contract_ids_in_the_tenant_language(client: AsyncClient, acme: Admin) -> None:
    _queue, widget = await make_queue(client, acme, [])
    english = await client.get(f"/call/{widget}")
    assert english.status_code == 200 and english.headers["content-type"].startswith("text/html")
    assert set(CALLER_IDS) <= ids_in(english.text)
    assert '<html lang="en">' in english.text and ">Call</button>" in english.text
    assert '<script type="module" src="/static/tenants/caller.js">' in english.text
    chinese = await client.get(f"/call/{widget}?lang=zh-CN")
    assert set(CALLER_IDS) <= ids_in(chinese.text)
    assert '<html lang="zh-CN">' in chinese.text and ">呼叫</button>" in chinese.text and "挂断" in chinese.text


async def test_caller_page_follows_a_chinese_tenant_locale(runtime: Runtime, client: AsyncClient) -> None:
    from tenants_support import bearer, create_tenant, create_user

    tenant_id = await create_tenant(runtime, "beijing", locale="zh-CN")
    admin_id = await create_user(runtime, tenant_id, "admin@beijing.test")
    admin = Admin(tenant_id, bearer(runtime, tenant_id=tenant_id, user_id=admin_id, roles={"tenant_admin"}))
    _queue, widget = await make_queue(client, admin, [])
    page = await client.get(f"/call/{widget}")
    assert '<html lang="zh-CN">' in page.text and ">呼叫</button>" in page.text


async def test_unknown_widget_key_page_is_a_404_page(client: AsyncClient) -> None:
    page = await client.get("/call/wk_does_not_exist")
    assert page.status_code == 404 and 'id="missing"' in page.text


async def test_agent_desktop_and_portal_have_the_contract_ids_in_both_languages(client: AsyncClient) -> None:
    for path, ids, english, chinese in (("/agent/", AGENT_IDS, "Agent desktop", "坐席工作台"), ("/portal/", PORTAL_IDS, "Portal", "管理门户")):
        page = await client.get(path)
        assert page.status_code == 200 and set(ids) <= ids_in(page.text), path
        assert english in page.text and '<html lang="en">' in page.text
        zh = await client.get(path, headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"})
        assert chinese in zh.text and '<html lang="zh-CN">' in zh.text and "示闲" in (zh.text if path == "/agent/" else "示闲")
        forced = await client.get(f"{path}?lang=en", headers={"Accept-Language": "zh-CN"})
        assert '<html lang="en">' in forced.text


async def test_page_modules_are_served(client: AsyncClient) -> None:
    for name in ("common.js", "caller.js", "agent.js", "portal.js", "ivr.js", "kefu.css"):
        response = await client.get(f"/static/tenants/{name}")
        assert response.status_code == 200, name
    assert 'from "/static/webrtc/softphone.js"' in (await client.get("/static/tenants/agent.js")).text


async def test_the_ivr_editor_page_and_the_callers_keypad(client: AsyncClient, acme: Admin) -> None:
    page = await client.get("/portal/ivr")
    assert page.status_code == 200
    assert {"login-form", "ivr", "flows-table", "flow-form", "editor", "flow-tree", "node-form", "save-draft-button", "publish-button",
            "simulate-form", "node-stats-table", "flow-errors"} <= ids_in(page.text)
    assert "IVR 流程" in (await client.get("/portal/ivr", headers={"Accept-Language": "zh-CN"})).text
    queue = (await client.post("/api/v1/queues", json={"name": "Q"}, headers=acme.headers)).json()
    entry = (await client.post("/api/v1/entry-points", json={"name": "Web", "queue_id": queue["id"]}, headers=acme.headers)).json()
    caller = await client.get(f"/call/{entry['widget_key']}")
    assert "keypad" in ids_in(caller.text) and caller.text.count('class="key"') == 12
