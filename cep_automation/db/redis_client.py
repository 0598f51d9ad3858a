"""One Redis client per process for our own state (job status, schedule ticks, counters)."""

from __future__ import annotations

import os
import threading
from typing import Any

import redis
from redis.commands.core import Script

from cep_automation.db.sentinel import redis_from_url
from cep_automation.errors import ServiceUnavailable
from cep_automation.settings import get_settings

_lock = threading.Lock()
_client: redis.Redis | None = None
_client_pid: int | None = None


def get_redis() -> redis.Redis:
    """The process's client (recreated after a fork); connects lazily on first command."""
    global _client, _client_pid
    client = _client
    if client is not None and _client_pid == _pid:  # every message asks, from many threads: no lock, no syscall
        return client
    with _lock:
        if _client is None or _client_pid != os.getpid():
            _client = redis_from_url(
                get_settings().redis_url, socket_connect_timeout=5, socket_timeout=30, health_check_interval=30
            )
            _client_pid = os.getpid()
        return _client


_pid = os.getpid()  # this process's id, kept current by the fork hook below (os.getpid() is a system call)


def _after_fork() -> None:
    global _pid, _lock
    _pid, _lock = os.getpid(), threading.Lock()


os.register_at_fork(after_in_child=_after_fork)

_scripts: dict[tuple[int, str], Script] = {}


def lua(source: str, client: redis.Redis | None = None) -> Script:
    """The Lua script ``source`` bound to ``client`` (the process's by default), made once: redis-py's
    ``register_script`` hashes the source every time, and these run for every message."""
    client = client if client is not None else get_redis()
    found = _scripts.get((id(client), source))
    if found is None or found.registered_client is not client:
        found = _scripts[(id(client), source)] = client.register_script(source)
    return found


def evalsha(pipe: Any, script: Script, keys: list[Any], args: list[Any]) -> None:
    """Queue ``script`` on ``pipe`` by its hash, without redis-py's SCRIPT EXISTS before every execute (a round
    trip per pipeline); run the pipeline with :func:`execute_loading`, which loads the scripts only if Redis
    lacks them (after a restart)."""
    pipe.evalsha(script.sha, len(keys), *keys, *args)
    pipe.__dict__.setdefault("_cep_scripts", set()).add(script)


def execute_loading(client: redis.Redis, build: Any) -> list[Any]:
    """Build a pipeline with ``build(pipe)`` and execute it; if Redis did not know a script, load the scripts and
    run the whole pipeline once more (the commands must bear repeating). Replies are returned, errors included."""
    for attempt in (1, 2):
        pipe = client.pipeline(transaction=False)
        build(pipe)
        scripts: set[Script] = pipe.__dict__.get("_cep_scripts", set())
        replies: list[Any] = pipe.execute(raise_on_error=False)
        if attempt == 2 or not any(isinstance(r, redis.exceptions.NoScriptError) for r in replies):
            return replies
        for script in scripts:
            client.script_load(script.script)
    raise AssertionError("unreachable")


def reset_redis() -> None:
    """Forget the client (tests that change REDIS_URL)."""
    global _client
    with _lock:
        _client = None


def as_text(reply: bytes | str) -> str:
    """A reply as text. Our client returns bytes (no ``decode_responses``); redis-py's types allow either."""
    return reply.decode() if isinstance(reply, bytes) else reply


def key(*parts: str) -> str:
    """A namespaced key, e.g. ``cep:job:<id>``."""
    return ":".join((get_settings().cep_namespace, *parts))


def check_redis(url: str | None = None) -> None:
    """Raise :class:`ServiceUnavailable` unless Redis answers PING."""
    url = url or get_settings().redis_url
    try:
        redis_from_url(url, socket_connect_timeout=3, socket_timeout=3).ping()
    except redis.RedisError as exc:
        raise ServiceUnavailable(f"Redis is unreachable at {_public(url)}: {exc}") from None


def _public(url: str) -> str:
    """The URL without a password."""
    if "@" in url:
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest.rpartition('@')[2]}"
    return url


class _Slot:
    __slots__ = ("done", "error", "op")

    def __init__(self, op: Any) -> None:
        self.op, self.done = op, False
        self.error: Exception | None = None


class GroupCommit:
    """Writes that must be in Redis before their caller goes on, sent together: one round trip for every
    caller that asked while the previous round trip was on the wire (a database's group commit).

    :meth:`write` blocks until the caller's operation has been executed. The first caller to find no round trip
    under way sends it, with whatever others queued meanwhile; nobody waits for company when alone.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pending: list[_Slot] = []
        self._sending = False
        self.round_trips = 0  # since start: how well writes group (round trips vs. writes)

    def write(self, op: Any) -> None:
        """Execute ``op(pipe)`` in a pipeline; raises what Redis raised for it (a lost connection, a refusal)."""
        slot = _Slot(op)
        with self._cond:
            self._pending.append(slot)
            while not slot.done and self._sending:
                self._cond.wait()
            if not slot.done:
                self._sending, batch, self._pending = True, self._pending, []
        if not slot.done:
            self._send(batch)
        if slot.error is not None:
            raise slot.error

    def _send(self, batch: list[_Slot]) -> None:
        try:
            pipe = get_redis().pipeline(transaction=False)
            sizes = []
            for each in batch:
                before = len(pipe)
                each.op(pipe)
                sizes.append(len(pipe) - before)
            self.round_trips += 1
            replies = iter(pipe.execute(raise_on_error=False))
            for each, size in zip(batch, sizes, strict=True):
                errors = [r for r in (next(replies) for _ in range(size)) if isinstance(r, Exception)]
                each.error = errors[0] if errors else None
        except Exception as exc:  # nothing was confirmed: every caller of the batch sees the error
            for each in batch:
                each.error = exc
        with self._cond:
            for each in batch:
                each.done = True
            self._sending = False
            self._cond.notify_all()
