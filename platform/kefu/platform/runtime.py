"""The process's shared components, built once from settings and kept in ``app.state.runtime``.

Contexts that run background machinery (event publisher, job worker, media
server, ACD timers) register it with ``add_service``; the app starts services
in order on start-up and stops them in reverse on shutdown.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from kefu.platform.db import Database
from kefu.platform.identity.keys import SigningKeys
from kefu.platform.identity.tokens import TokenService
from kefu.platform.settings import Settings

log = logging.getLogger(__name__)


class Service(Protocol):
    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


TenantDeactivationHook = Callable[[AsyncSession, uuid.UUID], Awaitable[object]]


@dataclass
class Runtime:
    settings: Settings
    db: Database
    keys: SigningKeys
    tokens: TokenService
    # Which process parts run here: "api", "worker", "media" ("kefu serve" runs all three).
    process_roles: frozenset[str] = frozenset({"api", "worker", "media"})
    services: list[Service] = field(default_factory=list)
    # Named components contexts hand to each other (e.g. "events", "broker", "media").
    components: dict[str, Any] = field(default_factory=dict)
    # Called in the same transaction when a tenant is suspended or closed, so
    # each context can stop that tenant's live work (the ACD logs its agents out).
    tenant_deactivation_hooks: list[TenantDeactivationHook] = field(default_factory=list)
    started: bool = False

    @classmethod
    def build(cls, settings: Settings, *, process_roles: frozenset[str] = frozenset({"api", "worker", "media"})) -> "Runtime":
        keys = SigningKeys(settings.auth.signing_key_pem)
        return cls(
            settings=settings,
            db=Database(settings.db),
            keys=keys,
            tokens=TokenService(keys, issuer=settings.auth.issuer, ttl_s=settings.auth.access_token_ttl_s),
            process_roles=process_roles,
        )

    def add_service(self, service: Service) -> None:
        self.services.append(service)

    async def start(self) -> None:
        for service in self.services:
            log.info("starting %s", service.name)
            await service.start()
        self.started = True

    async def stop(self) -> None:
        for service in reversed(self.services):
            try:
                await service.stop()
            except Exception:
                log.exception("stopping %s failed", service.name)
        await self.db.dispose()
        self.started = False
