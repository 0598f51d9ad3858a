"""The S3 integration against a real S3-compatible server (SeaweedFS ``weed mini``): streamed multipart
uploads, listing, head, delete, lifecycle rules, rotation, and error classes."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import random
import uuid

import pytest

from cep_automation.dev.embedded import free_port
from cep_automation.errors import PermanentError, TransientError
from cep_automation.plugins import s3
from cep_automation.plugins.s3 import PART_SIZE, S3Storage
from cep_automation.testing import FakeServer

MiB = 1024 * 1024


class GeneratedStream:
    """Pseudo-random bytes made as they are read (never all in memory); records the largest read."""

    def __init__(self, size: int, seed: int = 7, fail_after: int | None = None) -> None:
        self.left = size
        self.random = random.Random(seed)
        self.digest = hashlib.sha256()
        self.largest_read = 0
        self.fail_after = fail_after
        self.served = 0

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            raise AssertionError("the uploader asked for the whole stream at once")
        if self.fail_after is not None and self.served >= self.fail_after:
            raise OSError("pg_dump exited with status 1")
        self.largest_read = max(self.largest_read, size)
        chunk = self.random.randbytes(min(size, self.left))
        self.left -= len(chunk)
        self.served += len(chunk)
        self.digest.update(chunk)
        return chunk


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    return s3_server


@pytest.fixture
def bucket(s3_env):
    return s3_env.create_bucket(f"cep-test-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def storage(s3_env, bucket, settings_for):
    return S3Storage(settings_for(s3_backup_bucket=bucket, s3_endpoint_url=s3_env.url))


def test_large_stream_is_uploaded_in_parts_without_reading_it_whole(storage, s3_env, bucket):
    stream = GeneratedStream(20 * MiB)
    assert storage.upload("backups/2026-11-25/db.dump", stream) == 20 * MiB
    assert stream.largest_read <= PART_SIZE
    head = storage.head("backups/2026-11-25/db.dump")
    assert head["size"] == 20 * MiB
    assert head["etag"].endswith("-3")  # a multipart ETag names its part count: 20 MiB in 8 MiB parts
    body = s3_env.client().get_object(Bucket=bucket, Key="backups/2026-11-25/db.dump")["Body"]
    downloaded = hashlib.sha256()
    for chunk in body.iter_chunks(MiB):
        downloaded.update(chunk)
    assert downloaded.hexdigest() == stream.digest.hexdigest()


def test_small_upload_list_head_delete(storage):
    assert storage.upload("backups/a.txt", io.BytesIO(b"hello")) == 5
    storage.upload("media/b.txt", io.BytesIO(b"other"))
    (listed,) = storage.list("backups/")
    assert (listed["key"], listed["size"]) == ("backups/a.txt", 5)
    assert listed["last_modified"].tzinfo is not None
    head = storage.head("backups/a.txt")
    assert head["size"] == 5 and head["etag"] == hashlib.md5(b"hello").hexdigest()
    storage.delete("backups/a.txt")
    assert storage.head("backups/a.txt") is None
    assert storage.list("backups/") == []
    assert [o["key"] for o in storage.list("")] == ["media/b.txt"]


def test_failing_source_keeps_its_error_and_leaves_no_multipart_upload(storage, s3_env, bucket):
    with pytest.raises(OSError, match="pg_dump exited"):
        storage.upload("backups/broken.dump", GeneratedStream(20 * MiB, fail_after=12 * MiB))
    assert storage.head("backups/broken.dump") is None
    assert s3_env.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_lifecycle_rule_is_put_once_and_keeps_other_rules(storage, s3_env, bucket):
    other = {"ID": "keep-me", "Filter": {"Prefix": "tmp/"}, "Status": "Enabled", "Expiration": {"Days": 1}}
    s3_env.client().put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [other]})
    assert storage.ensure_lifecycle("backups/", 30) is True
    assert storage.ensure_lifecycle("backups/", 30) is False
    rules = {r["ID"]: r for r in s3_env.client().get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
    assert rules["cep-expire-backups/"]["Filter"] == {"Prefix": "backups/"}
    assert rules["cep-expire-backups/"]["Expiration"] == {"Days": 30}
    assert "keep-me" in rules
    assert storage.ensure_lifecycle("backups/", 7) is True
    rules = s3_env.client().get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert sorted((r["ID"], r["Expiration"]["Days"]) for r in rules) == [("cep-expire-backups/", 7), ("keep-me", 1)]


def test_lifecycle_on_a_bucket_without_rules(storage):
    assert storage.lifecycle_rules() == []
    assert storage.ensure_lifecycle("backups/", 30) is True


def test_rotate_deletes_only_old_objects_under_the_prefix(storage):
    for key in ("backups/1.dump", "backups/2.dump", "media/keep.tar"):
        storage.upload(key, io.BytesIO(b"x"))
    now = dt.datetime.now(dt.UTC)
    assert storage.rotate("backups/", 30, now=now + dt.timedelta(days=10)) == []
    assert sorted(storage.rotate("backups/", 30, now=now + dt.timedelta(days=31))) == ["backups/1.dump",
                                                                                      "backups/2.dump"]
    assert storage.list("backups/") == []
    assert [o["key"] for o in storage.list("media/")] == ["media/keep.tar"]


@pytest.mark.parametrize(("variable", "code"), [("AWS_SECRET_ACCESS_KEY", "SignatureDoesNotMatch"),
                                                ("AWS_ACCESS_KEY_ID", "InvalidAccessKeyId")])
def test_wrong_credentials_are_permanent(storage, monkeypatch, variable, code):
    monkeypatch.setenv(variable, "wrong-value-123")
    with pytest.raises(PermanentError, match=f"{code}.*check {variable}"):
        storage.list("backups/")


def test_missing_bucket_is_permanent(s3_env, settings_for):
    storage = S3Storage(settings_for(s3_backup_bucket="cep-no-such-bucket", s3_endpoint_url=s3_env.url))
    with pytest.raises(PermanentError, match="NoSuchBucket.*S3_BACKUP_BUCKET"):
        storage.upload("backups/x", io.BytesIO(b"data"))
    with pytest.raises(PermanentError, match="NoSuchBucket"):
        storage.list("")
    with pytest.raises(PermanentError, match="does not exist"):
        storage.head("backups/x")


def test_unreachable_endpoint_is_transient(s3_env, settings_for):
    storage = S3Storage(settings_for(s3_backup_bucket="any", s3_endpoint_url=f"http://127.0.0.1:{free_port()}"))
    with pytest.raises(TransientError, match="EndpointConnectionError"):
        storage.list("")


@pytest.mark.parametrize(("status", "code"), [(503, "SlowDown"), (500, "InternalError")])
def test_throttling_and_server_errors_are_transient(s3_env, settings_for, status, code):
    body = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>Please reduce your '
            f"request rate.</Message><RequestId>1</RequestId></Error>").encode()
    with FakeServer() as server:
        server.fail_next(status, body, {"Content-Type": "application/xml", "Retry-After": "3"}, times=5)
        storage = S3Storage(settings_for(s3_backup_bucket="any", s3_endpoint_url=server.url))
        with pytest.raises(TransientError, match=code) as error:
            storage.list("")
    assert error.value.retry_after == 3


def test_disabled_without_bucket(settings_for):
    storage = S3Storage(settings_for())
    assert not storage.enabled and "S3_BACKUP_BUCKET" in storage.disabled_reason()


def test_plugin_registers_the_integration(settings_for):
    registered = []
    s3.register_integrations(register=registered.append, settings=settings_for())
    assert [(i.kind, i.name) for i in registered] == [("storage", "s3")]
