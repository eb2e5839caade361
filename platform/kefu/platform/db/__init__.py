"""Database: declarative base, tenant-scoped sessions and row-level security helpers."""

from kefu.platform.db.base import Base, TenantScoped, tenant_tables, utcnow
from kefu.platform.db.session import Database

__all__ = ["Base", "Database", "TenantScoped", "tenant_tables", "utcnow"]
