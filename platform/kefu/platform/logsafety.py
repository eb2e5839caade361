"""Keep secrets out of log lines.

Browsers cannot set headers on a WebSocket, so access tokens
(``?access_token=``) and caller tokens (``?caller_token=``) travel in the
query string, and uvicorn logs every request line with its query at INFO
(``"WebSocket /ws/agent?access_token=…" [accepted]``, access lines).
``RedactSecrets`` is a ``logging.Filter`` that rewrites each record's message
and arguments so that those query values, OAuth ``code`` / ``token`` /
``refresh_token`` values and ``Authorization`` header values read
``[REDACTED]``.  It keeps the shape of ``record.args`` (uvicorn's access
formatter unpacks exactly five arguments) and never drops a record.

``install_log_redaction()`` puts it on the root logger's handlers and on the
uvicorn loggers; ``uvicorn_log_config()`` is uvicorn's default logging
configuration with the filter on both of its handlers (commands.py passes it
to ``uvicorn.run``).
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Mapping
from typing import Any

REDACTED = "[REDACTED]"

# Query / form parameters whose values are secrets.
SECRET_PARAMETERS = ("access_token", "refresh_token", "caller_token", "id_token", "client_secret", "code", "token")

_QUERY = re.compile(
    r"(?i)((?:^|[?&;#])(?:" + "|".join(SECRET_PARAMETERS) + r")=)[^&#\s\"'<>]*"
)
# "Authorization: Bearer x", "'authorization': 'Basic x'", (b'authorization', b'Bearer x') ...
_AUTHORIZATION = re.compile(
    r"(?i)(\bauthorization\b['\"]?\s*[:=,]\s*(?:b?['\"])?)(?:(bearer|basic|digest|token)\s+)?[^'\"\s,)}\]]+"
)

UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


def redact(text: str) -> str:
    """``text`` with secret query values and Authorization header values replaced."""
    if "=" in text:
        text = _QUERY.sub(lambda m: m.group(1) + REDACTED, text)
    if "uthorization" in text or "UTHORIZATION" in text:
        text = _AUTHORIZATION.sub(lambda m: m.group(1) + (m.group(2) + " " if m.group(2) else "") + REDACTED, text)
    return text


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bytes):
        try:
            decoded = value.decode("latin-1")
        except Exception:  # pragma: no cover - latin-1 decodes every byte string
            return value
        cleaned = redact(decoded)
        return value if cleaned == decoded else cleaned.encode("latin-1")
    return value


_PLAIN = (str, bytes, int, float, type(None))


class RedactSecrets(logging.Filter):
    """Rewrites every record's message and arguments; never rejects a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_kefu_redacted", False):
            return True
        try:
            args = record.args
            values = args.values() if isinstance(args, Mapping) else (args or ())
            if all(isinstance(a, _PLAIN) for a in values):
                # Keep the arguments (uvicorn's access formatter unpacks them).
                if isinstance(record.msg, str):
                    record.msg = redact(record.msg)
                if isinstance(args, tuple):
                    record.args = tuple(_redact_value(a) for a in args)
                elif isinstance(args, Mapping):
                    record.args = {k: _redact_value(v) for k, v in args.items()}
            else:
                # An object argument (a dict of headers, a URL...) may render a
                # secret only when formatted: format now, then redact the text.
                record.msg = redact(record.getMessage())
                record.args = None
            if record.exc_text:
                record.exc_text = redact(record.exc_text)
        except Exception:  # a filter must never stop logging
            return True
        record._kefu_redacted = True  # type: ignore[attr-defined]
        return True


_FILTER = RedactSecrets()


def _add(target: logging.Filterer) -> None:
    if not any(isinstance(f, RedactSecrets) for f in target.filters):
        target.addFilter(_FILTER)


def install_log_redaction() -> RedactSecrets:
    """Put the filter on the root logger's handlers, the uvicorn loggers and
    their handlers (idempotent).  Returns the filter instance."""
    for handler in logging.getLogger().handlers:
        _add(handler)
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        _add(logger)
        for handler in logger.handlers:
            _add(handler)
    return _FILTER


def uninstall_log_redaction() -> None:
    """Undo ``install_log_redaction`` (tests)."""
    targets: list[logging.Filterer] = list(logging.getLogger().handlers)
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        targets.append(logger)
        targets.extend(logger.handlers)
    for target in targets:
        for f in [f for f in target.filters if isinstance(f, RedactSecrets)]:
            target.removeFilter(f)


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's default logging configuration with ``RedactSecrets`` on every handler."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["kefu_redact_secrets"] = {"()": "kefu.platform.logsafety.RedactSecrets"}
    for handler in config.get("handlers", {}).values():
        handler.setdefault("filters", [])
        if "kefu_redact_secrets" not in handler["filters"]:
            handler["filters"].append("kefu_redact_secrets")
    return config
