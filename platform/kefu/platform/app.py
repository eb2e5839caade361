"""The application factory: the composition root that wires every context together."""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Request, Response, get
from litestar.config.app import AppConfig
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins import InitPluginProtocol

from kefu.platform import deps, metrics, probes
from kefu.platform.deps import RuntimeDep
from kefu.platform.identity.middleware import BearerAuthMiddleware
from kefu.platform.problems import exception_handlers
from kefu.platform.runtime import Runtime
from kefu.platform.settings import Settings, get_settings

log = logging.getLogger(__name__)


def _is_async(fn: object) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)


@get("/health", include_in_schema=False, sync_to_thread=False)
def health(runtime: RuntimeDep) -> dict[str, str]:
    """Liveness: the process and its event loop answer.  Nothing shared is checked (that is
    ``/ready``): a database or Redis outage must not get every replica restarted at once."""
    return {"status": "ok" if runtime.started else "starting", "mode": runtime.settings.mode}


@get("/ready", include_in_schema=False)
async def ready(runtime: RuntimeDep) -> dict[str, Any]:
    """Readiness (docs/observability.md): 200 while this process can take traffic, else 503 ``not_ready``."""
    return await probes.readiness_of(runtime).report()


@get("/metrics", include_in_schema=False)
async def metrics_endpoint(request: Request, runtime: RuntimeDep) -> Response[bytes]:
    """Prometheus metrics, for the bearer of ``KEFU_METRICS_TOKEN`` only (404 while it is unset)."""
    return await probes.metrics_response(runtime, request)


@get("/.well-known/jwks.json", include_in_schema=False)
async def jwks(runtime: RuntimeDep) -> dict[str, object]:
    return runtime.keys.jwks()


class KefuPlugin(InitPluginProtocol):
    """Registers Kefu's routes, dependencies, middleware and services on the app."""

    def __init__(self, runtime: Runtime, handlers: list[Any] | None = None) -> None:
        self.runtime = runtime
        self.handlers = handlers

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        from kefu.platform.routes import route_handlers

        runtime = self.runtime
        handlers = route_handlers(runtime) if self.handlers is None else self.handlers
        app_config.state["runtime"] = runtime
        app_config.route_handlers.extend([health, ready, metrics_endpoint, jwks, *handlers])
        app_config.dependencies.update({name: Provide(fn) if _is_async(fn) else Provide(fn, sync_to_thread=False) for name, fn in deps.SHARED_DEPENDENCIES.items()})
        app_config.middleware.insert(0, BearerAuthMiddleware())
        app_config.middleware.insert(0, metrics.HttpMetricsMiddleware())
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
        async def lifespan(app: Litestar) -> AsyncIterator[None]:
            # The app's runtime, read when it starts (not captured here): the same
            # routes can serve another runtime (the test suite reuses apps).
            started: Runtime = app.state.runtime
            readiness = probes.readiness_of(started)
            readiness.begin()
            restore_signals = probes.mark_stopping_on_signals(readiness)
            try:
                await started.start()
            except BaseException:
                restore_signals()
                raise
            try:
                yield
            finally:
                readiness.shutting_down()  # /ready answers 503 while the services stop
                restore_signals()
                await started.stop()
                await readiness.close()

        app_config.lifespan.append(lifespan)
        return app_config


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None, handlers: list[Any] | None = None) -> Litestar:
    """The app serving ``runtime``; ``handlers`` are its routes when the caller
    already installed the contexts on it (``kefu.platform.routes.route_handlers``)."""
    runtime = runtime or Runtime.build(settings or get_settings())
    # request_max_body_size must be passed here: Litestar ignores the value a plugin sets on AppConfig.
    return Litestar(plugins=[KefuPlugin(runtime, handlers)], debug=False, request_max_body_size=runtime.settings.max_body_bytes)
