"""Built-in S3 storage for backups: streamed multipart uploads, listing, rotation and lifecycle rules.

Any S3-compatible server works (``S3_ENDPOINT_URL`` switches to path-style addressing, which MinIO
and SeaweedFS need). Credentials come from wherever boto3 reads them. boto3 is imported on first
use. Throttling, 5xx, connection errors and timeouts are worth retrying; a missing bucket or bad
credentials are not.
"""

from __future__ import annotations

import builtins
import datetime as dt
import threading
from typing import IO, Any

from cep_automation.errors import CepError, PermanentError, TransientError
from cep_automation.plugins.hookspecs import Register, hookimpl
from cep_automation.plugins.kinds import Storage
from cep_automation.redact import redact
from cep_automation.settings import Settings

PART_SIZE = 8 * 1024 * 1024  # S3's minimum part is 5 MiB; memory use is about one part
RULE_ID_PREFIX = "cep-expire-"
TRANSIENT_CODES = frozenset({"SlowDown", "Throttling", "ThrottlingException", "RequestThrottled", "RequestTimeout",
                             "RequestLimitExceeded", "TooManyRequestsException", "InternalError", "ServiceUnavailable",
                             "OperationAborted"})
HINTS = {
    "NoSuchBucket": "check S3_BACKUP_BUCKET",
    "AccessDenied": "check the credentials' permissions on the bucket",
    "InvalidAccessKeyId": "check AWS_ACCESS_KEY_ID",
    "SignatureDoesNotMatch": "check AWS_SECRET_ACCESS_KEY",
}


def error_code(exc: BaseException) -> str:
    """The S3 error code of a botocore ``ClientError`` (``"404"`` for a HEAD), else ``""``."""
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def s3_error(exc: Exception, what: str) -> CepError:
    """Our error for a boto3/botocore exception raised while doing ``what``."""
    from botocore import exceptions as boto

    if isinstance(exc, boto.ClientError):
        error, meta = exc.response.get("Error", {}), exc.response.get("ResponseMetadata", {})
        code, status = str(error.get("Code", "")), int(meta.get("HTTPStatusCode") or 0)
        text = redact(f"s3: {what}: {code} (HTTP {status}) {error.get('Message', '')}".rstrip())
        if code in TRANSIENT_CODES or status == 429 or status >= 500:
            retry_after = meta.get("HTTPHeaders", {}).get("retry-after")
            return TransientError(text, retry_after=float(retry_after) if str(retry_after).isdigit() else None)
        return PermanentError(f"{text}; {HINTS[code]}" if code in HINTS else text)
    if isinstance(exc, (boto.ConnectionError, boto.HTTPClientError)):
        return TransientError(redact(f"s3: {what}: {type(exc).__name__}: {exc}"))
    return PermanentError(redact(f"s3: {what}: {type(exc).__name__}: {exc}"))


