"""Where finished recordings are kept: the local folder or S3-compatible object storage.

A recorder writes its file under ``settings.recordings_dir`` at the
recording's key, ``<tenant_id>/<call_id>/<party>.<ogg|wav>``.  When the call
ends, ``finalize`` makes that file the stored recording:

- ``LocalStore`` (``KEFU_RECORDINGS_BACKEND=local``): the file already is the
  stored recording (the recorder fsynced it); finalize returns its size.
- ``S3Store`` (``=s3``): uploads the file to ``s3_prefix + key`` (multipart
  above ``multipart_threshold``), checks with a HEAD that the stored size is
  the local size, then deletes the local file and its call folder.  A failure
  keeps the local file and raises ``StorageError`` (code
  ``recording_upload_failed``): calling ``finalize`` again later with the same
  arguments retries the upload, and one whose local file is already gone (an
  earlier attempt got as far as deleting it) answers from the stored object.

Keys are built from UUIDs by the media plane and checked here again: anything
but the exact shape (a ``..``, a leading ``/``, another extension) raises
``InvalidRecordingKey`` before any file or object is touched.

boto3 is synchronous: every storage operation runs on the store's own bounded
thread pool, never on the event loop, and works from any event loop (the
purge job runs on the job worker's loop).  Stores are built once per
configuration (``store_for``) and registered as
``runtime.components["recordings"]`` by ``install_recording_store``, which
also registers the tenant purge's hook for object storage.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import shutil
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol, TypeVar

from kefu.platform.admin.purge import register_tenant_files_purger
from kefu.platform.runtime import Runtime
from kefu.platform.settings import Settings
from kefu.webrtc.recorder import fsync_directory

log = logging.getLogger(__name__)

T = TypeVar("T")

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
KEY_PATTERN = re.compile(rf"^{_UUID}/{_UUID}/[a-z][a-z0-9_]{{0,31}}\.(ogg|wav)\Z")
PREFIX_PATTERN = re.compile(rf"^{_UUID}/(?:{_UUID}/)?\Z")
CONTENT_TYPES = {"ogg": "audio/ogg", "wav": "audio/wav"}
CHUNK_BYTES = 64 * 1024


# --- errors -------------------------------------------------------------------------


class StorageError(Exception):
    """A storage operation failed; ``code`` is stable.  The local file, if any, is kept."""

    code = "recording_storage_failed"

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        if code is not None:
            self.code = code


class InvalidRecordingKey(StorageError, ValueError):
    code = "invalid_recording_key"


class RecordingNotFound(StorageError):
    code = "recording_not_found"


class RangeNotSatisfiable(StorageError):
    code = "range_not_satisfiable"

    def __init__(self, total_size: int) -> None:
        super().__init__(f"the range lies outside the recording's {total_size} bytes")
        self.total_size = total_size


UPLOAD_FAILED = "recording_upload_failed"
READ_FAILED = "recording_read_failed"
DELETE_FAILED = "recording_delete_failed"


# --- keys -------------------------------------------------------------------------


def check_key(key: str) -> str:
    """``key`` if it is ``<tenant uuid>/<call uuid>/<party>.<ogg|wav>`` (lower-case UUIDs)."""
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        raise InvalidRecordingKey(f"not a recording key: {key!r}")
    return key


def check_prefix(prefix: str) -> str:
    """``prefix`` if it is ``<tenant uuid>/`` or ``<tenant uuid>/<call uuid>/``."""
    if not isinstance(prefix, str) or not PREFIX_PATTERN.match(prefix):
        raise InvalidRecordingKey(f"not a recording prefix: {prefix!r}")
    return prefix


def recording_key(*, tenant_id: uuid.UUID, call_id: uuid.UUID, party: str, extension: str) -> str:
    return check_key(f"{tenant_id}/{call_id}/{party}.{extension}")


def content_type_for(key: str) -> str:
    return CONTENT_TYPES[check_key(key).rsplit(".", 1)[1]]


# --- results ------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredRecording:
    key: str
    size_bytes: int
    content_type: str
    backend: str  # "local" | "s3"
    location: str  # the file's path, or s3://bucket/object-key


@dataclass
class RecordingRange:
    """Bytes ``start``..``end`` (inclusive) of a recording of ``total_size`` bytes, as chunks.

    ``partial`` is False when the whole recording is returned (no range was
    asked, or the store answered the whole).  Iterate ``chunks`` once, or call
    ``aclose()`` to release the file or connection without reading.
    """

    chunks: _ChunkReader
    start: int
    end: int
    total_size: int
    content_type: str
    partial: bool

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    @property
    def content_range(self) -> str:
        return f"bytes {self.start}-{self.end}/{self.total_size}"

    async def aclose(self) -> None:
        await self.chunks.aclose()


def resolve_range(start: int | None, end: int | None, size: int) -> tuple[int, int, bool]:
    """(first, last, partial) for an HTTP byte range on ``size`` bytes (RFC 9110 section 14.1.2).

    ``(None, None)``: everything; ``(s, None)``: from ``s``; ``(s, e)``: ``s``..``e``
    (``e`` clamped); ``(None, n)``: the last ``n`` bytes.
    """
    if start is None and end is None:
        return 0, size - 1, False
    if start is None:
        assert end is not None
        if end <= 0:
            raise RangeNotSatisfiable(size)
        if size == 0:
            return 0, -1, False
        return max(0, size - end), size - 1, True
    if start < 0 or (end is not None and end < start):
        raise ValueError(f"invalid byte range {start}-{end}")
    if start >= size:
        raise RangeNotSatisfiable(size)
    return start, size - 1 if end is None else min(end, size - 1), True


def _http_range(start: int | None, end: int | None) -> str:
    if start is None:
        return f"bytes=-{end}"
    return f"bytes={start}-" if end is None else f"bytes={start}-{end}"


# --- the protocol -------------------------------------------------------------------


class RecordingStore(Protocol):
    backend: str

    async def finalize(self, local_path: Path, key: str) -> StoredRecording:
        """Make the finished file at ``local_path`` the stored recording ``key``."""
        ...

    async def open_range(self, key: str, start: int | None = None, end: int | None = None) -> RecordingRange:
        """Read a recording (or a byte range of it, see ``resolve_range``) for playback."""
        ...

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every recording under ``<tenant_id>/`` (or ``<tenant_id>/<call_id>/``); how many."""
        ...


