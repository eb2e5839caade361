"""The live wallboard: per tenant, queue and team — waiting, longest wait, today's
service level, answered and abandoned, agents by state — as a snapshot
(``GET /api/v1/wallboard``), pushed live over ``/ws/wallboard`` and shown on the
large-screen page ``/wallboard/`` (docs/wallboard.md).

``snapshot`` computes and cuts the figures, ``live`` pushes them (one
computation per tenant per change, through the push hub), ``api`` serves them.
"""

from __future__ import annotations

from typing import Any

from kefu.platform.runtime import Runtime


def install(runtime: Runtime) -> list[Any]:
    from kefu.tenants import pages
    from kefu.tenants.services import contact_center
    from kefu.tenants.wallboard.api import WallboardController, wallboard_socket
    from kefu.tenants.wallboard.live import Wallboard

    acd = contact_center(runtime).acd
    board = Wallboard(runtime.db, bus=lambda: runtime.components["events"], hub=acd.hub, clock=acd.clock, redis_url=runtime.settings.redis_url)
    runtime.components["wallboard"] = board
    runtime.add_service(board)
    return [WallboardController, wallboard_socket, pages.wallboard_page]
