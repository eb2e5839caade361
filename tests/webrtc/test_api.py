"""kefu.webrtc's install(): the media plane as a runtime component and service, and softphone.js."""

from __future__ import annotations

from litestar.testing import AsyncTestClient

from kefu.platform.app import create_app
from kefu.platform.runtime import Runtime
from kefu.platform.settings import Settings
from kefu.webrtc import api
from kefu.webrtc.media import MediaPlane


def test_a_media_process_registers_the_media_plane_as_component_and_service(media_settings: Settings) -> None:
    runtime = Runtime.build(media_settings, process_roles=frozenset({"api", "media"}))
    api.install(runtime)
    assert isinstance(runtime.components["media"], MediaPlane)
    assert runtime.components["media"] in runtime.services


def test_a_process_without_the_media_role_runs_no_media_plane(media_settings: Settings) -> None:
    runtime = Runtime.build(media_settings, process_roles=frozenset({"api"}))
    handlers = api.install(runtime)
    assert "media" not in runtime.components
    assert runtime.services == []
    assert handlers  # pages still get softphone.js


async def test_the_softphone_module_is_served_as_javascript(media_settings: Settings) -> None:
    app = create_app(runtime=Runtime.build(media_settings, process_roles=frozenset({"api"})))
    async with AsyncTestClient(app) as client:
        response = await client.get("/static/webrtc/softphone.js")
        missing = await client.get("/static/webrtc/../api.py")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert "export class Softphone" in response.text
    assert missing.status_code == 404