class _ThreadedStore:
    """Runs blocking storage calls on a bounded thread pool, from any event loop."""

    def __init__(self, executor: ThreadPoolExecutor) -> None:
        self._executor = executor

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, functools.partial(fn, *args))

    def _chunks(self, read: Callable[[int], bytes], release: Callable[[], None], length: int) -> _ChunkReader:
        return _ChunkReader(self, read, release, length)

    def close(self) -> None:
        """Stop the store's threads (S3: its own pool; local stores share one and keep it)."""
        if self._executor is not _LOCAL_IO:
            self._executor.shutdown(wait=False)


# Local file reads are short: every local store (one per recordings folder)
# shares one small pool instead of starting threads of its own.
_LOCAL_IO = ThreadPoolExecutor(max_workers=4, thread_name_prefix="kefu-recordings-local")


class _ChunkReader:
    """``length`` bytes from ``read``, in chunks read on the store's pool; ``release``
    (closing the file or the HTTP response) runs once: at the end, on an error, or on ``aclose()``."""

    def __init__(self, store: _ThreadedStore, read: Callable[[int], bytes], release: Callable[[], None], length: int) -> None:
        self._store = store
        self._read = read
        self._release: Callable[[], None] | None = release
        self._remaining = length

    def __aiter__(self) -> _ChunkReader:
        return self

    async def __anext__(self) -> bytes:
        if self._remaining <= 0 or self._release is None:
            await self.aclose()
            raise StopAsyncIteration
        try:
            data = await self._store._run(self._read, min(CHUNK_BYTES, self._remaining))
        except BaseException:
            await self.aclose()
            raise
        if not data:
            await self.aclose()
            raise StorageError("the recording ended before its announced size", code=READ_FAILED)
        self._remaining -= len(data)
        return data

    async def aclose(self) -> None:
        # Closing a file or an HTTP response does not wait on I/O: done inline,
        # so it also runs when the reading task is cancelled.
        release, self._release = self._release, None
        if release is not None:
            try:
                release()
            except Exception:
                log.warning("releasing a recording stream failed", exc_info=True)


