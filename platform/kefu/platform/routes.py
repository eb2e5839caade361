"""Every context's route handlers and background services, in one list.

Each context exposes ``install(runtime) -> list[handlers]``: it registers its
services on the runtime and returns its routes.
"""

from __future__ import annotations

from typing import Any

from kefu.platform.runtime import Runtime


def route_handlers(runtime: Runtime) -> list[Any]:
    from kefu.billing import api as billing_api
    from kefu.platform.admin import api as admin_api
    from kefu.platform.events import api as events_api
    from kefu.platform.identity import api as identity_api
    from kefu.tenants import api as tenants_api
    from kefu.tenants import acd_config_api, controls_api, desktop_api, directory_api, reconnect, staffing_api, supervision_api, wallboard
    from kefu.tenants.ivr import api as ivr_api
    from kefu.tenants.qa import api as qa_api
    from kefu.tenants.recordings import api as recordings_api
    from kefu.tenants.reports import api as reports_api
    from kefu.webrtc import api as webrtc_api

    handlers: list[Any] = []
    for context in (events_api, identity_api, admin_api, billing_api, tenants_api, acd_config_api, ivr_api, controls_api, desktop_api, directory_api, reconnect, supervision_api, qa_api, recordings_api, reports_api, wallboard, staffing_api,
                    webrtc_api):
        handlers.extend(context.install(runtime))
    return handlers
