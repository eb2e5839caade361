"""Every route handler and dependency declares its parameters explicitly.

Litestar 2.2x warns (``LitestarDeprecationWarning``) about inferred dependencies,
inferred path/query parameters and ``data`` without a body marker; those stop
working in Litestar 3.  The warnings come when a handler's kwargs model is built
(at registration today); one request to each route is sent as well so that any
lazily built model is covered too.
"""

from __future__ import annotations

import re
import warnings

import httpx
from litestar import Litestar, get
from litestar.exceptions.base_exceptions import LitestarDeprecationWarning

from kefu.platform.app import create_app

# kefu.tenants.pages is being made explicit separately.
_PENDING_HANDLERS = ("caller_page", "agent_page", "portal_page", "invite_page")
_ZERO_UUID = "00000000-0000-0000-0000-000000000000"


def _concrete(path: str) -> str:
    path = re.sub(r"\{[^}:]+:uuid\}", _ZERO_UUID, path)
    path = re.sub(r"\{[^}:]+:int\}", "1", path)
    return re.sub(r"\{[^}:]+(:[^}]+)?\}", "x", path)


async def _hit_every_route(app: Litestar) -> None:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver.local") as client:
        for route in app.routes:
            methods = sorted(getattr(route, "methods", None) or {"GET"})
            for method in methods:
                if method in ("HEAD", "OPTIONS"):
                    continue
                try:
                    await client.request(method, _concrete(route.path))
                except Exception:  # noqa: BLE001 - only the warnings matter here
                    pass


def _deprecations(caught: list[warnings.WarningMessage]) -> list[str]:
    return [
        str(w.message)
        for w in caught
        if issubclass(w.category, LitestarDeprecationWarning)
        and not any(f"'{name}'" in str(w.message) for name in _PENDING_HANDLERS)
    ]


async def test_the_app_emits_no_litestar_deprecation_warning(sqlite_template, make_settings) -> None:  # type: ignore[no-untyped-def]
    # sqlite_template is requested up front: it migrates with asyncio.run, outside the test's loop.
    settings = make_settings("sqlite")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        app = create_app(settings)
        await _hit_every_route(app)
        app.openapi_schema  # noqa: B018 - builds the schema from every handler
    found = _deprecations(caught)
    assert found == [], "\n".join(found)


def test_the_check_sees_an_inferred_parameter() -> None:
    """The recording above does catch these warnings (no 'once' filter hides them)."""

    @get("/probe/{item_id:int}")
    async def probe(item_id: int) -> int:
        return item_id

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Litestar(route_handlers=[probe])
    assert any("item_id" in message for message in _deprecations(caught))