# --- local folder -------------------------------------------------------------------


class LocalStore(_ThreadedStore):
    """Recordings stay where the recorders wrote them: ``<root>/<key>``."""

    backend = "local"

    def __init__(self, root: Path) -> None:
        super().__init__(_LOCAL_IO)
        self.root = root

    def path_of(self, key: str) -> Path:
        return self.root / check_key(key)

    async def finalize(self, local_path: Path, key: str) -> StoredRecording:
        target = self.path_of(key)
        return await self._run(self._finalize, Path(local_path), target, key)

    def _finalize(self, local_path: Path, target: Path, key: str) -> StoredRecording:
        if local_path.resolve() != target.resolve() and local_path.is_file():
            # Not written in place: move it there, durably (same file system).
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(local_path, target)
            fsync_directory(target.parent)
            fsync_directory(local_path.parent)
        try:
            size = target.stat().st_size
        except FileNotFoundError:
            raise RecordingNotFound(f"no file for recording {key}") from None
        return StoredRecording(key=key, size_bytes=size, content_type=content_type_for(key), backend=self.backend, location=str(target))

    async def open_range(self, key: str, start: int | None = None, end: int | None = None) -> RecordingRange:
        path = self.path_of(key)
        file, first, last, partial, size = await self._run(self._open, path, key, start, end)
        chunks = self._chunks(file.read, file.close, last - first + 1)
        return RecordingRange(chunks, first, last, size, content_type_for(key), partial)

    @staticmethod
    def _open(path: Path, key: str, start: int | None, end: int | None) -> tuple[BinaryIO, int, int, bool, int]:
        try:
            file = path.open("rb")
        except (FileNotFoundError, IsADirectoryError):
            raise RecordingNotFound(f"no file for recording {key}") from None
        try:
            size = os.fstat(file.fileno()).st_size
            first, last, partial = resolve_range(start, end, size)
            file.seek(first)
        except BaseException:
            file.close()
            raise
        return file, first, last, partial, size

    async def delete_prefix(self, prefix: str) -> int:
        folder = self.root / check_prefix(prefix)
        return await self._run(self._delete_folder, folder)

    @staticmethod
    def _delete_folder(folder: Path) -> int:
        if not folder.is_dir():
            return 0
        count = sum(1 for p in folder.rglob("*") if p.is_file())
        try:
            shutil.rmtree(folder)
        except OSError as exc:
            raise StorageError(f"deleting {folder} failed: {exc}", code=DELETE_FAILED) from exc
        return count


# --- S3-compatible object storage ----------------------------------------------------


