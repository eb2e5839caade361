"""Password and secret hashing.

Passwords: argon2id (argon2-cffi's RFC 9106 low-memory profile), hashed and
verified on a worker thread so the event loop never stalls for ~50 ms.
Client secrets and opaque tokens are 256-bit random values, so a plain SHA-256
is enough to store them (nothing to brute-force) and lets us look them up by hash.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import secrets
import weakref

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from argon2.profiles import RFC_9106_LOW_MEMORY

from kefu.platform.problems import Problem

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256

_hasher = PasswordHasher.from_parameters(RFC_9106_LOW_MEMORY)

# Verified against when a user is unknown or has no password, so a failed
# log-in costs the same time whether or not the e-mail exists.
_DUMMY_HASH = _hasher.hash("kefu-dummy-password")


# At most this many argon2 computations run at once (each takes ~50 ms of CPU
# and 64 MiB); callers beyond it wait their turn instead of starving the
# process.  Unauthenticated endpoints (log-in, invitations) can cause argon2 work.
ARGON2_CONCURRENCY = 2 * (os.cpu_count() or 1)

_semaphores: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]" = weakref.WeakKeyDictionary()


def argon2_slots() -> asyncio.Semaphore:
    """The running event loop's argon2 semaphore (one per loop: asyncio primitives are loop-bound)."""
    loop = asyncio.get_running_loop()
    semaphore = _semaphores.get(loop)
    if semaphore is None:
        semaphore = _semaphores[loop] = asyncio.Semaphore(ARGON2_CONCURRENCY)
    return semaphore


async def _argon2(func, *args):  # type: ignore[no-untyped-def]
    async with argon2_slots():
        return await anyio.to_thread.run_sync(func, *args)


def check_password_policy(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Problem(400, "password_too_short", f"passwords need at least {MIN_PASSWORD_LENGTH} characters", min_length=MIN_PASSWORD_LENGTH)
    if len(password) > MAX_PASSWORD_LENGTH:
        raise Problem(400, "password_too_long", f"passwords may have at most {MAX_PASSWORD_LENGTH} characters")


async def hash_password(password: str) -> str:
    check_password_policy(password)
    return await _argon2(_hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; always spends one argon2 verification."""

    def _verify() -> bool:
        try:
            return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    if len(password) > MAX_PASSWORD_LENGTH:
        return False
    return await _argon2(_verify)


def new_token() -> str:
    """An opaque 256-bit random secret (refresh tokens, invitations, client secrets)."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def same_hash(stored: str, token: str) -> bool:
    return hmac.compare_digest(stored, token_hash(token))
