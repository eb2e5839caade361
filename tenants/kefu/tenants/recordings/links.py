"""Short-lived signed links to a recording's audio, for players that cannot send a
bearer token (an ``<audio>`` element, a download).

A link is ``/api/v1/recordings/<id>/media?tenant=..&user=..&purpose=..&expires=..&signature=..``.
The signature is HMAC-SHA256 over the tenant id, the recording id, the purpose
(``listen`` or ``download``), the expiry (unix seconds) and the user who asked
for it, keyed with a secret derived from the deployment's token-signing key (so
every API replica agrees, and rotating that key voids the links).  The media
route checks the signature before anything else; a link of tenant A names tenant
A, whose session (and row-level security) then cannot see tenant B's rows.

Issuing a link is what the audit log records (``recording.listened`` /
``recording.downloaded``, once per link); fetching through it is not audited
again, so a seeking player's Range requests write nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlencode

from litestar.connection import ASGIConnection
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.platform import audit
from kefu.platform.deps import check_active
from kefu.platform.identity.principal import Principal, current_principal
from kefu.platform.problems import Problem
from kefu.platform.settings import Settings
from kefu.tenants.models import Recording

PURPOSES = ("listen", "download")
AUDIT_ACTIONS = {"listen": "recording.listened", "download": "recording.downloaded"}
LINK_PARAMS = ("tenant", "user", "purpose", "expires", "signature")
_KEY_CONTEXT = b"kefu.recordings.links/v1"
# Who may play through the bearer route (and so ask for a link): everything, or the agent's own calls.
PLAY_PERMISSIONS = ("recordings.read", "calls.own.read")


def link_ttl_s(settings: Settings) -> int:
    """How long a link works (KEFU_RECORDING_LINK_TTL)."""
    return settings.recording_link_ttl_s


def _link_key(settings: Settings) -> bytes:
    # Derived, never the signing key itself: an HMAC key of its own for this one use.
    return hmac.new(settings.auth.signing_key_pem, _KEY_CONTEXT, hashlib.sha256).digest()


def _signature(settings: Settings, *, tenant: str, recording: str, purpose: str, expires: str, user: str) -> str:
    message = "\n".join(("recording-link", tenant, recording, purpose, expires, user)).encode()
    return hmac.new(_link_key(settings), message, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class SignedLink:
    recording_id: uuid.UUID
    purpose: str
    url: str
    expires_at: datetime


def sign_link(
    settings: Settings, *, tenant_id: uuid.UUID, recording_id: uuid.UUID, user_id: uuid.UUID, purpose: str, expires_at: datetime
) -> SignedLink:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown purpose {purpose!r}")
    fields = {"tenant": str(tenant_id), "user": str(user_id), "purpose": purpose, "expires": str(int(expires_at.timestamp()))}
    signature = _signature(settings, recording=str(recording_id), **fields)
    query = urlencode([*fields.items(), ("signature", signature)])
    return SignedLink(
        recording_id, purpose, f"/api/v1/recordings/{recording_id}/media?{query}", datetime.fromtimestamp(int(fields["expires"]), UTC)
    )


async def issue_link(
    session: AsyncSession, *, tenant_id: uuid.UUID, recording: Recording, principal: Principal, purpose: str,
    settings: Settings, now: datetime, ip: str | None = None,
) -> SignedLink:
    """A link to ``recording`` (already looked up in the caller's scope), audited once."""
    if purpose not in PURPOSES:
        raise Problem(400, "invalid_purpose", f"purpose must be one of {', '.join(PURPOSES)}")
    user_id = principal.user_id  # 403 user_required: a link names the person it was made for
    link = sign_link(
        settings, tenant_id=tenant_id, recording_id=recording.id, user_id=user_id, purpose=purpose,
        expires_at=now + timedelta(seconds=link_ttl_s(settings)),
    )
    await audit.record(
        session, tenant_id=tenant_id, actor=principal.actor, action=AUDIT_ACTIONS[purpose], target=f"recording:{recording.id}",
        detail={"call_id": str(recording.call_id), "party": recording.party, "purpose": purpose, "expires_at": link.expires_at.isoformat()},
        ip=ip, at=now,
    )
    return link


# --- the media route's side ---------------------------------------------------------


@dataclass(frozen=True)
class MediaGrant:
    """Who may fetch a recording's media in this request, and as what."""

    tenant_id: uuid.UUID
    # The bearer's principal, or (signed link) the user the link was made for, with no permissions.
    principal: Principal
    # None: a bearer token (the caller's permissions apply); "listen" / "download": a signed link.
    purpose: str | None = None

    @property
    def signed(self) -> bool:
        return self.purpose is not None


def _invalid() -> Problem:
    return Problem(403, "invalid_signature", "this recording link is not valid")


def verify_link(settings: Settings, *, recording_id: uuid.UUID, query_string: bytes, now: datetime) -> MediaGrant:
    """The grant a signed link's query gives, or 403 ``invalid_signature`` / ``link_expired``.

    Exactly the five link parameters, each once; the signature is checked before
    anything is read from them, so an altered expiry is a bad signature, not an
    expired link.
    """
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True, errors="replace")
    values = dict(pairs)
    if len(pairs) != len(LINK_PARAMS) or set(values) != set(LINK_PARAMS):
        raise _invalid()
    expected = _signature(
        settings, tenant=values["tenant"], recording=str(recording_id), purpose=values["purpose"],
        expires=values["expires"], user=values["user"],
    )
    if not hmac.compare_digest(values["signature"].encode(), expected.encode()):
        raise _invalid()
    try:  # signed by us, so well-formed; checked anyway
        tenant_id, user_id, expires = uuid.UUID(values["tenant"]), uuid.UUID(values["user"]), int(values["expires"])
    except ValueError:
        raise _invalid() from None
    if values["purpose"] not in PURPOSES:
        raise _invalid()
    if now.timestamp() >= expires:
        raise Problem(403, "link_expired", "this recording link has expired; ask for a new one")
    return MediaGrant(tenant_id, Principal.user(user_id=user_id, tenant_id=tenant_id, roles=frozenset()), values["purpose"])


def is_link_request(query_string: bytes) -> bool:
    names = {name for name, _ in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True, errors="replace")}
    return bool(names & set(LINK_PARAMS))


def media_grant(connection: ASGIConnection, settings: Settings, *, recording_id: uuid.UUID, now: datetime) -> MediaGrant:
    """A signed link's grant when the query carries one (any link parameter), else the bearer's
    (401 without a token, 403 without ``recordings.read`` or ``calls.own.read``)."""
    query_string = connection.scope.get("query_string", b"")
    if is_link_request(query_string):
        return verify_link(settings, recording_id=recording_id, query_string=query_string, now=now)
    principal = current_principal(connection)
    if not any(principal.can(p) for p in PLAY_PERMISSIONS):
        raise Problem(403, "permission_denied", f"this action needs one of the permissions {', '.join(PLAY_PERMISSIONS)}",
                      permissions=list(PLAY_PERMISSIONS))
    return MediaGrant(principal.require_tenant(), principal)


async def check_grant(session: AsyncSession, grant: MediaGrant) -> None:
    """The tenant is active, and so is the user (a link's user too: disabling someone voids their links)."""
    await check_active(session, grant.principal, grant.tenant_id)
