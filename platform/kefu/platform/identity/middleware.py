"""Bearer-token authentication: puts a ``Principal`` (or nothing) in ``scope["user"]``.

It never answers by itself: guards (``requires``) turn a missing or bad token
into a 401 problem, so public routes (health, JWKS, log-in, caller widget) need
no exclusion list.  A bad token is remembered in ``scope["auth_error"]`` so the
guard can say why.
"""

from __future__ import annotations

from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from kefu.platform.problems import Problem


class BearerAuthMiddleware(ASGIMiddleware):
    scopes = ("http", "websocket")  # type: ignore[assignment]

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        token = _bearer_token(scope)
        scope["user"] = None
        if token:
            runtime = scope["litestar_app"].state.runtime
            try:
                scope["user"] = runtime.tokens.verify(token)
            except Problem as problem:
                scope["auth_error"] = problem  # type: ignore[typeddict-unknown-key]
        await next_app(scope, receive, send)


def _bearer_token(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return None
    if scope["type"] == "websocket":
        # Browsers cannot set headers on a WebSocket: the token rides in the query.
        for part in scope.get("query_string", b"").decode("latin-1").split("&"):
            key, _, value = part.partition("=")
            if key == "access_token" and value:
                return value
    return None
