"""The ``kefu`` command: serve, production processes, migrations, demo data, operator clients."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from kefu.platform.settings import SettingsError, get_settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kefu", description="Kefu, a multi-tenant hosted contact center.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser(
        "serve",
        help="run everything in one process on the embedded default (SQLite, in-process workers and media)",
        description="Run the API, pages, background workers and media plane in one process. "
        "In embedded mode the database is migrated first.",
    )
    serve.add_argument("--host", help="address to listen on (KEFU_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (KEFU_PORT, default 8000)")
    serve.add_argument("--data-dir", help="folder for the database, secrets and recordings (KEFU_DATA_DIR)")
    serve.add_argument("--demo", action="store_true", help="load the demo tenant before serving and print its log-ins")

    api = sub.add_parser(
        "api",
        help="production: run an HTTP API replica (no workers; calls' media on 'kefu media' nodes)",
        description="Run a stateless HTTP API replica: API, pages, websockets and the ACD.  It places each "
        "new call on the least loaded media node ('kefu media') and commands it through Redis.",
    )
    api.add_argument("--host", help="address to listen on (KEFU_HOST)")
    api.add_argument("--port", type=int, help="port to listen on (KEFU_PORT)")
    sub.add_parser("worker", help="production: run background job workers (Dramatiq on Redis)")
    media = sub.add_parser(
        "media",
        help="production: run a media node (the aiortc peers and recordings of the calls placed on it)",
        description="Run a media node for production API replicas (KEFU_MODE=production).  It holds the "
        "WebRTC legs of the calls the control plane places on it, bridges and records them, takes its "
        "commands from Redis (KEFU_REDIS_URL) and reports leg events and its load there every "
        "KEFU_MEDIA_HEARTBEAT_MS (default 1000).  A node silent for KEFU_MEDIA_NODE_TIMEOUT_MS (default "
        "5000) is dead: the control plane ends its calls (reason media_lost).  Give every node its own "
        "KEFU_NODE_ID (default <host>:<port>); KEFU_MEDIA_MAX_CALLS (default 500) caps its calls.  "
        "Browsers reach it over UDP (ICE); HTTP serves only GET /health.  See docs/media-nodes.md.",
    )
    media.add_argument("--host", help="address of the /health endpoint (KEFU_HOST)")
    media.add_argument("--port", type=int, help="port of the /health endpoint, part of the default node id (KEFU_PORT)")

    db = sub.add_parser("db", help="database migrations (Alembic)")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    up = db_sub.add_parser("upgrade", help="migrate to a revision (default: head)")
    up.add_argument("revision", nargs="?", default="head")
    down = db_sub.add_parser("downgrade", help="migrate down to a revision (default: base)")
    down.add_argument("revision", nargs="?", default="base")
    db_sub.add_parser("current", help="show the database's current revision")

    demo = sub.add_parser("demo", help="load the demo tenant, agent, queue and caller page (idempotent)")
    demo.add_argument("--data-dir")

    ivr = sub.add_parser("ivr", help="IVR call flows")
    ivr_sub = ivr.add_subparsers(dest="ivr_command", metavar="ACTION", required=True)
    walk = ivr_sub.add_parser("simulate", help="walk a flow document (a JSON file) without media")
    walk.add_argument("flow", help="the flow document, a JSON file")
    walk.add_argument("--input", default="", help="the caller's keypresses, one per question, comma-separated (e.g. 1,2,1234#); empty = silence")
    walk.add_argument("--locale", default="en", help="the caller's locale (default en)")
    walk.add_argument("--var", action="append", default=[], metavar="NAME=VALUE", help="a starting variable (caller_number=+8613800000000)")
    walk.add_argument("--answer", action="append", default=[], metavar="NODE=JSON", help="what an HTTP lookup node gets back (none: its fallback)")
    walk.add_argument("--closed", action="append", default=[], metavar="SCHEDULE", help="a schedule that is closed (others are open)")

    ops = sub.add_parser("ops", help="platform operator tasks")
    ops_sub = ops.add_subparsers(dest="ops_command", metavar="ACTION", required=True)
    client = ops_sub.add_parser("create-client", help="create OAuth2 client credentials for a platform operator")
    client.add_argument("name", help="who or what the client is for")
    client.add_argument("--scopes", default="platform:tenants.read platform:tenants.write platform:tenants.export")
    return parser


def _apply_overrides(args: argparse.Namespace) -> None:
    for attr, env in (("host", "KEFU_HOST"), ("port", "KEFU_PORT"), ("data_dir", "KEFU_DATA_DIR")):
        value = getattr(args, attr, None)
        if value is not None:
            os.environ[env] = str(value)
    get_settings.cache_clear()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help()
        return 2
    if args.command == "ivr":  # a file in, a walk out: no settings, no database
        from kefu.tenants.ivr.cli import simulate_command

        return simulate_command(
            args.flow, inputs=args.input, locale=args.locale, variables=args.var, answers=args.answer, closed=args.closed, out=sys.stdout
        )
    logging.basicConfig(level=os.environ.get("KEFU_LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # aioice reports every candidate pair's every check at INFO (a dozen lines per call leg):
    # warnings and worse only, unless KEFU_LOG_LEVEL asks for DEBUG.
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("aioice").setLevel(logging.WARNING)
    _apply_overrides(args)
    try:
        settings = get_settings()
    except SettingsError as exc:
        print(f"kefu: {exc}", file=sys.stderr)
        return 2

    from kefu.platform import commands

    if args.command == "serve":
        if settings.mode != "embedded":
            print("kefu serve runs the embedded default; use 'kefu api', 'kefu worker' and 'kefu media' in production", file=sys.stderr)
            return 2
        return commands.serve(settings, demo=args.demo)
    if args.command == "api":
        return commands.run_api(settings)
    if args.command == "worker":
        return commands.run_worker(settings)
    if args.command == "media":
        if settings.embedded:
            print(
                "kefu media runs a media node for production API replicas ('kefu api', KEFU_MODE=production); "
                "the embedded default runs its media inside 'kefu serve'",
                file=sys.stderr,
            )
            return 2
        return commands.run_media(settings)
    if args.command == "db":
        return commands.db(settings, args.db_command, getattr(args, "revision", None))
    if args.command == "demo":
        return asyncio.run(commands.demo(settings))
    if args.command == "ops" and args.ops_command == "create-client":
        return asyncio.run(commands.create_operator_client(settings, args.name, args.scopes.split()))
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
