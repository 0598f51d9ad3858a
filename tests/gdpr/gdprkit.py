"""Helpers of the GDPR tests: the seeded person's identifiers, and dumps of every store to search them in."""

from __future__ import annotations

import subprocess

EMAIL, PHONE, NAME, SURNAME = "Ana.Zubiaurre@Example.com", "+34 611 22 33 44", "Ana Zubiaurre", "Zubiaurre"


def pg_dump_text(pg_tools, database_url: str) -> str:
    """A full plain-SQL dump of the database (schema and every row)."""
    return subprocess.run([pg_tools["pg_dump"], "--no-owner", "--dbname", database_url], capture_output=True,
                          text=True, check=True, timeout=300).stdout


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, dict):
        return " ".join(f"{_text(k)}={_text(v)}" for k, v in value.items())
    if isinstance(value, (list, set, tuple)):
        return " ".join(_text(v) for v in value)
    return str(value)


def redis_dump(client, namespace: str) -> str:
    """Every key of the namespace and its whole value, as text."""
    readers = {"string": client.get, "hash": client.hgetall, "list": lambda n: client.lrange(n, 0, -1),
               "set": client.smembers, "zset": lambda n: client.zrange(n, 0, -1)}
    return "\n".join(f"{_text(name)} {_text(readers[client.type(name).decode()](name))}"
                     for name in client.scan_iter(match=f"{namespace}:*"))


def run_all(stub_broker, stub_worker, *queues):
    for queue in queues or ("leads",):
        stub_broker.join(queue, fail_fast=False)
    stub_worker.join()