class S3Store(_ThreadedStore):
    """Recordings in a bucket at ``prefix + key``; credentials from boto3's usual chain
    (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``, a profile, an instance role)."""

    backend = "s3"

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        max_workers: int = 8,
        multipart_threshold: int = 16 * 1024 * 1024,
        multipart_chunksize: int = 8 * 1024 * 1024,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 30.0,
        max_attempts: int = 3,
    ) -> None:
        super().__init__(ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="kefu-recordings-s3"))
        self.bucket = bucket
        # "recordings" and "recordings/" both mean the folder "recordings/".
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self.endpoint_url = endpoint_url
        self.region = region
        self._max_workers = max_workers
        self._multipart = (multipart_threshold, multipart_chunksize)
        self._timeouts = (connect_timeout_s, read_timeout_s, max_attempts)
        self._client_lock = threading.Lock()
        self._client_instance: Any = None
        self._transfer_config: Any = None

    def object_key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _client(self) -> Any:
        # Built on first use, in a pool thread (it reads credentials and
        # endpoint data); boto3 clients are thread-safe, sessions are not.
        with self._client_lock:
            if self._client_instance is None:
                import boto3
                from boto3.s3.transfer import TransferConfig
                from botocore.config import Config

                connect, read, attempts = self._timeouts
                config = Config(
                    region_name=self.region,
                    connect_timeout=connect,
                    read_timeout=read,
                    retries={"max_attempts": attempts, "mode": "standard"},
                    max_pool_connections=self._max_workers * 2,
                    # S3-compatible servers (MinIO, Ceph, moto) want path-style URLs.
                    s3={"addressing_style": "path" if self.endpoint_url else "auto"},
                )
                self._client_instance = boto3.session.Session().client("s3", endpoint_url=self.endpoint_url, config=config)
                threshold, chunksize = self._multipart
                self._transfer_config = TransferConfig(
                    multipart_threshold=threshold, multipart_chunksize=chunksize, max_concurrency=4, use_threads=True
                )
            return self._client_instance

    # finalize

    async def finalize(self, local_path: Path, key: str) -> StoredRecording:
        object_key = self.object_key(key)
        return await self._run(self._finalize, Path(local_path), key, object_key)

    def _finalize(self, local_path: Path, key: str, object_key: str) -> StoredRecording:
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError

        content_type = content_type_for(key)
        try:
            size = local_path.stat().st_size
        except FileNotFoundError:
            # A retry after an attempt that uploaded, verified and deleted.
            stored = self._head_size(object_key)
            if stored is None:
                raise RecordingNotFound(f"no local file and no stored object for recording {key}") from None
            return self._stored(key, object_key, stored, content_type)
        try:
            client = self._client()
            client.upload_file(
                str(local_path), self.bucket, object_key, ExtraArgs={"ContentType": content_type}, Config=self._transfer_config
            )
            stored = self._head_size(object_key)
        except (Boto3Error, BotoCoreError, ClientError) as exc:
            log.warning("uploading recording %s failed; the local file is kept: %s", key, exc)
            raise StorageError(f"uploading recording {key} failed: {exc}", code=UPLOAD_FAILED) from exc
        if stored != size:
            raise StorageError(f"recording {key}: stored {stored} bytes, local file has {size}", code=UPLOAD_FAILED)
        local_path.unlink(missing_ok=True)
        _remove_empty_folder(local_path.parent)
        return self._stored(key, object_key, size, content_type)

    def _stored(self, key: str, object_key: str, size: int, content_type: str) -> StoredRecording:
        return StoredRecording(key=key, size_bytes=size, content_type=content_type, backend=self.backend, location=f"s3://{self.bucket}/{object_key}")

    def _head_size(self, object_key: str) -> int | None:
        from botocore.exceptions import ClientError

        try:
            head = self._client().head_object(Bucket=self.bucket, Key=object_key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return int(head["ContentLength"])

    # playback

    async def open_range(self, key: str, start: int | None = None, end: int | None = None) -> RecordingRange:
        object_key = self.object_key(key)
        if start is not None and (start < 0 or (end is not None and end < start)):
            raise ValueError(f"invalid byte range {start}-{end}")
        if start is None and end is not None and end <= 0:
            size = await self._run(self._size_or_missing, key, object_key)
            raise RangeNotSatisfiable(size)
        body, first, last, total, partial = await self._run(self._get, key, object_key, start, end)
        chunks = self._chunks(body.read, body.close, last - first + 1)
        return RecordingRange(chunks, first, last, total, content_type_for(key), partial)

    def _size_or_missing(self, key: str, object_key: str) -> int:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            size = self._head_size(object_key)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"reading recording {key} failed: {exc}", code=READ_FAILED) from exc
        if size is None:
            raise RecordingNotFound(f"no stored object for recording {key}")
        return size

    def _get(self, key: str, object_key: str, start: int | None, end: int | None) -> tuple[Any, int, int, int, bool]:
        from botocore.exceptions import BotoCoreError, ClientError

        arguments: dict[str, Any] = {"Bucket": self.bucket, "Key": object_key}
        if start is not None or end is not None:
            arguments["Range"] = _http_range(start, end)
        try:
            response = self._client().get_object(**arguments)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            if error.get("Code") in ("NoSuchKey", "404", "NotFound"):
                raise RecordingNotFound(f"no stored object for recording {key}") from None
            if error.get("Code") == "InvalidRange":
                size = error.get("ActualObjectSize")
                raise RangeNotSatisfiable(int(size) if size is not None else self._size_or_missing(key, object_key)) from None
            raise StorageError(f"reading recording {key} failed: {exc}", code=READ_FAILED) from exc
        except BotoCoreError as exc:
            raise StorageError(f"reading recording {key} failed: {exc}", code=READ_FAILED) from exc
        content_range = response.get("ContentRange")
        if content_range:  # "bytes 0-99/1234"
            spans, total = content_range.removeprefix("bytes ").split("/")
            first, last = (int(n) for n in spans.split("-"))
            return response["Body"], first, last, int(total), True
        total = int(response["ContentLength"])
        return response["Body"], 0, total - 1, total, False

    # purge

    async def delete_prefix(self, prefix: str) -> int:
        object_prefix = self.prefix + check_prefix(prefix)
        return await self._run(self._delete_prefix, object_prefix)

    def _delete_prefix(self, object_prefix: str) -> int:
        from botocore.exceptions import BotoCoreError, ClientError

        deleted = 0
        try:
            client = self._client()
            pages = client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=object_prefix)
            for page in pages:
                objects = [{"Key": item["Key"]} for item in page.get("Contents", ())]
                if not objects:
                    continue
                result = client.delete_objects(Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True})
                if result.get("Errors"):
                    first = result["Errors"][0]
                    raise StorageError(
                        f"deleting {first.get('Key')} failed: {first.get('Code')} {first.get('Message')}", code=DELETE_FAILED
                    )
                deleted += len(objects)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"deleting recordings under {object_prefix} failed: {exc}", code=DELETE_FAILED) from exc
        return deleted