class _Counting:
    """A read-only stream that counts what passes through, so upload can return bytes written."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.count = 0
        self.error: BaseException | None = None

    def read(self, size: int = -1) -> bytes:
        try:
            chunk = self.stream.read(size)
        except BaseException as exc:  # the source failed (e.g. pg_dump died): not an S3 error
            self.error = exc
            raise
        self.count += len(chunk)
        return chunk


class S3Storage(Storage):
    """One bucket of an S3-compatible object store.

    Parameters:
      settings: uses ``s3_backup_bucket`` and ``s3_endpoint_url``; credentials and region as boto3
        reads them (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``, profiles).
      part_size: bytes per multipart part, and the size from which uploads are multipart.
    Raises:
      PermanentError: missing bucket, access denied, invalid key id or signature, other 4xx.
      TransientError: throttling, 5xx, connection errors and timeouts.
    """

    name = "s3"
    required_settings = ("s3_backup_bucket",)

    def __init__(self, settings: Any, *, part_size: int = PART_SIZE) -> None:
        super().__init__(settings)
        self.part_size = part_size
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def bucket(self) -> str:
        return str(self.settings.s3_backup_bucket)

    @property
    def client(self) -> Any:
        """The boto3 client, made on first use (boto3 sessions are not thread-safe, clients are)."""
        with self._lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def _make_client(self) -> Any:
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            raise PermanentError("boto3 is not installed: pip install boto3") from None
        endpoint = self.settings.s3_endpoint_url or None
        config = Config(s3={"addressing_style": "path"} if endpoint else {}, retries={"max_attempts": 2},
                        connect_timeout=5, read_timeout=60)
        return boto3.session.Session().client("s3", endpoint_url=endpoint, config=config)

    def upload(self, key: str, stream: IO[bytes]) -> int:
        """Stream to ``key`` part by part; a failed multipart upload is aborted. Return the bytes written."""
        from boto3.s3.transfer import TransferConfig

        counting = _Counting(stream)
        # Two threads: one part uploads while the next is read, so pg_dump never waits on the network (measured:
        # a 1 GB database took 1.26x plain pg_dump | gzip with one thread); memory stays at a few parts.
        config = TransferConfig(multipart_threshold=self.part_size, multipart_chunksize=self.part_size,
                                use_threads=True, max_concurrency=2)
        try:
            self.client.upload_fileobj(counting, self.bucket, key, Config=config)
        except Exception as exc:
            if exc is counting.error:
                raise
            raise s3_error(exc, f"upload {key}") from None
        return counting.count

    def list(self, prefix: str) -> list[dict[str, Any]]:
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
            return [{"key": o["Key"], "size": o["Size"], "last_modified": o["LastModified"]}
                    for page in pages for o in page.get("Contents", [])]
        except Exception as exc:
            raise s3_error(exc, f"list {prefix}") from None

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            raise s3_error(exc, f"delete {key}") from None

    def open(self, key: str) -> IO[bytes]:
        """The object's body as a stream (read in chunks; never loaded whole)."""
        try:
            body: IO[bytes] = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            return body
        except Exception as exc:
            raise s3_error(exc, f"read {key}") from None

    def head(self, key: str) -> dict[str, Any] | None:
        """``{key, size, etag, metadata, last_modified}`` of an object, or None if it does not exist."""
        try:
            found = self.client.head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            if error_code(exc) not in ("404", "NoSuchKey"):
                raise s3_error(exc, f"head {key}") from None
            self.check_bucket()  # a HEAD answers a bare 404 for a missing bucket too
            return None
        return {"key": key, "size": found["ContentLength"], "etag": found["ETag"].strip('"'),
                "metadata": found.get("Metadata", {}), "last_modified": found["LastModified"]}

    def check_bucket(self) -> None:
        """Raise PermanentError if the bucket does not exist or is not ours to use."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            if error_code(exc) in ("404", "NoSuchBucket"):
                raise PermanentError(f"s3: bucket {self.bucket!r} does not exist; {HINTS['NoSuchBucket']}") from None
            raise s3_error(exc, f"head bucket {self.bucket}") from None

    def ensure_lifecycle(self, prefix: str, days: int) -> bool:
        """Have objects under ``prefix`` expire after ``days``; other rules are kept. True if it changed."""
        rule = {"ID": RULE_ID_PREFIX + prefix, "Filter": {"Prefix": prefix}, "Status": "Enabled",
                "Expiration": {"Days": days}}
        rules = self.lifecycle_rules()
        if rule in rules:
            return False
        rules = [r for r in rules if r.get("ID") != rule["ID"]] + [rule]
        try:
            self.client.put_bucket_lifecycle_configuration(Bucket=self.bucket,
                                                           LifecycleConfiguration={"Rules": rules})
        except Exception as exc:
            raise s3_error(exc, f"put lifecycle {prefix}") from None
        return True

    def lifecycle_rules(self) -> builtins.list[dict[str, Any]]:
        """The bucket's lifecycle rules ([] when it has none)."""
        try:
            return builtins.list(self.client.get_bucket_lifecycle_configuration(Bucket=self.bucket).get("Rules", []))
        except Exception as exc:
            if error_code(exc) == "NoSuchLifecycleConfiguration":
                return []
            raise s3_error(exc, "get lifecycle") from None

    def rotate(self, prefix: str, keep_days: int, now: dt.datetime | None = None) -> builtins.list[str]:
        """Delete objects under ``prefix`` older than ``keep_days`` (for servers that ignore lifecycle rules).

        Returns the deleted keys.
        """
        cutoff = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=keep_days)
        old = [o["key"] for o in self.list(prefix) if o["last_modified"] < cutoff]
        for key in old:
            self.delete(key)
        return old


@hookimpl(trylast=True)
def register_integrations(register: Register, settings: Settings) -> None:
    register(S3Storage(settings))
