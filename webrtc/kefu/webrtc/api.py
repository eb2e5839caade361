"""kefu.webrtc's part of the app: the media plane service and the browser softphone module.

``install`` registers ``MediaPlane`` as ``runtime.components["media"]`` and as a
runtime service when this process runs the "media" role, the recording store
as ``runtime.components["recordings"]`` (and its tenant-purge hook) in every
process, and serves ``/static/webrtc/`` (``softphone.js``) wherever pages are
served.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar.datastructures import CacheControlHeader
from litestar.static_files import create_static_files_router

from kefu.platform.runtime import Runtime
from kefu.webrtc.media import MediaPlane
from kefu.webrtc.storage import install_recording_store

STATIC_DIR = Path(__file__).parent / "static"


def install(runtime: Runtime) -> list[Any]:
    install_recording_store(runtime)
    if "media" in runtime.process_roles:
        media = MediaPlane(runtime.settings)
        runtime.components["media"] = media
        runtime.add_service(media)
    return [
        create_static_files_router(
            path="/static/webrtc",
            directories=[STATIC_DIR],
            name="webrtc-static",
            cache_control=CacheControlHeader(no_cache=True),
        )
    ]
