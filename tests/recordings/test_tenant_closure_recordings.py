"""A closed tenant's purge deletes its recording files from the store, not only its rows:
recordings, retention policies and legal holds included (a hold does not outlive its
tenant: the operator's export is how a leaving tenant keeps anything)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from recordings_support import T0, Tenant, add_queue, recorded_call, recording_rows
from sqlalchemy import func, select

from kefu.platform.db.base import utcnow
from kefu.platform.identity.principal import Principal
from kefu.platform.models import PlatformAuditEntry
from kefu.platform.models import Tenant as TenantRow
from kefu.tenants.recordings.models import LegalHold, RecordingPolicy


def operator(runtime: Any) -> dict[str, str]:
    token = runtime.tokens.issue(Principal(kind="operator", subject="test-op", tenant_id=None,
                                           scopes=frozenset({"platform:tenants.read", "platform:tenants.write"})))
    return {"Authorization": f"Bearer {token}"}


async def test_purging_a_closed_tenant_deletes_its_recording_files_and_recording_rows(
    client: Any, runtime: Any, acme: Tenant, globex: Tenant
) -> None:
    queue = await add_queue(client, acme, "Support")
    calls = [await recorded_call(acme, started_at=T0 - timedelta(days=d), queue_id=queue) for d in (1, 2)]
    assert (await client.put("/api/v1/recordings/retention", json={"retention_days": 365}, headers=acme.headers())).status_code == 200
    assert (await client.put(f"/api/v1/recordings/retention/queues/{queue}", json={"retention_days": 30}, headers=acme.headers())).status_code == 200
    assert (await client.put(f"/api/v1/calls/{calls[0].id}/legal-hold", json={"reason": "case 9"}, headers=acme.headers())).status_code == 200
    theirs = await recorded_call(globex, started_at=T0 - timedelta(days=1))
    assert (await client.post(f"/api/admin/v1/tenants/{acme.id}/close", headers=operator(runtime))).status_code == 200
    async with runtime.db.platform_session(reason="test: acme's retention is over") as session:
        (await session.get_one(TenantRow, acme.id)).purge_after = utcnow() - timedelta(minutes=1)
    assert (await client.post("/api/admin/v1/purges", headers=operator(runtime))).status_code == 202
    await runtime.components["jobs"].drain()
    recordings_dir = runtime.settings.recordings_dir
    assert not (recordings_dir / str(acme.id)).exists()
    assert [c.path(p).exists() for c in calls for p in ("caller", "agent")] == [False] * 4
    async with runtime.db.platform_session(reason="test: what is left") as session:
        for table in (RecordingPolicy, LegalHold):
            assert await session.scalar(select(func.count()).select_from(table).where(table.tenant_id == acme.id)) == 0
        [purged] = (await session.scalars(select(PlatformAuditEntry).where(PlatformAuditEntry.action == "tenant.purged"))).all()
    assert purged.detail["rows"]["recordings"] == 4
    assert purged.detail["rows"]["recording_policies"] == 2 and purged.detail["rows"]["recording_legal_holds"] == 1
    # Globex keeps its files and rows.
    assert theirs.path().read_bytes()[:4] == b"OggS"
    assert await recording_rows(globex) == {theirs.recording_id("caller"), theirs.recording_id("agent")}
