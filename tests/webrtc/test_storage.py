"""Recording stores against a real S3-compatible server (moto_server) and the local folder:
finalize (upload, verify, local delete, retry), ranged reads, purge, and key checks."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from s3_support import BUCKET, S3Server, free_port, s3_server  # noqa: F401  (fixture)
from sqlalchemy import select
from test_recorder import opus_packets

from kefu.platform.admin.purge import purge_tenant
from kefu.platform.db.base import utcnow
from kefu.platform.models import PlatformAuditEntry, Tenant, TenantStatus
from kefu.platform.runtime import Runtime
from kefu.platform.settings import Settings
from kefu.webrtc.recorder import OggOpusRecorder
from kefu.webrtc.storage import (
    InvalidRecordingKey,
    LocalStore,
    RangeNotSatisfiable,
    RecordingNotFound,
    RecordingRange,
    S3Store,
    StorageError,
    StoredRecording,
    install_recording_store,
    store_for,
)

TENANT = uuid.UUID("a1a1a1a1-0000-4000-8000-000000000001")
OTHER_TENANT = uuid.UUID("b2b2b2b2-0000-4000-8000-000000000002")


def key_of(tenant: uuid.UUID = TENANT, party: str = "caller", extension: str = "ogg") -> str:
    return f"{tenant}/{uuid.uuid4()}/{party}.{extension}"


def write(root: Path, key: str, data: bytes) -> Path:
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


async def read_all(media: RecordingRange) -> bytes:
    return b"".join([chunk async for chunk in media.chunks])


@pytest.fixture
def s3_store(s3_server: S3Server) -> S3Store:  # noqa: F811
    return S3Store(bucket=s3_server.bucket, prefix="recordings", endpoint_url=s3_server.endpoint_url)


# --- finalize -------------------------------------------------------------------------


async def test_finalize_uploads_verifies_and_deletes_the_local_file_and_its_call_folder(
    tmp_path: Path, s3_server: S3Server, s3_store: S3Store  # noqa: F811
) -> None:
    key = key_of()
    recorder = OggOpusRecorder(tmp_path / key)
    for packet in opus_packets(440, 1.0):
        recorder.deliver("leg", packet)
    recorder.close()
    recorded = recorder.path.read_bytes()

    stored = await s3_store.finalize(recorder.path, key)

    assert stored == StoredRecording(
        key=key, size_bytes=len(recorded), content_type="audio/ogg", backend="s3", location=f"s3://{BUCKET}/recordings/{key}"
    )
    assert s3_server.get(f"recordings/{key}") == recorded
    head = s3_server.client().head_object(Bucket=BUCKET, Key=f"recordings/{key}")
    assert (head["ContentType"], head["ContentLength"]) == ("audio/ogg", len(recorded))
    assert not recorder.path.exists()
    assert not recorder.path.parent.exists()  # the call's folder
    assert (tmp_path / str(TENANT)).is_dir()  # the tenant's folder stays (another call may be creating its folder)


async def test_finalize_again_after_a_completed_attempt_answers_from_the_stored_object(
    tmp_path: Path, s3_server: S3Server, s3_store: S3Store  # noqa: F811
) -> None:
    key = key_of(party="agent")
    path = write(tmp_path, key, b"OggS" + b"agent" * 100)
    first = await s3_store.finalize(path, key)
    assert await s3_store.finalize(path, key) == first
    with pytest.raises(RecordingNotFound):
        await s3_store.finalize(tmp_path / key_of(), key_of())  # nothing local, nothing stored


async def test_the_other_partys_file_keeps_the_call_folder_until_it_is_finalized(
    tmp_path: Path, s3_server: S3Server, s3_store: S3Store  # noqa: F811
) -> None:
    caller_key = key_of()
    agent_key = caller_key.replace("caller.ogg", "agent.ogg")
    caller, agent = write(tmp_path, caller_key, b"caller"), write(tmp_path, agent_key, b"agent")
    await s3_store.finalize(caller, caller_key)
    assert agent.is_file()
    await s3_store.finalize(agent, agent_key)
    assert not agent.parent.exists()
    assert s3_server.keys(f"recordings/{caller_key.split('/')[0]}/{caller_key.split('/')[1]}/") == [
        f"recordings/{agent_key}", f"recordings/{caller_key}",
    ]


async def test_a_big_recording_is_uploaded_in_parts_with_the_wav_content_type(
    tmp_path: Path, s3_server: S3Server  # noqa: F811
) -> None:
    mib = 1024 * 1024
    store = S3Store(bucket=s3_server.bucket, endpoint_url=s3_server.endpoint_url, multipart_threshold=5 * mib, multipart_chunksize=5 * mib)
    key = key_of(extension="wav")
    data = os.urandom(11 * mib)
    path = write(tmp_path, key, data)

    stored = await store.finalize(path, key)

    head = s3_server.client().head_object(Bucket=BUCKET, Key=key)
    assert (stored.size_bytes, stored.content_type, head["ContentType"]) == (len(data), "audio/wav", "audio/wav")
    assert head["ETag"].strip('"').endswith("-3")  # three parts: 5 + 5 + 1 MiB
    assert s3_server.get(key) == data
    assert not path.exists()


async def test_an_unreachable_endpoint_keeps_the_local_file_and_raises_upload_failed_and_a_retry_succeeds(
    tmp_path: Path, s3_server: S3Server  # noqa: F811
) -> None:
    unreachable = S3Store(bucket=BUCKET, endpoint_url=f"http://127.0.0.1:{free_port()}", max_attempts=1, connect_timeout_s=1)
    key = key_of()
    data = b"OggS" + b"\x01" * 1000
    path = write(tmp_path, key, data)

    with pytest.raises(StorageError) as failure:
        await unreachable.finalize(path, key)

    assert failure.value.code == "recording_upload_failed"
    assert path.read_bytes() == data
    # The retry story: the same call later, against a store that answers.
    reachable = S3Store(bucket=BUCKET, endpoint_url=s3_server.endpoint_url)
    assert (await reachable.finalize(path, key)).size_bytes == len(data)
    assert s3_server.get(key) == data
    assert not path.exists()


async def test_a_missing_bucket_is_an_upload_failure_too(tmp_path: Path, s3_server: S3Server) -> None:  # noqa: F811
    store = S3Store(bucket="no-such-bucket", endpoint_url=s3_server.endpoint_url)
    key = key_of()
    path = write(tmp_path, key, b"OggS")
    with pytest.raises(StorageError) as failure:
        await store.finalize(path, key)
    assert failure.value.code == "recording_upload_failed"
    assert path.read_bytes() == b"OggS"


async def test_local_finalize_keeps_the_file_in_place_and_moves_one_written_elsewhere(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "recordings")
    key = key_of()
    in_place = write(tmp_path / "recordings", key, b"OggS in place")
    assert await store.finalize(in_place, key) == StoredRecording(
        key=key, size_bytes=13, content_type="audio/ogg", backend="local", location=str(in_place)
    )
    assert in_place.read_bytes() == b"OggS in place"

    other_key = key_of(extension="wav")
    elsewhere = write(tmp_path / "spool", "x.wav", b"RIFF")
    stored = await store.finalize(elsewhere, other_key)
    assert (stored.size_bytes, stored.content_type, (tmp_path / "recordings" / other_key).read_bytes()) == (4, "audio/wav", b"RIFF")
    assert not elsewhere.exists()


# --- ranged reads (the same answers from both stores) ------------------------------------

DATA = bytes(range(256)) * 40  # 10240 bytes


@pytest.fixture(params=["local", "s3"])
def stored_key(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[LocalStore | S3Store, str]:
    key = key_of()
    if request.param == "local":
        write(tmp_path, key, DATA)
        return LocalStore(tmp_path), key
    server: S3Server = request.getfixturevalue("s3_server")
    server.put(f"recordings/{key}", DATA)
    return S3Store(bucket=server.bucket, prefix="recordings/", endpoint_url=server.endpoint_url), key


@pytest.mark.parametrize(
    ("start", "end", "first", "last", "partial"),
    [
        (None, None, 0, 10239, False),  # no Range
        (0, None, 0, 10239, True),  # bytes=0-
        (100, 199, 100, 199, True),  # bytes=100-199
        (10000, None, 10000, 10239, True),  # bytes=10000-
        (10000, 99999, 10000, 10239, True),  # the end is clamped
        (None, 40, 10200, 10239, True),  # bytes=-40: the last 40
        (None, 99999, 0, 10239, True),  # a suffix longer than the file
        (10239, 10239, 10239, 10239, True),  # the last byte
    ],
)
async def test_a_byte_range_is_read_exactly(
    stored_key: tuple[LocalStore | S3Store, str], start: int | None, end: int | None, first: int, last: int, partial: bool
) -> None:
    store, key = stored_key
    media = await store.open_range(key, start, end)
    body = await read_all(media)
    assert (media.start, media.end, media.total_size, media.partial, media.content_type) == (first, last, 10240, partial, "audio/ogg")
    assert media.content_range == f"bytes {first}-{last}/10240"
    assert body == DATA[first : last + 1]


@pytest.mark.parametrize(("start", "end"), [(10240, None), (20000, 30000), (None, 0)])
async def test_a_range_outside_the_recording_is_not_satisfiable(
    stored_key: tuple[LocalStore | S3Store, str], start: int | None, end: int | None
) -> None:
    store, key = stored_key
    with pytest.raises(RangeNotSatisfiable) as failure:
        await store.open_range(key, start, end)
    assert (failure.value.code, failure.value.total_size) == ("range_not_satisfiable", 10240)


async def test_a_missing_recording_is_not_found_and_a_stream_can_be_closed_unread(
    stored_key: tuple[LocalStore | S3Store, str]
) -> None:
    store, key = stored_key
    with pytest.raises(RecordingNotFound):
        await store.open_range(key_of())
    media = await store.open_range(key)
    await media.aclose()
    await media.aclose()  # idempotent
    assert [chunk async for chunk in media.chunks] == []


async def test_a_long_recording_streams_in_chunks(tmp_path: Path, s3_server: S3Server, s3_store: S3Store) -> None:  # noqa: F811
    key = key_of()
    data = os.urandom(200_000)
    s3_server.put(f"recordings/{key}", data)
    media = await s3_store.open_range(key)
    chunks = [chunk async for chunk in media.chunks]
    assert (len(chunks), b"".join(chunks)) == (4, data)  # 64 KiB chunks


# --- purge -----------------------------------------------------------------------------


async def test_delete_prefix_deletes_one_tenants_objects_only(s3_server: S3Server, s3_store: S3Store) -> None:  # noqa: F811
    tenant, other = uuid.uuid4(), uuid.uuid4()
    mine = [key_of(tenant), key_of(tenant, "agent"), key_of(tenant, extension="wav")]
    theirs = key_of(other)
    for key in [*mine, theirs]:
        s3_server.put(f"recordings/{key}", b"x")

    assert await s3_store.delete_prefix(f"{tenant}/") == 3
    assert s3_server.keys(f"recordings/{tenant}/") == []
    assert s3_server.keys(f"recordings/{other}/") == [f"recordings/{theirs}"]
    assert await s3_store.delete_prefix(f"{tenant}/") == 0  # idempotent


async def test_delete_prefix_on_the_local_folder(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    tenant, other = uuid.uuid4(), uuid.uuid4()
    write(tmp_path, key_of(tenant), b"x")
    write(tmp_path, key_of(tenant, "agent"), b"x")
    theirs = write(tmp_path, key_of(other), b"x")
    assert await store.delete_prefix(f"{tenant}/") == 2
    assert not (tmp_path / str(tenant)).exists()
    assert theirs.is_file()
    assert await store.delete_prefix(f"{tenant}/") == 0


@pytest.fixture
def s3_settings(make_settings: Callable[..., Settings], s3_server: S3Server) -> Settings:  # noqa: F811
    return make_settings(
        "sqlite", KEFU_RECORDINGS_BACKEND="s3", KEFU_S3_BUCKET=BUCKET, KEFU_S3_ENDPOINT_URL=s3_server.endpoint_url, KEFU_S3_PREFIX="purge/"
    )


async def test_the_tenant_purge_deletes_the_tenants_recordings_in_object_storage(s3_settings: Settings, s3_server: S3Server) -> None:  # noqa: F811
    settings = s3_settings
    runtime = Runtime.build(settings)
    install_recording_store(runtime)  # what kefu.webrtc's install does in every process
    async with runtime.db.platform_session(reason="test") as session:
        closed = Tenant(slug="closed", name="Closed", locale="en", status=TenantStatus.CLOSED, purge_after=utcnow() - timedelta(minutes=1), branding={})
        active = Tenant(slug="active", name="Active", locale="en", status="active", branding={})
        session.add_all([closed, active])
        await session.flush()
        closed_id, active_id = closed.id, active.id
    closed_keys = [key_of(closed_id), key_of(closed_id, "agent")]
    active_key = key_of(active_id)
    for key in [*closed_keys, active_key]:
        s3_server.put(f"purge/{key}", b"x")
    leftover = write(settings.recordings_dir, key_of(closed_id), b"not uploaded yet")

    async with runtime.db.platform_session(reason="test purge") as session:
        assert await purge_tenant(session, tenant_id=closed_id, settings=settings, now=utcnow())
    async with runtime.db.platform_session(reason="test") as session:
        [entry] = (await session.scalars(select(PlatformAuditEntry).where(PlatformAuditEntry.action == "tenant.purged"))).all()
    await runtime.db.dispose()

    assert s3_server.keys("purge/") == [f"purge/{active_key}"]
    assert not leftover.exists()
    assert entry.detail["files"]["recordings"] == 2  # other contexts' purgers (IVR prompts) report their own


# --- keys ------------------------------------------------------------------------------

T, C = str(TENANT), "c0c0c0c0-0000-4000-8000-000000000003"
BAD_KEYS = [
    "",
    f"../{T}/{C}/caller.ogg",
    f"/{T}/{C}/caller.ogg",
    f"{T}/{C}/../caller.ogg",
    f"{T}/../{T}/{C}/caller.ogg",
    f"{T}/{C}/caller.ogg/..",
    f"{T}/{C}/../../x/caller.ogg",
    f"{T}//caller.ogg",
    f"{T}/{C}/caller.mp3",
    f"{T}/{C}/caller.ogg\n",
    f"{T}/{C}/.ogg",
    f"{T}/{C}/Caller.ogg",
    f"{T.upper()}/{C}/caller.ogg",
    f"{T}/{C}/sub/caller.ogg",
    f"{T}\\{C}\\caller.ogg",
    f"{T}/not-a-uuid/caller.ogg",
]
BAD_PREFIXES = ["", "/", "../", T, f"/{T}/", f"{T}/../", f"{T}/{C}/caller.ogg", f"{T}/*", ".", f"{T}/{C}/../"]


@pytest.mark.parametrize("key", BAD_KEYS)
async def test_keys_that_are_not_the_recording_shape_are_refused_by_both_stores(
    key: str, tmp_path: Path, s3_store: S3Store
) -> None:
    victim = write(tmp_path, "outside.ogg", b"keep me")
    local = LocalStore(tmp_path / "recordings")
    for store in (local, s3_store):
        with pytest.raises(InvalidRecordingKey) as failure:
            await store.finalize(victim, key)
        assert failure.value.code == "invalid_recording_key"
        with pytest.raises(InvalidRecordingKey):
            await store.open_range(key)
    assert victim.read_bytes() == b"keep me"


@pytest.mark.parametrize("prefix", BAD_PREFIXES)
async def test_prefixes_that_are_not_a_tenant_or_a_call_are_refused(prefix: str, tmp_path: Path, s3_store: S3Store) -> None:
    victim = write(tmp_path, f"{T}/{C}/caller.ogg", b"keep me")
    for store in (LocalStore(tmp_path), s3_store):
        with pytest.raises(InvalidRecordingKey):
            await store.delete_prefix(prefix)
    assert victim.read_bytes() == b"keep me"


def test_store_for_builds_one_store_per_configuration(tmp_path: Path, s3_server: S3Server) -> None:  # noqa: F811
    from kefu.platform.settings import load_settings

    local = load_settings({"KEFU_DATA_DIR": str(tmp_path)})
    s3 = load_settings({"KEFU_DATA_DIR": str(tmp_path), "KEFU_RECORDINGS_BACKEND": "s3", "KEFU_S3_BUCKET": BUCKET,
                        "KEFU_S3_ENDPOINT_URL": s3_server.endpoint_url, "KEFU_S3_PREFIX": "p"})
    assert isinstance(store_for(local), LocalStore) and store_for(local).root == local.recordings_dir
    assert store_for(s3) is store_for(s3)
    assert (store_for(s3).bucket, store_for(s3).prefix, store_for(s3).endpoint_url) == (BUCKET, "p/", s3_server.endpoint_url)
    with pytest.raises(ValueError, match="KEFU_S3_BUCKET"):
        store_for(load_settings({"KEFU_DATA_DIR": str(tmp_path), "KEFU_RECORDINGS_BACKEND": "s3"}))
