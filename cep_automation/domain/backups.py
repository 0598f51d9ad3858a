"""Database and media backups as streams: ``pg_dump -Fc`` and a tar of the media folder, hashed as they pass.

Nothing is written to local disk: the dump flows from ``pg_dump``'s stdout into the multipart
upload, and is verified afterwards by streaming the stored object back into ``pg_restore --list``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tarfile
import threading
from pathlib import Path
from typing import IO, Any, Protocol

import psycopg

from cep_automation.errors import PermanentError, TransientError

CHUNK = 1024 * 1024


class ByteStream(Protocol):
    """Anything read in chunks: a file or pipe opened in binary mode, or a :class:`HashingReader`."""

    def read(self, n: int = -1, /) -> bytes: ...


def _pipe(stream: IO[bytes] | None) -> IO[bytes]:
    """A pipe of a process started with ``subprocess.PIPE`` for it (so never None)."""
    if stream is None:
        raise RuntimeError("the process was started without this pipe")
    return stream


class HashingReader:
    """A read-only stream that counts and SHA-256s what is read through it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.size = 0
        self._sha = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.size += len(data)
        self._sha.update(data)
        return data

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()


def server_major(database_url: str) -> int:
    with psycopg.connect(database_url, connect_timeout=10) as conn:
        row = conn.execute("SHOW server_version_num").fetchone()
        assert row is not None  # SHOW always returns a row
        return int(row[0]) // 10000


def tool_version(path: str) -> int | None:
    out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30).stdout
    match = re.search(r"(\d+)(?:\.\d+)?", out)
    return int(match.group(1)) if match else None


def find_pg_tool(name: str, major: int, bin_dir: str | None) -> str:
    """The ``pg_dump``/``pg_restore`` whose major version matches the server's (older ones refuse newer servers)."""
    candidates = [os.path.join(bin_dir, name)] if bin_dir else []
    candidates += [f"/usr/lib/postgresql/{major}/bin/{name}", shutil.which(name) or ""]
    for path in filter(None, candidates):
        if os.access(path, os.X_OK) and tool_version(path) == major:
            return path
    raise PermanentError(f"no {name} for PostgreSQL {major} found; install postgresql-client-{major} "
                         f"or set CEP_PG_BIN_DIR to the folder holding it")


class DumpProcess:
    """``pg_dump -Fc`` of a database, readable as a stream; :meth:`finish` raises if it failed."""

    def __init__(self, pg_dump: str, database_url: str) -> None:
        self.process = subprocess.Popen([pg_dump, "--format=custom", "--no-owner", "--dbname", database_url],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.stream = HashingReader(_pipe(self.process.stdout))
        self._stderr = b""
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()

    def _read_stderr(self) -> None:
        self._stderr = _pipe(self.process.stderr).read()

    def finish(self) -> None:
        code = self.process.wait(timeout=600)
        self._reader.join(timeout=10)
        if code != 0:
            message = self._stderr.decode(errors="replace").strip().splitlines()
            raise TransientError(f"pg_dump exited with code {code}: {message[-1] if message else 'no message'}")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _drain(pipe: IO[bytes], into: dict[str, bytes], name: str) -> threading.Thread:
    thread = threading.Thread(target=lambda: into.__setitem__(name, pipe.read()), daemon=True)
    thread.start()
    return thread


def verify_dump(pg_restore: str, stream: ByteStream) -> int:
    """Feed a stored dump to ``pg_restore --list``; return its number of entries, or raise if unreadable.

    ``pg_restore --list`` exits once it has read the table of contents at the start of the dump; the rest of
    the stream is still read to its end (and so hashed by a :class:`HashingReader`), or the size and hash
    check that follows would compare the sent dump with its first megabyte.
    """
    proc = subprocess.Popen([pg_restore, "--list"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    out: dict[str, bytes] = {}
    readers = [_drain(_pipe(proc.stdout), out, "stdout"), _drain(_pipe(proc.stderr), out, "stderr")]
    stdin = _pipe(proc.stdin)
    try:
        while chunk := stream.read(CHUNK):
            stdin.write(chunk)
        stdin.close()
    except BrokenPipeError:
        while stream.read(CHUNK):  # pg_restore has what it needs (or gave up: its exit code says so)
            pass
    code = proc.wait(timeout=300)
    for reader in readers:
        reader.join(timeout=30)
    if code != 0:
        raise PermanentError(f"backup is not a readable dump: {out.get('stderr', b'').decode(errors='replace')[:300]}")
    return sum(1 for line in out.get("stdout", b"").decode().splitlines() if line and not line.startswith(";"))


def media_tar(folder: Path) -> tuple[IO[bytes], threading.Thread, dict[str, Any]]:
    """A gzipped tar of ``folder`` produced by a thread into a pipe; the dict gets ``error`` if it fails."""
    read_fd, write_fd = os.pipe()
    state: dict[str, Any] = {}

    def produce() -> None:
        try:
            with os.fdopen(write_fd, "wb") as sink, tarfile.open(fileobj=sink, mode="w|gz") as tar:
                tar.add(str(folder), arcname=folder.name)
        except Exception as exc:  # reported by the caller after the upload
            state["error"] = exc

    thread = threading.Thread(target=produce, name="media-tar", daemon=True)
    thread.start()
    return os.fdopen(read_fd, "rb"), thread, state
