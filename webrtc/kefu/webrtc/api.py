"""kefu.webrtc's part of the app: the media plane for this process and the browser softphone module.

``install`` gives the runtime the media plane that fits its roles:

* ``api`` and ``media`` (``kefu serve``, the embedded default): an in-process
  ``MediaPlane`` as ``runtime.components["media"]`` and a runtime service;
* ``media`` alone (``kefu media``): a ``MediaNode`` (``components["media_node"]``)
  serving the calls the control plane places on it through Redis;
* ``api`` alone in production (``kefu api``): a ``RemoteMediaPlane`` as
  ``components["media"]``, placing calls on media nodes (docs/media-nodes.md).

It also registers the recording store as ``runtime.components["recordings"]``
(and its tenant-purge hook) in every process, and serves ``/static/webrtc/``
(``softphone.js``) wherever pages are served.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from litestar import Router
from litestar.datastructures import CacheControlHeader
from litestar.static_files import create_static_files_router

from kefu.platform.runtime import Runtime
from kefu.webrtc.media import MediaPlane
from kefu.webrtc.storage import install_recording_store

STATIC_DIR = Path(__file__).parent / "static"


async def _prompt_length_ms(runtime: Runtime, path: Path) -> int:
    """How long an audio file plays once decoded and encoded as prompts are (raises
    ``PromptError`` with a stable ``code``); the encoding is cached for later calls."""
    from kefu.webrtc.prompts import load_prompt

    return (await load_prompt(path, cache_dir=runtime.settings.media_cache_dir)).duration_ms


def install(runtime: Runtime) -> list[Any]:
    install_recording_store(runtime)
    # kefu.tenants checks uploaded IVR prompts with it (it does not import kefu.webrtc).
    runtime.components["prompt_length_ms"] = lambda path: _prompt_length_ms(runtime, path)
    roles = runtime.process_roles
    if "media" in roles and "api" not in roles:
        from kefu.webrtc.node import MediaNode

        node = MediaNode(runtime.settings)
        runtime.components["media_node"] = node
        runtime.add_service(node)
    elif "media" in roles:
        media = MediaPlane(runtime.settings)
        runtime.components["media"] = media
        runtime.add_service(media)
    elif "api" in roles and not runtime.settings.embedded:
        from kefu.webrtc.remote import RemoteMediaPlane

        remote = RemoteMediaPlane(runtime.settings)
        runtime.components["media"] = remote
        runtime.add_service(remote)
    return [_static_router()]


@functools.cache
def _static_router() -> Router:
    # One router for every app (Litestar registers a copy of it).
    return create_static_files_router(
        path="/static/webrtc", directories=[STATIC_DIR], name="webrtc-static", cache_control=CacheControlHeader(no_cache=True),
    )
