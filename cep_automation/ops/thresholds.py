"""The alert thresholds, as data: one place for the Prometheus rules file and for alerting in Python.

``contrib/deploy/prometheus/cep.rules.yml`` is generated from this table
(``python -m cep_automation.ops.prometheus_rules``); a test checks that the committed file matches.
Each :class:`Threshold` names *what* it measures (``kind``) and its parameters, not a PromQL string,
so a Python evaluator (the alerting issue) computes the same condition from Redis and PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

# kind → what firing means, a template of the threshold's fields (``limit``, ``window``: e.g. "15m").
KINDS = {
    "queue_depth": "more than {limit:g} messages waiting",
    "wait_p95": "95th percentile wait from enqueue to first start above {limit:g} s over 5m",
    "error_rate": "more than {limit:.0%} of attempts failed over {window}",
    "new_dead_letters": "more than {limit:g} messages dead-lettered over {window}",
    "pool_down": "a pool's /metrics did not answer Prometheus",
    "backup_missing": "no backup.daily completed over {window}",
}
SEVERITIES = ("warning", "critical")


@dataclass(frozen=True)
class Threshold:
    """One alert condition.

    Parameters:
      alert: the alert's name (Prometheus ``alert:``); several thresholds may share one, per queue.
      kind: what is measured, a key of :data:`KINDS`.
      limit: the measure's limit (a count, seconds or a ratio; unused by ``pool_down`` and
        ``backup_missing``).
      severity: ``warning`` or ``critical``.
      queue: the queue it watches (None: every queue, or not about a queue).
      window_s: the window of rates and counts (error rate, dead letters, backups).
      for_s: how long the condition must hold before it fires.
    """

    alert: str
    kind: str
    limit: float
    severity: str
    queue: str | None = None
    window_s: int = 300
    for_s: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown threshold kind {self.kind!r}; one of {', '.join(KINDS)}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}; one of {', '.join(SEVERITIES)}")

    @property
    def window(self) -> str:
        """``window_s`` as Prometheus writes a duration (``15m``, ``26h``)."""
        return duration(self.window_s)

    def describe(self) -> str:
        """What firing means, e.g. "more than 200 messages waiting in queue leads"."""
        where = f" in queue {self.queue}" if self.queue else ""
        return KINDS[self.kind].format(limit=self.limit, window=self.window) + where


def duration(seconds: int) -> str:
    """Seconds as a Prometheus duration: ``26h``, ``15m`` or ``45s``."""
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"


THRESHOLDS: tuple[Threshold, ...] = (
    # A lead should be answered within minutes: its queue alerts early; the batch queues have room.
    Threshold("QueueDepthHigh", "queue_depth", 200, "warning", queue="leads", for_s=300),
    Threshold("QueueDepthHigh", "queue_depth", 50, "warning", queue="campaigns", for_s=900),
    Threshold("QueueDepthHigh", "queue_depth", 50, "warning", queue="stats", for_s=900),
    Threshold("QueueDepthHigh", "queue_depth", 100, "warning", queue="llm", for_s=900),
    Threshold("QueueDepthHigh", "queue_depth", 5, "warning", queue="backup", for_s=900),
    Threshold("JobWaitHigh", "wait_p95", 120, "warning", queue="leads", for_s=300),
    Threshold("JobWaitHigh", "wait_p95", 1800, "warning", queue="llm", for_s=600),
    Threshold("ErrorRateHigh", "error_rate", 0.25, "critical", window_s=300, for_s=300),
    Threshold("ErrorRateElevated", "error_rate", 0.05, "warning", window_s=3600, for_s=900),
    Threshold("DeadLettersNew", "new_dead_letters", 0, "warning", window_s=900),
    Threshold("PoolDown", "pool_down", 0, "critical", for_s=120),
    Threshold("BackupMissing", "backup_missing", 0, "critical", window_s=26 * 3600, for_s=600),
)


OVERRIDABLE = ("limit", "for_s", "window_s")


def overridden(text: str, thresholds: tuple[Threshold, ...] = THRESHOLDS) -> tuple[Threshold, ...]:
    """``thresholds`` with ``CEP_ALERT_THRESHOLDS`` applied (Python alerting only; the rules file keeps the defaults).

    ``text`` is comma-separated ``ALERT[:QUEUE].FIELD=VALUE`` (FIELD: limit, for_s or window_s) or
    ``ALERT[:QUEUE]=off``, e.g. ``"QueueDepthHigh:leads.limit=500,PoolDown.for_s=300,BackupMissing=off"``;
    without ``:QUEUE`` an entry applies to every threshold of that alert. ValueError names a malformed entry.
    """
    result = list(thresholds)
    for item in filter(None, (part.strip() for part in text.split(","))):
        target, _, value = item.partition("=")
        name, _, field_name = target.strip().partition(".")
        alert, _, queue = name.partition(":")
        matches = [i for i, t in enumerate(result) if t.alert == alert and (not queue or t.queue == queue)]
        if not value.strip() or not matches:
            raise ValueError(f"{item!r}: no threshold {name!r} (ALERT[:QUEUE].FIELD=VALUE or ALERT[:QUEUE]=off)")
        if not field_name and value.strip() == "off":
            result = [t for i, t in enumerate(result) if i not in matches]
            continue
        if field_name not in OVERRIDABLE:
            raise ValueError(f"{item!r}: the field is one of {', '.join(OVERRIDABLE)}")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"{item!r}: {value.strip()!r} is not a number") from None
        for i in matches:
            t = result[i]
            result[i] = (replace(t, limit=number) if field_name == "limit" else replace(t, for_s=int(number))
                         if field_name == "for_s" else replace(t, window_s=int(number)))
    return tuple(result)
