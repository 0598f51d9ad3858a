"""backup.daily with the real pg_dump/pg_restore and a real S3-compatible server (SeaweedFS)."""

from __future__ import annotations

import hashlib
import subprocess
import threading
import uuid

import pytest

from cep_automation.actors import backup_daily
from cep_automation.actors.backup import BackupLock
from cep_automation.domain import backups
from cep_automation.errors import BackupBusy, PermanentError
from cep_automation.runtime.integrations import reset_registry
from cep_automation.settings import get_settings


@pytest.fixture
def backup_env(monkeypatch, s3_server, sandbox, tmp_path):
    """Storage on the S3 server, alerts to the sandbox's Slack, a media folder with two files."""
    bucket = s3_server.create_bucket(f"backups-{uuid.uuid4().hex[:8]}")
    media = tmp_path / "media"
    (media / "cursos").mkdir(parents=True)
    (media / "cursos" / "excel.pdf").write_bytes(b"%PDF-1.4 " + b"x" * 50_000)
    (media / "logo.png").write_bytes(b"\x89PNG" + bytes(range(256)) * 100)
    for name, value in {**s3_server.env(), "S3_BACKUP_BUCKET": bucket, "CEP_MEDIA_DIR": str(media)}.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    reset_registry()
    yield s3_server, bucket
    reset_registry()


def stored(s3_server, bucket):
    listing = s3_server.client().list_objects_v2(Bucket=bucket).get("Contents", [])
    return {item["Key"]: item["Size"] for item in listing}


