"""``backup.daily``: ``pg_dump`` and the media folder, streamed to S3, verified, rotated; one at a time.

A run holds a Redis lock so that several backup workers never dump at once; a second run meanwhile
is retried later. Any failure sends a critical alert.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Literal, Protocol, cast

from pydantic import BaseModel

from cep_automation.db import connection
from cep_automation.db.redis_client import get_redis, key
from cep_automation.domain import backups
from cep_automation.errors import BackupBusy, PermanentError, TransientError
from cep_automation.plugins.kinds import Storage
from cep_automation.queues import policy
from cep_automation.runtime import integrations
from cep_automation.runtime.actor import job
from cep_automation.runtime.job import JobHandle, current_job
from cep_automation.settings import get_settings

logger = logging.getLogger("cep_automation.actors.backup")


class BackupPayload(BaseModel):
    """Only full dumps exist; ``media`` adds the media folder when CEP_MEDIA_DIR is set."""

    type: Literal["full"] = "full"
    media: bool = True


class BackupStorage(Protocol):
    """What a backup uses of its :class:`Storage`: the streaming upload and read-back, plus retention.

    ``ensure_lifecycle`` and ``rotate`` are not part of the ``Storage`` kind; the S3 plugin (the only storage)
    has them.
    """

    def upload(self, key: str, stream: backups.ByteStream) -> int: ...

    def open(self, key: str) -> IO[bytes]: ...

    def delete(self, key: str) -> None: ...

    def ensure_lifecycle(self, prefix: str, days: int) -> bool: ...

    def rotate(self, prefix: str, keep_days: int, now: dt.datetime | None = None) -> list[str]: ...


def storage() -> Storage:
    return integrations.require(Storage, doing="store backups")


def record(kind: str, object_key: str, size: int, sha256: str, verified: bool, detail: str) -> None:
    with connection() as conn:
        conn.execute("INSERT INTO backups (kind, object_key, size_bytes, sha256, verified, detail)"
                     " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (object_key) DO UPDATE SET size_bytes ="
                     " EXCLUDED.size_bytes, sha256 = EXCLUDED.sha256, verified = EXCLUDED.verified,"
                     " detail = EXCLUDED.detail, created_at = now()",
                     (kind, object_key, size, sha256, verified, detail))


def dump_database(store: BackupStorage, object_key: str, handle: JobHandle) -> dict[str, Any]:
    """Stream ``pg_dump -Fc`` into the upload, then read it back through ``pg_restore --list``."""
    settings = get_settings()
    major = backups.server_major(settings.database_url)
    pg_restore = backups.find_pg_tool("pg_restore", major, settings.cep_pg_bin_dir)
    dump = backups.DumpProcess(backups.find_pg_tool("pg_dump", major, settings.cep_pg_bin_dir), settings.database_url)
    with removed_on_failure(store, object_key):
        try:
            store.upload(object_key, dump.stream)
            dump.finish()
        finally:
            dump.kill()
        handle.progress(60)
        stored = backups.HashingReader(store.open(object_key))
        entries = backups.verify_dump(pg_restore, stored)
        if (stored.size, stored.sha256) != (dump.stream.size, dump.stream.sha256):
            raise TransientError(f"stored dump differs from what was sent ({stored.size} vs {dump.stream.size}"
                                 " bytes)")
    record("database", object_key, dump.stream.size, dump.stream.sha256, True, f"{entries} entries")
    handle.log(f"database dump {object_key}: {dump.stream.size} bytes, sha256 {dump.stream.sha256[:12]}…, "
               f"{entries} entries verified")
    return {"key": object_key, "size": dump.stream.size, "sha256": dump.stream.sha256, "entries": entries}


def archive_media(store: BackupStorage, folder: Path, object_key: str, handle: JobHandle) -> dict[str, Any]:
    if not folder.is_dir():
        raise PermanentError(f"CEP_MEDIA_DIR {folder} is not a folder")
    raw, thread, state = backups.media_tar(folder)
    stream = backups.HashingReader(raw)
    with removed_on_failure(store, object_key):
        store.upload(object_key, stream)
        thread.join(timeout=600)
        if "error" in state:
            raise TransientError(f"media archive failed: {state['error']}")
    record("media", object_key, stream.size, stream.sha256, True, f"tar.gz of {folder}")
    handle.log(f"media archive {object_key}: {stream.size} bytes")
    return {"key": object_key, "size": stream.size, "sha256": stream.sha256}


@contextlib.contextmanager
def removed_on_failure(store: BackupStorage, object_key: str) -> Iterator[None]:
    """Delete ``object_key`` if the block fails: a failed attempt leaves no orphan object (with no ``backups``
    row) in the bucket. The delete is best effort; the bucket's lifecycle rule expires what it misses."""
    try:
        yield
    except BaseException:
        try:
            store.delete(object_key)
        except Exception as exc:
            logger.warning("Could not remove %s after a failed backup (%s); the lifecycle rule will", object_key,
                           type(exc).__name__)
        raise


class BackupLock:
    """One backup at a time across every worker: a Redis lock held for at most the job's time limit."""

    def __init__(self, owner: str) -> None:
        self.owner, self.name = owner, key("lock", "backup.daily")

    def __enter__(self) -> BackupLock:
        ttl = policy("backup.daily").time_limit_s
        holder = get_redis().set(self.name, self.owner, nx=True, ex=ttl)
        if not holder:
            raise BackupBusy("another backup is running; retrying later", retry_after=300)
        return self

    def __exit__(self, *exc: object) -> None:
        if get_redis().get(self.name) == self.owner.encode():
            get_redis().delete(self.name)


def run_backup(payload: BackupPayload, handle: JobHandle) -> dict[str, Any]:
    settings = get_settings()
    store = cast(BackupStorage, storage())  # S3Storage, the one storage plugin, provides the retention methods
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H%M%SZ")
    prefix = settings.backup_prefix
    # The lifecycle rule first: on a new bucket, whatever a failed attempt could not remove still expires.
    store.ensure_lifecycle(prefix, settings.backup_retention_days)
    handle.progress(10)
    result: dict[str, Any] = {"database": dump_database(store, f"{prefix}cep_{stamp}.dump", handle)}
    handle.progress(75)
    if payload.media and settings.cep_media_dir:
        result["media"] = archive_media(store, Path(settings.cep_media_dir), f"{prefix}media_{stamp}.tar.gz", handle)
    handle.progress(85)
    result["rotated"] = store.rotate(prefix, settings.backup_retention_days, dt.datetime.now(dt.UTC))
    handle.progress(100)
    return result


@job("backup.daily", schema=BackupPayload)
def backup_daily(type: str = "full", media: bool = True) -> dict[str, Any]:  # noqa: A002 - the seed's name
    """Back up the database (and media), verify, rotate; alert on failure."""
    handle = current_job()
    try:
        with BackupLock(handle.message_id or "direct-call"):
            result = run_backup(BackupPayload.model_validate({"type": type, "media": media}), handle)
    except BackupBusy:
        raise
    except Exception as exc:
        from cep_automation.runtime.alerts import send_alert

        send_alert(integrations.registry(), "critical", "Backup failed", f"{exc.__class__.__name__}: {exc}")
        raise
    logger.info("Backup done: %s", {k: v for k, v in result.items() if k != "rotated"})
    return result
