"""A tenant's whole data as one streamed JSON document, generically from the metadata.

Format (``kefu-tenant-export/1``)::

    {"format": "kefu-tenant-export/1", "exported_at": "...", "tenant": {...},
     "tables": {"<table>": [{column: value, ...}, ...], ...},
     "recordings": [{"path": "<tenant_id>/<call>/<file>", "size_bytes": n}, ...]}

Every table with a ``tenant_id`` column is included (rows ordered by primary
key), so a new context's tables are exported without touching this module.
Secrets are left out: any column named ``*_hash`` or containing ``secret``
(password, token and client-secret hashes, SSO client secrets).  Recordings
are listed, not inlined: JSON is the wrong carrier for audio, and the files
are fetched through the recordings API or copied from storage by path.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import Table, select

from kefu.platform.db import Database
from kefu.platform.db.base import Base, tenant_tables, utcnow
from kefu.platform.db.registry import load_all_models
from kefu.platform.models import Tenant

FORMAT = "kefu-tenant-export/1"
CHUNK_ROWS = 500


def is_secret_column(name: str) -> bool:
    return name.endswith("_hash") or "secret" in name


def _enc(value: Any) -> Any:
    if isinstance(value, str):  # str subclasses such as SQLAlchemy's quoted_name
        return str(value)
    if isinstance(value, (uuid.UUID, Decimal)):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise NotImplementedError(type(value))


_encoder = msgspec.json.Encoder(enc_hook=_enc)


def _plain(row: Any) -> dict[str, Any]:
    return {str(key): value for key, value in row.items()}


def exported_tables() -> list[Table]:
    load_all_models()
    names = set(tenant_tables())
    # Parents before children, so an import can replay the file in order.
    return [t for t in Base.metadata.sorted_tables if t.name in names]


def recording_files(recordings_dir: Path, tenant_id: uuid.UUID) -> list[dict[str, Any]]:
    root = recordings_dir / str(tenant_id)
    if not root.is_dir():
        return []
    return [
        {"path": str(path.relative_to(recordings_dir)), "size_bytes": path.stat().st_size}
        for path in sorted(root.rglob("*"))
        if path.is_file()
    ]


async def stream_export(db: Database, *, tenant_id: uuid.UUID, recordings_dir: Path) -> AsyncIterator[bytes]:
    """Yield the export document in chunks; one platform transaction gives a consistent snapshot."""
    async with db.platform_session(reason=f"export tenant {tenant_id}") as session:
        tenant = (await session.execute(select(Tenant.__table__).where(Tenant.id == tenant_id))).mappings().one()
        head = {"format": FORMAT, "exported_at": utcnow(), "tenant": _plain(tenant)}
        yield _encoder.encode(head)[:-1] + b', "tables": {'
        for index, table in enumerate(exported_tables()):
            columns = [c for c in table.c if not is_secret_column(c.name)]
            yield (b", " if index else b"") + _encoder.encode(table.name) + b": ["
            query = select(*columns).where(table.c.tenant_id == tenant_id).order_by(*table.primary_key.columns)
            first = True
            result = await session.stream(query.execution_options(yield_per=CHUNK_ROWS))
            async for partition in result.mappings().partitions(CHUNK_ROWS):
                rows = [_encoder.encode(_plain(row)) for row in partition]
                yield (b"" if first else b", ") + b", ".join(rows)
                first = False
            yield b"]"
    yield b'}, "recordings": ' + _encoder.encode(recording_files(recordings_dir, tenant_id)) + b"}"
