"""The application factory: the composition root that wires every context together."""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar, get
from litestar.config.app import AppConfig
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins import InitPluginProtocol
from sqlalchemy import text

from kefu.platform import deps
from kefu.platform.deps import RuntimeDep
from kefu.platform.identity.middleware import BearerAuthMiddleware
from kefu.platform.problems import exception_handlers
from kefu.platform.runtime import Runtime
from kefu.platform.settings import Settings, get_settings

log = logging.getLogger(__name__)


def _is_async(fn: object) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)


@get("/health", include_in_schema=False)
async def health(runtime: RuntimeDep) -> dict[str, str]:
    """Answers once the database is reachable and every service has started."""
    async with runtime.db.platform_engine.connect() as conn:
        await conn.execute(text("select 1"))
    return {"status": "ok" if runtime.started else "starting", "mode": runtime.settings.mode}


@get("/.well-known/jwks.json", include_in_schema=False)
async def jwks(runtime: RuntimeDep) -> dict[str, object]:
    return runtime.keys.jwks()


class KefuPlugin(InitPluginProtocol):
    """Registers Kefu's routes, dependencies, middleware and services on the app."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        from kefu.platform.routes import route_handlers

        runtime = self.runtime
        app_config.state["runtime"] = runtime
        app_config.route_handlers.extend([health, jwks, *route_handlers(runtime)])
        app_config.dependencies.update({name: Provide(fn) if _is_async(fn) else Provide(fn, sync_to_thread=False) for name, fn in deps.SHARED_DEPENDENCIES.items()})
        app_config.middleware.insert(0, BearerAuthMiddleware())
        app_config.exception_handlers.update(exception_handlers)  # type: ignore[arg-type]
        app_config.openapi_config = OpenAPIConfig(
            title="Kefu API",
            version="1.0.0",
            path="/schema",
            render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin(path="/swagger")],
            components=Components(
                security_schemes={"bearer": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")}
            ),
            security=[{"bearer": []}],
        )

        @asynccontextmanager
        async def lifespan(_app: Litestar) -> AsyncIterator[None]:
            await runtime.start()
            try:
                yield
            finally:
                await runtime.stop()

        app_config.lifespan.append(lifespan)
        return app_config


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> Litestar:
    runtime = runtime or Runtime.build(settings or get_settings())
    # request_max_body_size must be passed here: Litestar ignores the value a plugin sets on AppConfig.
    return Litestar(plugins=[KefuPlugin(runtime)], debug=False, request_max_body_size=runtime.settings.max_body_bytes)
