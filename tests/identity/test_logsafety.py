"""Secrets in query strings (WebSocket access tokens, caller tokens, OAuth codes)
and Authorization headers never reach a log line: uvicorn's own records, formatted
by uvicorn's own formatters, come out redacted."""

from __future__ import annotations

import io
import logging
import logging.config
from collections.abc import Iterator

import pytest
from uvicorn.logging import AccessFormatter, DefaultFormatter
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

from kefu.platform import commands
from kefu.platform.logsafety import (
    REDACTED,
    RedactSecrets,
    install_log_redaction,
    redact,
    uninstall_log_redaction,
    uvicorn_log_config,
)
from kefu.platform.settings import Settings

UVICORN = ("uvicorn", "uvicorn.error", "uvicorn.access")


def _scope(path: str, query: str, kind: str = "websocket") -> dict:
    # What uvicorn builds for a request and feeds to its log lines.
    return {"type": kind, "path": path, "query_string": query.encode(), "client": ("203.0.113.7", 50000), "method": "GET", "http_version": "1.1"}


@pytest.fixture
def uvicorn_loggers_captured(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """caplog's handler on uvicorn's loggers directly (uvicorn may have turned propagation off)."""
    saved = {name: (logging.getLogger(name).level, logging.getLogger(name).propagate) for name in UVICORN}
    for name in UVICORN:
        logging.getLogger(name).setLevel(logging.INFO)
        logging.getLogger(name).propagate = False
        logging.getLogger(name).addHandler(caplog.handler)
    try:
        yield caplog
    finally:
        uninstall_log_redaction()
        for name, (level, propagate) in saved.items():
            logging.getLogger(name).removeHandler(caplog.handler)
            logging.getLogger(name).setLevel(level)
            logging.getLogger(name).propagate = propagate


def test_uvicorn_websocket_lines_hide_access_and_caller_tokens(uvicorn_loggers_captured: pytest.LogCaptureFixture) -> None:
    install_log_redaction()
    log = logging.getLogger("uvicorn.error")
    agent = _scope("/ws/agent", "access_token=eyJhbGciOiJSUzI1NiJ9.e30.sig&x=1")
    caller = _scope("/ws/caller", "caller_token=ct-secret-value")
    # The exact calls of uvicorn's websockets-sansio protocol.
    log.info('%s - "WebSocket %s" [accepted]', get_client_addr(agent), get_path_with_query_string(agent))
    log.info('%s - "WebSocket %s" 403', get_client_addr(caller), get_path_with_query_string(caller))
    assert uvicorn_loggers_captured.messages == [
        '203.0.113.7:50000 - "WebSocket /ws/agent?access_token=[REDACTED]&x=1" [accepted]',
        '203.0.113.7:50000 - "WebSocket /ws/caller?caller_token=[REDACTED]" 403',
    ]


def test_uvicorn_access_lines_are_redacted_and_still_format(uvicorn_loggers_captured: pytest.LogCaptureFixture) -> None:
    install_log_redaction()
    scope = _scope("/sso/callback", "code=auth-code-123&state=abc", kind="http")
    # The exact call of uvicorn's h11/httptools protocols.
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', get_client_addr(scope), scope["method"], get_path_with_query_string(scope), scope["http_version"], 302
    )
    (record,) = uvicorn_loggers_captured.records
    assert record.args == ("203.0.113.7:50000", "GET", "/sso/callback?code=[REDACTED]&state=abc", "1.1", 302)
    formatter = AccessFormatter(fmt='%(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False)
    assert formatter.format(record) == '203.0.113.7:50000 - "GET /sso/callback?code=[REDACTED]&state=abc HTTP/1.1" 302 Found'


def test_uvicorn_log_config_puts_the_filter_on_every_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    config = uvicorn_log_config()
    assert sorted(config["handlers"]) == ["access", "default"]
    assert all(h["filters"] == ["kefu_redact_secrets"] for h in config["handlers"].values())
    # Applied for real (streams swapped for buffers), a record that bypasses the logger filters is still redacted.
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    monkeypatch.setattr("sys.stderr", err)
    saved = {name: (list(logging.getLogger(name).handlers), logging.getLogger(name).level, logging.getLogger(name).propagate) for name in UVICORN}
    try:
        logging.config.dictConfig(config)
        handler = logging.getLogger("uvicorn").handlers[0]
        record = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, '%s - "WebSocket %s" [accepted]',
                                   ("127.0.0.1:1", "/ws/agent?access_token=abc.def.ghi"), None)
        handler.handle(record)
        assert isinstance(handler.formatter, DefaultFormatter)
        assert err.getvalue() == 'INFO:     127.0.0.1:1 - "WebSocket /ws/agent?access_token=[REDACTED]" [accepted]\n'
    finally:
        for name, (handlers, level, propagate) in saved.items():
            logger = logging.getLogger(name)
            for h in list(logger.handlers):
                logger.removeHandler(h)
            for h in handlers:
                logger.addHandler(h)
            logger.setLevel(level)
            logger.propagate = propagate
            for f in [f for f in logger.filters if isinstance(f, RedactSecrets)]:
                logger.removeFilter(f)


def test_root_handlers_get_the_filter(caplog: pytest.LogCaptureFixture) -> None:
    install_log_redaction()
    try:
        assert any(isinstance(f, RedactSecrets) for f in caplog.handler.filters)
        logging.getLogger("kefu.test").warning("forwarding %s with %s", "/x?token=t0k&refresh_token=r1", {"Authorization": "Bearer abc.def"})
    finally:
        uninstall_log_redaction()
    assert caplog.messages == ["forwarding /x?token=[REDACTED]&refresh_token=[REDACTED] with {'Authorization': 'Bearer [REDACTED]'}"]


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("GET /ws/agent?access_token=a.b.c HTTP/1.1", f"GET /ws/agent?access_token={REDACTED} HTTP/1.1"),
        ("/oauth?refresh_token=r&token=t&code=c&keep=1", f"/oauth?refresh_token={REDACTED}&token={REDACTED}&code={REDACTED}&keep=1"),
        ("access_token=x", f"access_token={REDACTED}"),
        ("/ws/caller?CALLER_TOKEN=x#frag", f"/ws/caller?CALLER_TOKEN={REDACTED}#frag"),
        ("/ok?mytoken=x&zipcode=1", "/ok?mytoken=x&zipcode=1"),
        ("authorization: Basic dXNlcjpwdw==", f"authorization: Basic {REDACTED}"),
        ("[(b'authorization', b'Bearer abc')]", f"[(b'authorization', b'Bearer {REDACTED}')]"),
        ("exit code=3", "exit code=3"),
    ],
)
def test_redact(raw: str, clean: str) -> None:
    assert redact(raw) == clean


def test_serve_api_and_media_hand_uvicorn_the_redacting_log_config(make_settings, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    settings: Settings = make_settings("sqlite")
    calls: list[dict] = []
    monkeypatch.setattr(commands.uvicorn, "run", lambda app, **kwargs: calls.append(kwargs))
    try:
        assert commands.run_api(settings) == 0
        assert commands.run_media(settings) == 0
        assert commands.serve(settings, demo=False) == 0
        assert [c["log_config"] for c in calls] == [uvicorn_log_config()] * 3
        assert any(isinstance(f, RedactSecrets) for f in logging.getLogger("uvicorn.access").filters)
    finally:
        uninstall_log_redaction()