def _remove_empty_folder(folder: Path) -> None:
    """Remove a call's folder once its last file is gone.  The tenant's folder is
    kept: a recorder of another call may be creating its own folder in it."""
    try:
        folder.rmdir()
    except OSError:
        pass  # not empty (the other party's file), or already removed


# --- configuration ------------------------------------------------------------------


def store_for(settings: Settings) -> LocalStore | S3Store:
    """The process's store for these settings (one per configuration, built once)."""
    if settings.recordings_backend == "s3":
        if not settings.s3_bucket:
            raise ValueError("KEFU_RECORDINGS_BACKEND=s3 needs KEFU_S3_BUCKET")
        return _s3_store(settings.s3_bucket, settings.s3_prefix, settings.s3_endpoint_url, settings.s3_region)
    if settings.recordings_backend == "local":
        return _local_store(settings.recordings_dir)
    raise ValueError(f"unknown recordings backend {settings.recordings_backend!r}")


@functools.cache
def _local_store(root: Path) -> LocalStore:
    return LocalStore(root)


@functools.cache
def _s3_store(bucket: str, prefix: str, endpoint_url: str | None, region: str) -> S3Store:
    return S3Store(bucket=bucket, prefix=prefix, endpoint_url=endpoint_url, region=region)


async def delete_tenant_recordings(settings: Settings, tenant_id: uuid.UUID) -> int:
    """The tenant purge's hook: every stored recording of the tenant, in the configured store."""
    return await store_for(settings).delete_prefix(f"{tenant_id}/")


def install_recording_store(runtime: Runtime) -> LocalStore | S3Store:
    """Offer the store as ``runtime.components["recordings"]`` (playback in kefu.tenants)
    and hook it into the tenant purge (kefu.platform may not import kefu.webrtc)."""
    store = store_for(runtime.settings)
    runtime.components["recordings"] = store
    register_tenant_files_purger("recordings", delete_tenant_recordings)
    return store
