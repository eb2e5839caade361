"""What each ``kefu`` subcommand does (the parser lives in cli.py)."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import uvicorn

from kefu.platform.db import migrate
from kefu.platform.logsafety import install_log_redaction, uvicorn_log_config
from kefu.platform.settings import Settings


def _migrate(settings: Settings, revision: str = "head") -> None:
    migrate.upgrade(
        settings.db.migration_url, revision, app_role=settings.db.app_role, platform_role=settings.db.platform_role
    )


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run`` shared by serve / api / media.

    Trusts proxy headers only from ``settings.trusted_proxies``.  Installs the secret-redacting log filter (tokens ride in WebSocket query
    strings, which uvicorn logs) on the root handlers and uvicorn's loggers,
    and hands uvicorn a logging configuration with the filter on its handlers.
    """
    install_log_redaction()
    return {
        "host": settings.host,
        "port": settings.port,
        "log_level": "info",
        "log_config": uvicorn_log_config(),
        "ws": "websockets-sansio",
        # The signalling sockets refuse frames over 16 KiB with an error message;
        # anything far larger is refused by the server before it is buffered.
        "ws_max_size": 64 * 1024,
        # Client addresses (the per-IP log-in limiter, audit) come from
        # X-Forwarded-For only when the peer is a configured proxy; otherwise
        # the socket peer, whatever FORWARDED_ALLOW_IPS says.
        "proxy_headers": bool(settings.trusted_proxies),
        "forwarded_allow_ips": ",".join(settings.trusted_proxies) if settings.trusted_proxies else None,
    }


def serve(settings: Settings, *, demo: bool) -> int:
    from kefu.platform.app import create_app

    _migrate(settings)
    if demo:
        asyncio.run(_demo_and_print(settings))
    app = create_app(settings)
    uvicorn.run(app, **uvicorn_options(settings))
    return 0


def run_api(settings: Settings) -> int:
    from kefu.platform.app import create_app
    from kefu.platform.runtime import Runtime

    # The calls' media runs on `kefu media` nodes, reached through Redis
    # (kefu.webrtc.remote, docs/media-nodes.md).
    runtime = Runtime.build(settings, process_roles=frozenset({"api"}))
    uvicorn.run(create_app(runtime=runtime), **uvicorn_options(settings))
    return 0


def run_worker(settings: Settings) -> int:
    from kefu.platform.events.worker import run_worker_process

    return run_worker_process(settings)


def run_media(settings: Settings) -> int:
    from kefu.webrtc.node import build_node_runtime, create_node_app

    # A media node: the aiortc peers of the calls placed on it, commanded through
    # Redis; HTTP serves only /health (docs/media-nodes.md).
    runtime = build_node_runtime(settings)
    uvicorn.run(create_node_app(runtime), **uvicorn_options(settings))
    return 0


def db(settings: Settings, action: str, revision: str | None) -> int:
    if action == "upgrade":
        _migrate(settings, revision or "head")
    elif action == "downgrade":
        migrate.downgrade(settings.db.migration_url, revision or "base")
    else:
        migrate.current(settings.db.migration_url)
    return 0


async def _load_demo(settings: Settings) -> dict[str, str]:
    from kefu.platform.runtime import Runtime
    from kefu.tenants.demo import load_demo

    runtime = Runtime.build(settings)
    try:
        return await load_demo(runtime)
    finally:
        await runtime.db.dispose()


async def _demo_and_print(settings: Settings) -> None:
    info = await _load_demo(settings)
    base = settings.public_url
    print(
        "\n".join(
            [
                "",
                "Kefu is starting on the embedded default.",
                f"  Portal (tenant admin):  {base}/portal/     tenant {info['tenant']}  {info['admin_email']} / {info['admin_password']}",
                f"  Agent desktop:          {base}/agent/      tenant {info['tenant']}  {info['agent_email']} / {info['agent_password']}",
                f"  Caller page:            {base}/call/{info['widget_key']}",
                f"  Billing (5 seats, local: no Stripe key): {base}/portal/billing",
                f"  API documentation:      {base}/schema",
                f"  Health:                 {base}/health",
                "",
            ]
        ),
        flush=True,
    )


async def demo(settings: Settings) -> int:
    if settings.embedded:
        await asyncio.to_thread(_migrate, settings)  # Alembic's env runs its own event loop
    info = await _load_demo(settings)
    for key, value in info.items():
        print(f"{key}={value}")
    return 0


async def create_operator_client(settings: Settings, name: str, scopes: list[str]) -> int:
    from kefu.platform.identity.services import create_platform_client
    from kefu.platform.runtime import Runtime

    runtime = Runtime.build(settings)
    try:
        client_id, secret = await create_platform_client(runtime.db, name=name, scopes=scopes, actor="cli")
    except ValueError as exc:
        print(f"kefu: {exc}", file=sys.stderr)
        return 2
    finally:
        await runtime.db.dispose()
    print(f"client_id={client_id}")
    print(f"client_secret={secret}")
    print(f"token_url={settings.public_url}/oauth/token")
    return 0
