"""Identity tables beyond the core ones in kefu.platform.models."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kefu.platform.db.base import Base, TenantScoped, utcnow


class OidcProvider(TenantScoped, Base):
    """A tenant's single sign-on provider, discovered from its issuer URL."""

    __tablename__ = "oidc_providers"
    __table_args__ = (UniqueConstraint("tenant_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    issuer: Mapped[str] = mapped_column(String(500))
    client_id: Mapped[str] = mapped_column(String(255))
    client_secret: Mapped[str] = mapped_column(String(500))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Create a Kefu user (role agent) on first SSO log-in when no user has that e-mail.
    auto_provision: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