def test_backup_uploads_verifies_and_records(db, backup_env, redis_client):
    s3_server, bucket = backup_env
    db.execute("INSERT INTO campuses (name) VALUES ('Málaga')")
    result = backup_daily()
    keys = stored(s3_server, bucket)
    dump_key, media_key = result["database"]["key"], result["media"]["key"]
    assert set(keys) == {dump_key, media_key} and dump_key.startswith("backups/cep_")
    assert keys[dump_key] == result["database"]["size"] > 0
    assert result["database"]["entries"] > 10  # pg_restore --list read the stored dump
    body = s3_server.client().get_object(Bucket=bucket, Key=dump_key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == result["database"]["sha256"]
    rows = db.execute("SELECT kind, object_key, size_bytes, sha256, verified FROM backups ORDER BY kind").fetchall()
    assert [(r["kind"], r["verified"]) for r in rows] == [("database", True), ("media", True)]
    rules = s3_server.client().get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert any(r["Expiration"]["Days"] == 30 for r in rules)


def test_the_dump_restores(db, backup_env, redis_client, cep_services, tmp_path):
    s3_server, bucket = backup_env
    db.execute("INSERT INTO campuses (name, advisor_phone) VALUES ('Granada', '+34699000009')")
    result = backup_daily(media=False)
    dump = tmp_path / "restore.dump"
    dump.write_bytes(s3_server.client().get_object(Bucket=bucket, Key=result["database"]["key"])["Body"].read())
    major = backups.server_major(cep_services.database_url)
    listing = subprocess.run([backups.find_pg_tool("pg_restore", major, None), "--list", str(dump)],
                             capture_output=True, text=True, check=True).stdout
    assert "TABLE DATA public campuses" in listing


def test_media_tar_contains_the_files(db, backup_env, redis_client):
    import io
    import tarfile

    s3_server, bucket = backup_env
    result = backup_daily()
    body = s3_server.client().get_object(Bucket=bucket, Key=result["media"]["key"])["Body"].read()
    names = tarfile.open(fileobj=io.BytesIO(body), mode="r:gz").getnames()
    assert "media/cursos/excel.pdf" in names and "media/logo.png" in names


def test_old_backups_are_rotated(db, backup_env, redis_client, monkeypatch):
    s3_server, bucket = backup_env
    import datetime as dt

    from cep_automation.plugins.kinds import Storage
    from cep_automation.runtime.integrations import enabled

    first = backup_daily(media=False)["database"]["key"]
    # Given a retention of 30 days and "now" 31 days later, the first dump is rotated out
    store = enabled(Storage)[0]
    deleted = store.rotate("backups/", 30, dt.datetime.now(dt.UTC) + dt.timedelta(days=31))
    assert first in deleted and first not in stored(s3_server, bucket)


def test_failure_sends_a_critical_alert_and_leaves_nothing(db, backup_env, sandbox, redis_client, monkeypatch):
    s3_server, _ = backup_env
    monkeypatch.setenv("S3_BACKUP_BUCKET", "no-such-bucket")
    get_settings.cache_clear()
    reset_registry()
    with pytest.raises(PermanentError):
        backup_daily(media=False)
    assert any("CRITICAL" in m["text"] and "Backup failed" in m["text"] for m in sandbox.slack.messages)
    assert db.execute("SELECT count(*) AS n FROM backups").fetchone()["n"] == 0


def test_one_backup_at_a_time(db, backup_env, redis_client):
    with BackupLock("someone-else"):
        with pytest.raises(BackupBusy):
            backup_daily(media=False)
    assert backup_daily(media=False)["database"]["size"] > 0  # the lock was released


def test_pg_dump_of_the_wrong_major_version_is_refused(cep_services):
    major = backups.server_major(cep_services.database_url)
    with pytest.raises(PermanentError, match=f"no pg_dump for PostgreSQL {major + 10}"):
        backups.find_pg_tool("pg_dump", major + 10, None)


def test_a_corrupt_dump_is_detected(cep_services):
    import io

    major = backups.server_major(cep_services.database_url)
    with pytest.raises(PermanentError, match="not a readable dump"):
        backups.verify_dump(backups.find_pg_tool("pg_restore", major, None), io.BytesIO(b"PGDMP" + b"\0" * 4096))


def test_hashing_reader_counts_what_passes():
    import io

    reader = backups.HashingReader(io.BytesIO(b"abc" * 1000))
    while reader.read(7):
        pass
    assert reader.size == 3000 and reader.sha256 == hashlib.sha256(b"abc" * 1000).hexdigest()


def test_media_tar_is_streamed_through_a_pipe(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.txt").write_text("hola")
    raw, thread, state = backups.media_tar(tmp_path / "m")
    data = raw.read()
    thread.join()
    assert data[:2] == b"\x1f\x8b" and "error" not in state
    assert isinstance(thread, threading.Thread)


@pytest.fixture
def bulk_table(db):
    """About 60 MB of rows that compress about 2:1, so the dump is far larger than a pipe's buffer."""
    db.execute("CREATE TABLE bulk_for_backup (id int PRIMARY KEY, body text)")
    db.execute("INSERT INTO bulk_for_backup SELECT g, (SELECT string_agg(md5(random()::text || g || i), '')"
               " FROM generate_series(1, 16) AS i) FROM generate_series(1, 120000) AS g")
    yield
    db.execute("DROP TABLE bulk_for_backup")


def test_a_dump_far_larger_than_a_pipe_buffer_is_stored_whole_and_verified(db, backup_env, redis_client,
                                                                          bulk_table):
    s3_server, bucket = backup_env
    # When the database dumps to tens of megabytes (pg_restore --list stops reading after the table of contents)
    result = backup_daily(media=False)
    # Then the whole dump is stored, read back whole, hashed and recorded as verified
    database = result["database"]
    assert database["size"] > 20 * 1024 * 1024
    assert stored(s3_server, bucket)[database["key"]] == database["size"]
    row = db.execute("SELECT size_bytes, sha256, verified FROM backups WHERE object_key = %s",
                     (database["key"],)).fetchone()
    assert (row["size_bytes"], row["sha256"], row["verified"]) == (database["size"], database["sha256"], True)


def test_a_failed_verification_leaves_no_object_behind(db, backup_env, redis_client, cep_services, tmp_path,
                                                       monkeypatch):
    s3_server, bucket = backup_env
    # Given a pg_restore that cannot read the dump (the real pg_dump, a pg_restore that fails as a broken one does)
    major = backups.server_major(cep_services.database_url)
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "pg_dump").symlink_to(backups.find_pg_tool("pg_dump", major, None))
    broken = tools / "pg_restore"
    broken.write_text(f"#!/bin/sh\n[ \"$1\" = --version ] && echo 'pg_restore (PostgreSQL) {major}.0' && exit 0\n"
                      "cat > /dev/null; echo 'pg_restore: error: could not read input file' >&2; exit 1\n")
    broken.chmod(0o755)
    monkeypatch.setenv("CEP_PG_BIN_DIR", str(tools))
    get_settings.cache_clear()
    # When a backup runs and fails its verification
    with pytest.raises(PermanentError, match="not a readable dump"):
        backup_daily(media=False)
    # Then no orphan dump stays in the bucket, and no backup is recorded
    assert not [k for k in stored(s3_server, bucket) if k.endswith(".dump")]
    assert db.execute("SELECT count(*) AS n FROM backups").fetchone()["n"] == 0
