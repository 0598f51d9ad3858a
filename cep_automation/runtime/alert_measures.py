"""The measures of the alert thresholds (:mod:`cep_automation.ops.thresholds`), read from Redis and PostgreSQL.

Each ``kind`` of threshold is measured here as the Prometheus rules measure it, from what this package
stores instead of from scraped series: ``queue_depth`` from the broker's queue lists; ``wait_p95`` as the age
of the oldest waiting message (a message that has waited past the limit is a wait past the limit, seen before
it even starts); ``error_rate`` and ``new_dead_letters`` per queue from ``audit_log`` and ``dead_letters``;
``pool_down`` as workers that stopped sending heartbeats; ``backup_missing`` from ``backups``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cep_automation.db import connection
from cep_automation.ops.thresholds import Threshold
from cep_automation.records import alert_state, broker_state
from cep_automation.settings import get_settings


@dataclass(frozen=True)
class Reading:
    """One measure of one threshold (per queue when the threshold watches every queue)."""

    threshold: Threshold
    value: float
    queue: str | None = None
    detail: str = ""

    @property
    def rule(self) -> str:
        """The rule's name in the firing state: the alert, and its queue when it has one."""
        queue = self.threshold.queue or self.queue
        return f"{self.threshold.alert}:{queue}" if queue else self.threshold.alert

    @property
    def firing(self) -> bool:
        return self.value > self.threshold.limit


class Measures:
    """Reads each kind of threshold once per check (several thresholds share a read)."""

    def __init__(self, now: float | None = None) -> None:
        self.now = now if now is not None else time.time()
        self._cache: dict[Any, Any] = {}

    def _once(self, name: Any, read: Callable[[], Any]) -> Any:
        if name not in self._cache:
            self._cache[name] = read()
        return self._cache[name]

    def read(self, threshold: Threshold) -> list[Reading]:
        measure: Callable[[Threshold], list[Reading]] = getattr(self, threshold.kind)
        return measure(threshold)

    def queue_depth(self, t: Threshold) -> list[Reading]:
        depths = self._once("depth", broker_state.waiting_and_delayed)
        return [Reading(t, depths.get((q, "waiting"), 0), q) for q in self._queues(t)]

    def wait_p95(self, t: Threshold) -> list[Reading]:
        ages = self._once("ages", lambda: broker_state.oldest_waiting_s(broker_state.queue_names(),
                                                                        int(self.now * 1000)))
        return [Reading(t, round(ages.get(q, 0.0), 1), q, "oldest waiting message, seconds") for q in self._queues(t)]

    def error_rate(self, t: Threshold) -> list[Reading]:
        counts = self._once(("errors", t.window_s), lambda: _attempts(t.window_s, self.now))
        return [Reading(t, round(failed / total, 3), q, f"{failed} of {total} attempts failed")
                for q, (failed, total) in sorted(counts.items()) if total and (t.queue in (None, q))]

    def new_dead_letters(self, t: Threshold) -> list[Reading]:
        counts = self._once(("dead", t.window_s), lambda: _dead_letters(t.window_s, self.now))
        return [Reading(t, n, q) for q, n in sorted(counts.items()) if t.queue in (None, q)]

    def pool_down(self, t: Threshold) -> list[Reading]:
        stalled = self._once("stalled", lambda: stalled_workers(self.now))
        return [Reading(t, len(stalled), None, ", ".join(sorted(stalled)))]

    def backup_missing(self, t: Threshold) -> list[Reading]:
        last = self._once("backup", _last_backup)
        age_s = self.now - last if last is not None else float("inf")
        missing = 1 if age_s > t.window_s else 0
        return [Reading(t, missing, None, "no backup ever" if last is None else f"last one {age_s / 3600:.1f} h ago")]

    @staticmethod
    def _queues(t: Threshold) -> list[str]:
        return [t.queue] if t.queue else broker_state.queue_names()


def _attempts(window_s: int, now: float) -> dict[str, tuple[int, int]]:
    """Queue → (failed attempts, attempts) over the window, from the audit log."""
    with connection() as conn:
        rows = conn.execute(
            "SELECT queue, count(*) FILTER (WHERE status IN ('retried', 'dead')) AS failed, count(*) AS total"
            " FROM audit_log WHERE created_at > to_timestamp(%s) - make_interval(secs => %s)"
            " AND status IN ('completed', 'retried', 'dead') AND queue IS NOT NULL GROUP BY queue", (now, window_s))
        return {row["queue"]: (row["failed"], row["total"]) for row in rows}


def _dead_letters(window_s: int, now: float) -> dict[str, int]:
    """Queue → messages dead-lettered over the window."""
    with connection() as conn:
        rows = conn.execute("SELECT queue, count(*) AS n FROM dead_letters"
                            " WHERE failed_at > to_timestamp(%s) - make_interval(secs => %s) GROUP BY queue",
                            (now, window_s))
        return {row["queue"]: row["n"] for row in rows}


def _last_backup() -> float | None:
    """When the last verified database backup was made (Unix time), or None."""
    with connection() as conn:
        row = conn.execute("SELECT max(created_at) AS last FROM backups"
                           " WHERE kind = 'database' AND verified").fetchone()
    return row["last"].timestamp() if row and row["last"] else None


def stalled_workers(now: float) -> list[str]:
    """Workers seen alive by an earlier check that stopped noting themselves, and that no new worker replaced.

    Each worker process notes itself alive every few seconds (its requeue sweep); alive is a note within
    ``CEP_HEARTBEAT_TIMEOUT_MS``. A worker that appears replaces one that stopped (a restart gives new ids),
    so a restart clears the alert; a worker stopped for good is forgotten after a day.
    """
    now_ms, timeout = now * 1000, get_settings().cep_heartbeat_timeout_ms
    notes = broker_state.worker_notes()
    alive = {w: seen for w, seen in notes.items() if seen >= now_ms - timeout}
    known = alert_state.remembered_workers()
    gone = sorted((seen, w) for w, seen in known.items() if w not in alive)
    newcomers = [w for w in alive if w not in known]
    replaced = [w for _, w in gone[:len(newcomers)]] if known else []
    expired = [w for seen, w in gone if seen < now_ms - alert_state.FORGET_WORKERS_AFTER_MS]
    alert_state.remember_workers(alive, replaced + expired)
    broker_state.forget_workers([w for w, seen in notes.items() if seen < now_ms - alert_state.FORGET_WORKERS_AFTER_MS])
    return [w for _, w in gone if w not in replaced and w not in expired]
