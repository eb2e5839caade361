"""Signalling: the ICE servers browsers are given, and the messages the agent and
caller sockets accept (trickle ICE, offers), with their limits and error codes.

* ``GET /api/v1/media/ice-servers`` (signed-in agents, supervisors) and the
  public ``GET /api/v1/widget/{widget_key}/ice-servers`` (callers, limited per
  client IP) answer ``{"ice_servers": [RTCIceServer...], "ttl_s"}``: the STUN
  URLs of ``KEFU_ICE_SERVERS`` and, when ``KEFU_TURN_URLS`` and
  ``KEFU_TURN_SECRET`` are set, the TURN URLs with a short-lived credential in
  the TURN REST API scheme coturn checks with ``use-auth-secret``.
* ``Channel`` serves one socket: pushes from the hub go out, every client frame
  is rate-limited, size-checked and decoded, and every error becomes an
  ``{"type": "error", "code", "detail"}`` message on the same socket, which
  stays open; only sustained flooding closes it (1008).
* ``AgentMessages`` / ``CallerMessages`` turn ``ping``, ``ice_candidate`` and
  ``offer`` into the call flow's operations on the sender's own leg.

docs/signalling.md is the protocol's reference.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from kefu.platform.deps import ActiveTenantId, CurrentPrincipal, RuntimeDep
from kefu.platform.deps import (
    check_active as check_tenant_and_user_active,  # the HTTP dependencies' own check
)
from kefu.platform.identity.principal import Principal, current_principal
from kefu.platform.identity.ratelimit import (
    LoginLimiter,
    MemoryLoginLimiter,
    RedisLoginLimiter,
)
from kefu.platform.problems import Problem, problem_response
from kefu.platform.runtime import Runtime
from kefu.platform.settings import Settings
from kefu.tenants.controls import audio_message
from kefu.tenants.models import Agent, Call
from kefu.tenants.services import contact_center
from litestar import Request, Response, WebSocket, get
from litestar.connection import ASGIConnection
from litestar.exceptions import WebSocketDisconnect
from litestar.handlers.base import BaseRouteHandler
from litestar.params import FromPath
from sqlalchemy import and_, or_, select

log = logging.getLogger(__name__)

# --- ICE servers and TURN credentials -----------------------------------------------

STUN_SCHEMES = ("stun", "stuns")
# Who may fetch ICE servers with a token: the people who take part in calls.
MEDIA_PERMISSIONS = ("agent.desktop", "acd.agents.supervise")
# The public widget route: requests per client IP in a sliding window.  Enough for
# callers behind one NAT to retry; far too few to harvest TURN credentials.
WIDGET_ICE_REQUESTS = 60
WIDGET_ICE_WINDOW_S = 60


def turn_credential(secret: str, username: str) -> str:
    """The TURN password coturn expects for ``username`` (``use-auth-secret``):
    base64(HMAC-SHA1(static-auth-secret, username))."""
    return base64.b64encode(hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()).decode("ascii")


@dataclass(frozen=True)
class TurnCredentials:
    username: str  # "<unix expiry>:<opaque id>"
    credential: str
    expires_at: int


def issue_turn_credentials(secret: str, *, opaque_id: str, ttl_s: int, now: float) -> TurnCredentials:
    """A credential that coturn accepts until ``now + ttl_s`` (unix seconds) and refuses after.

    coturn reads the expiry from the username's first field (separator ``:``),
    so the opaque id must not contain one.
    """
    if ":" in opaque_id:
        raise ValueError("a TURN opaque id cannot contain ':'")
    expires_at = int(now) + ttl_s
    username = f"{expires_at}:{opaque_id}"
    return TurnCredentials(username, turn_credential(secret, username), expires_at)


def user_turn_id(secret: str, *, tenant_id: uuid.UUID, user_id: uuid.UUID) -> str:
    """``<tenant hex>.u<16 hex>``: stable per user (the operator can recompute it from the
    secret to find a user in coturn's logs), meaningless without the secret; never an e-mail."""
    digest = hmac.new(secret.encode(), f"user:{tenant_id}:{user_id}".encode(), hashlib.sha256).hexdigest()
    return f"{tenant_id.hex}.u{digest[:16]}"


def caller_turn_id(*, tenant_id: uuid.UUID) -> str:
    """``<tenant hex>.c<16 hex>``: a caller is nobody yet, so a fresh random id per request."""
    return f"{tenant_id.hex}.c{secrets.token_hex(8)}"


class IceServerOut(msgspec.Struct, omit_defaults=True):
    """One ``RTCIceServer`` as ``new RTCPeerConnection({iceServers})`` takes it."""

    urls: list[str]
    username: str | None = None
    credential: str | None = None


class IceServersOut(msgspec.Struct):
    ice_servers: list[IceServerOut]
    # Seconds the TURN credential stays valid: fetch again before a call that starts later.
    ttl_s: int


def ice_servers_for(settings: Settings, *, opaque_id: Callable[[str], str], now: float) -> IceServersOut:
    """The STUN entry (``KEFU_ICE_SERVERS``' stun: URLs) and the TURN entry with a fresh credential.

    TURN URLs without a credential are never handed out (a browser refuses
    them), so ``turn:`` URLs in ``KEFU_ICE_SERVERS`` are left out; TURN comes
    only from ``KEFU_TURN_URLS`` with ``KEFU_TURN_SECRET``.  ``opaque_id`` gets
    the secret and names the credential's holder.
    """
    servers: list[IceServerOut] = []
    stun = [url for url in settings.ice_servers if url.split(":", 1)[0].lower() in STUN_SCHEMES]
    if stun:
        servers.append(IceServerOut(urls=stun))
    if settings.turn_secret and settings.turn_urls:
        issued = issue_turn_credentials(
            settings.turn_secret, opaque_id=opaque_id(settings.turn_secret), ttl_s=settings.turn_ttl_s, now=now
        )
        servers.append(IceServerOut(urls=list(settings.turn_urls), username=issued.username, credential=issued.credential))
    return IceServersOut(ice_servers=servers, ttl_s=settings.turn_ttl_s)


def _no_store(body: IceServersOut) -> Response[IceServersOut]:
    return Response(body, headers={"Cache-Control": "no-store"})


def _wall_clock(runtime: Runtime) -> float:
    """Unix time from the ACD's (injectable) clock."""
    return contact_center(runtime).acd.clock().timestamp()


def takes_part_in_calls(connection: ASGIConnection, _handler: BaseRouteHandler) -> None:
    principal = current_principal(connection)
    if principal.kind != "user" or not any(principal.can(p) for p in MEDIA_PERMISSIONS):
        raise Problem(
            403, "permission_denied", f"this action needs one of the permissions {', '.join(MEDIA_PERMISSIONS)}",
            permissions=list(MEDIA_PERMISSIONS),
        )


@get("/api/v1/media/ice-servers", guards=[takes_part_in_calls], tags=["media"])
async def user_ice_servers(active_tenant_id: ActiveTenantId, principal: CurrentPrincipal, runtime: RuntimeDep) -> Response[IceServersOut]:
    """ICE servers for the signed-in agent's or supervisor's browser, with a TURN credential of its own."""
    user_id = principal.user_id
    body = ice_servers_for(
        runtime.settings, now=_wall_clock(runtime),
        opaque_id=lambda secret: user_turn_id(secret, tenant_id=active_tenant_id, user_id=user_id),
    )
    return _no_store(body)


@get("/api/v1/widget/{widget_key:str}/ice-servers", security=[], tags=["caller widget"])
async def widget_ice_servers(widget_key: FromPath[str], request: Request, runtime: RuntimeDep) -> Response[Any]:
    """ICE servers for a caller's browser, before it offers; at most 60 requests a minute per client IP."""
    limiter = ice_limiter(runtime)
    now = _wall_clock(runtime)
    key = request.client.host if request.client else "unknown"
    wait = await limiter.retry_after(key, now=now)
    if wait:
        response = problem_response(
            429, "ice_servers_rate_limited", "too many ICE server requests from this address; try again later", request, retry_after=wait
        )
        response.headers["Retry-After"] = str(wait)
        return response
    await limiter.failed(key, now=now)  # the limiter's sliding window counts every request here, not failures
    entry = await contact_center(runtime).calls.resolve_widget(widget_key)
    tenant_id = entry.tenant_id
    return _no_store(ice_servers_for(runtime.settings, now=now, opaque_id=lambda _secret: caller_turn_id(tenant_id=tenant_id)))


def ice_limiter(runtime: Runtime) -> LoginLimiter:
    return runtime.components["signalling.ip_limiter"]  # type: ignore[no-any-return]


class _LimiterService:
    name = "signalling ICE-server limiter"

    def __init__(self, limiter: LoginLimiter) -> None:
        self.limiter = limiter

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        await self.limiter.close()


def install(runtime: Runtime) -> list[Any]:
    """The ICE-server routes; the widget route's per-IP limiter (tests may put their own
    ``signalling.ip_limiter``, and ``signalling.clock`` for the sockets' rate limits, in
    ``runtime.components`` beforehand)."""
    if "signalling.ip_limiter" not in runtime.components:
        redis_url = runtime.settings.redis_url
        limiter: LoginLimiter = (
            RedisLoginLimiter(redis_url, max_failures=WIDGET_ICE_REQUESTS, window_s=WIDGET_ICE_WINDOW_S, prefix="kefu:ice-servers-ip:")
            if redis_url else MemoryLoginLimiter(max_failures=WIDGET_ICE_REQUESTS, window_s=WIDGET_ICE_WINDOW_S)
        )
        runtime.components["signalling.ip_limiter"] = limiter
        runtime.add_service(_LimiterService(limiter))
    return [user_ice_servers, widget_ice_servers]


# --- the sockets: frames, limits, errors ---------------------------------------------------

MAX_MESSAGE_BYTES = 16 * 1024
# Per socket: a token bucket of MESSAGE_BURST frames refilled at MESSAGES_PER_S.
MESSAGES_PER_S = 20.0
MESSAGE_BURST = 40
# Frames refused by that bucket are answered ``rate_limited``; a second bucket counts
# them (MAX_REFUSED, forgiven at REFUSALS_FORGIVEN_PER_S), and a socket that empties it
# is closed: a flood costs the node one cheap refusal per frame, then nothing.
MAX_REFUSED = 100
REFUSALS_FORGIVEN_PER_S = 1.0
POLICY_VIOLATION = 1008
MAX_SDP_CHARS = MAX_MESSAGE_BYTES
MAX_CANDIDATE_CHARS = 1024

RequestId = Annotated[str, msgspec.Meta(max_length=64)] | int


class SignallingError(Exception):
    """An error the client caused: answered as ``{"type": "error", "code", "detail"}``."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


class _Flooding(Exception):
    """The socket kept sending after its messages were refused: it is closed (1008)."""


class TokenBucket:
    def __init__(self, *, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


def decode_frame(event: dict[str, Any]) -> dict[str, Any]:
    """A client frame as a JSON object with a string ``type``; anything else is a ``SignallingError``."""
    text = event.get("text")
    if text is None:
        if len(event.get("bytes") or b"") > MAX_MESSAGE_BYTES:
            raise SignallingError("message_too_large", f"messages are at most {MAX_MESSAGE_BYTES} bytes")
        raise SignallingError("invalid_message", "binary frames are not accepted; send JSON text")
    if len(text) > MAX_MESSAGE_BYTES or len(text.encode()) > MAX_MESSAGE_BYTES:
        raise SignallingError("message_too_large", f"messages are at most {MAX_MESSAGE_BYTES} bytes")
    try:
        message = msgspec.json.decode(text)
    except (msgspec.DecodeError, RecursionError):
        raise SignallingError("invalid_message", "messages must be JSON") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise SignallingError("invalid_message", 'messages must be JSON objects with a string "type"')
    return message


def parse_message(message: dict[str, Any], types: dict[str, type[msgspec.Struct]]) -> msgspec.Struct:
    kind = types.get(message["type"])
    if kind is None:
        raise SignallingError("unknown_message_type", f"unknown message type {message['type'][:40]!r}; this socket accepts {', '.join(types)}")
    try:
        return msgspec.convert(message, kind)
    except msgspec.ValidationError as exc:
        raise SignallingError("invalid_message", str(exc)) from None


def error_of(exc: Exception) -> tuple[str, str]:
    """The stable code and detail an error is answered with."""
    if isinstance(exc, SignallingError):
        return exc.code, exc.detail
    if isinstance(exc, Problem):
        if exc.status == 404:
            return "call_not_found", "no such call"  # another tenant's call answers exactly like a missing one
        if exc.code == "invalid_sdp":
            return "invalid_offer", exc.detail
        return exc.code, exc.detail
    code = getattr(exc, "code", None)
    if isinstance(exc, ValueError) and isinstance(code, str):  # kefu.webrtc's OfferRejected
        return code, str(exc)
    log.exception("a signalling message failed", exc_info=exc)
    return "internal_error", "the server could not handle this message; the socket stays open"


def _request_id(message: dict[str, Any] | None) -> str | int | None:
    value = message.get("request_id") if message else None
    if isinstance(value, str) and len(value) <= 64 or isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


Handler = Callable[[msgspec.Struct], Awaitable[list[dict[str, Any]]]]


class Channel:
    """One socket: the hub's pushes out; client frames in, each answered by replies or one error.

    Frames are handled one at a time, in order (an offer is answered before
    the candidates sent after it are added).  Sends are serialised.
    """

    def __init__(self, socket: WebSocket, pushes: asyncio.Queue[dict[str, Any]], *, clock: Callable[[], float] = time.monotonic) -> None:
        self.socket = socket
        self.pushes = pushes
        self._messages = TokenBucket(rate=MESSAGES_PER_S, burst=MESSAGE_BURST, clock=clock)
        self._refusals = TokenBucket(rate=REFUSALS_FORGIVEN_PER_S, burst=MAX_REFUSED, clock=clock)
        self._send_lock = asyncio.Lock()

    async def send(self, message: dict[str, Any]) -> None:
        async with self._send_lock:
            await self.socket.send_json(message)

    async def error(self, code: str, detail: str, request_id: str | int | None = None) -> None:
        message: dict[str, Any] = {"type": "error", "code": code, "detail": detail}
        if request_id is not None:
            message["request_id"] = request_id
        await self.send(message)

    async def run(self, types: dict[str, type[msgspec.Struct]], handle: Handler) -> None:
        """Until the client leaves (``WebSocketDisconnect``) or floods (closed with 1008)."""
        receiver = asyncio.create_task(self._receive(types, handle))
        getter: asyncio.Task[dict[str, Any]] | None = None
        try:
            while True:
                getter = asyncio.create_task(self.pushes.get())
                done, _ = await asyncio.wait({getter, receiver}, return_when=asyncio.FIRST_COMPLETED)
                if receiver in done:
                    try:
                        receiver.result()  # re-raises the disconnect
                    except _Flooding:
                        await self.socket.close(code=POLICY_VIOLATION, reason="too many messages")
                    return
                message = getter.result()
                await self.send(message)
                if message.get("type") == "close":
                    await self.socket.close(code=4000, reason=str(message.get("reason", "")))
                    return
        finally:
            if getter is not None:
                getter.cancel()
            receiver.cancel()
            # Wait for it without re-raising its end (already handled); a cancel of this task still propagates.
            await asyncio.wait({receiver})
            if not receiver.cancelled():
                receiver.exception()

    async def _receive(self, types: dict[str, type[msgspec.Struct]], handle: Handler) -> None:
        while True:
            event = await self.socket.receive()
            if event["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(detail="disconnect event", code=event.get("code", 1000))
            if not self._messages.take():
                if not self._refusals.take():
                    raise _Flooding
                await self.error("rate_limited", f"at most {MESSAGES_PER_S:g} messages a second (bursts of {MESSAGE_BURST}); this one was dropped")
                continue
            message: dict[str, Any] | None = None
            try:
                message = decode_frame(event)
                replies = await handle(parse_message(message, types))
            except Exception as exc:
                code, detail = error_of(exc)
                await self.error(code, detail, _request_id(message))
                continue
            for reply in replies:
                await self.send(reply)


def socket_clock(runtime: Runtime) -> Callable[[], float]:
    return runtime.components.get("signalling.clock", time.monotonic)  # type: ignore[no-any-return]


# --- messages -------------------------------------------------------------------------------


class PingMessage(msgspec.Struct, tag="ping", tag_field="type", forbid_unknown_fields=True):
    request_id: RequestId | None = None


class IceCandidateMessage(msgspec.Struct, tag="ice_candidate", tag_field="type", forbid_unknown_fields=True):
    """``RTCPeerConnectionIceEvent.candidate`` as ``toJSON()`` gives it; ``candidate`` null or "" ends the candidates."""

    call_id: uuid.UUID
    candidate: Annotated[str, msgspec.Meta(max_length=MAX_CANDIDATE_CHARS)] | None
    sdp_mid: Annotated[str, msgspec.Meta(max_length=32)] | None = msgspec.field(default=None, name="sdpMid")
    sdp_mline_index: Annotated[int, msgspec.Meta(ge=0, le=64)] | None = msgspec.field(default=None, name="sdpMLineIndex")
    username_fragment: Annotated[str, msgspec.Meta(max_length=256)] | None = msgspec.field(default=None, name="usernameFragment")
    party: Annotated[str, msgspec.Meta(max_length=32)] | None = None
    request_id: RequestId | None = None


class OfferMessage(msgspec.Struct, tag="offer", tag_field="type", forbid_unknown_fields=True):
    call_id: uuid.UUID
    sdp: Annotated[str, msgspec.Meta(max_length=MAX_SDP_CHARS)]
    request_id: RequestId | None = None


SOCKET_MESSAGES: dict[str, type[msgspec.Struct]] = {"ping": PingMessage, "ice_candidate": IceCandidateMessage, "offer": OfferMessage}


def _answer(call_id: uuid.UUID, sdp: str, request_id: str | int | None) -> dict[str, Any]:
    return {"type": "answer", "call_id": str(call_id), "sdp": sdp, "request_id": request_id}


def _check_offer(sdp: str) -> None:
    if not sdp.lstrip().startswith("v=0"):
        raise SignallingError("invalid_offer", "sdp must be a session description starting with v=0")


async def _add_candidate(runtime: Runtime, *, tenant_id: uuid.UUID, call_id: uuid.UUID, party: str, message: IceCandidateMessage) -> None:
    media = contact_center(runtime).calls.media()
    await media.add_ice_candidate(
        tenant_id=tenant_id, call_id=call_id, party=party, candidate=message.candidate or None,
        sdp_mid=message.sdp_mid, sdp_mline_index=message.sdp_mline_index,
    )


def _own_party(message: IceCandidateMessage, party: str) -> str:
    if message.party is not None and message.party != party:
        raise SignallingError("invalid_party", f"this socket trickles only its own leg ({party})")
    return party


@dataclass
class AgentMessages:
    """What an agent's socket may say: ``ping``, ``ice_candidate`` and ``offer`` for its own calls."""

    runtime: Runtime
    principal: Principal
    tenant_id: uuid.UUID
    agent_id: uuid.UUID

    types = SOCKET_MESSAGES

    async def handle(self, message: msgspec.Struct) -> list[dict[str, Any]]:
        if isinstance(message, PingMessage):
            alive = await contact_center(self.runtime).acd.renew_lease(tenant_id=self.tenant_id, agent_id=self.agent_id)
            return [{"type": "pong", "lease": alive}]
        if isinstance(message, IceCandidateMessage):
            call, party = await self._own_call(message.call_id)
            await _add_candidate(self.runtime, tenant_id=self.tenant_id, call_id=call.id, party=_own_party(message, party), message=message)
            return []
        assert isinstance(message, OfferMessage)
        return await self._offer(message)

    async def _own_call(self, call_id: uuid.UUID) -> tuple[Call, str]:
        """The call and the agent's party on it: ``agent`` (its call, or a ring-all call
        ringing at it) or ``consult`` (consulted on it)."""
        async with self.runtime.db.tenant_session(tenant_id=self.tenant_id) as session:
            rings_here = select(Agent.current_call_id).where(Agent.tenant_id == self.tenant_id, Agent.id == self.agent_id)
            call = await session.scalar(
                select(Call).where(
                    Call.tenant_id == self.tenant_id, Call.id == call_id,
                    or_(
                        Call.agent_id == self.agent_id,
                        Call.consult_agent_id == self.agent_id,
                        and_(Call.ring_group.is_(True), Call.status == "ringing", Call.id.in_(rings_here)),
                    ),
                )
            )
        if call is None:
            raise SignallingError("call_not_found", "no such call")
        return call, "consult" if call.consult_agent_id == self.agent_id else "agent"

    async def _offer(self, message: OfferMessage) -> list[dict[str, Any]]:
        """Answer the ringing call, re-attach to the connected one, or answer a consultation."""
        _check_offer(message.sdp)
        async with self.runtime.db.tenant_session(tenant_id=self.tenant_id) as session:
            # A suspended tenant's or disabled user's socket stops answering calls at once, like its tokens.
            await check_tenant_and_user_active(session, self.principal, self.tenant_id)
        call, party = await self._own_call(message.call_id)
        user_id = self.principal.user_id
        if party == "consult":
            sdp = await self.runtime.components["transfers"].answer_consult(
                tenant_id=self.tenant_id, user_id=user_id, call_id=call.id, offer_sdp=message.sdp
            )
            return [_answer(call.id, sdp, message.request_id)]
        if call.status == "ringing":
            sdp = await contact_center(self.runtime).calls.answer(tenant_id=self.tenant_id, user_id=user_id, call_id=call.id, offer_sdp=message.sdp)
            return [_answer(call.id, sdp, message.request_id)]
        sdp, current = await self.runtime.components["reconnect"].reattach_agent(
            tenant_id=self.tenant_id, user_id=user_id, call_id=call.id, offer_sdp=message.sdp
        )
        # A re-attached desktop shows hold, mute, recording and supervisor at once.
        return [_answer(call.id, sdp, message.request_id), audio_message(current)]


@dataclass
class CallerMessages:
    """What a caller's socket may say: ``ping``, ``ice_candidate`` and ``offer`` (re-attach) for its own call."""

    runtime: Runtime
    tenant_id: uuid.UUID
    call_id: uuid.UUID
    caller_token: str

    types = SOCKET_MESSAGES

    async def handle(self, message: msgspec.Struct) -> list[dict[str, Any]]:
        if isinstance(message, PingMessage):
            return [{"type": "pong"}]
        assert isinstance(message, IceCandidateMessage | OfferMessage)
        if message.call_id != self.call_id:
            raise SignallingError("call_not_found", "no such call")  # the socket's token opens its own call only
        if isinstance(message, IceCandidateMessage):
            await _add_candidate(self.runtime, tenant_id=self.tenant_id, call_id=self.call_id, party=_own_party(message, "caller"), message=message)
            return []
        _check_offer(message.sdp)
        sdp = await self.runtime.components["reconnect"].reattach_caller(
            call_id=self.call_id, caller_token=self.caller_token, offer_sdp=message.sdp
        )
        return [_answer(self.call_id, sdp, message.request_id)]
