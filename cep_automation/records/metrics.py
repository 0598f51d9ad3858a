"""Prometheus metrics shared by every worker process (prometheus-client multiprocess mode).

Worker processes write samples to files in :func:`multiproc_dir`; one HTTP endpoint per host
(:func:`serve_metrics`, forked by the Dramatiq CLI) merges them and adds ``queue_length``,
read from Redis and PostgreSQL at scrape time. Import of ``prometheus_client`` is delayed
until the directory is set, because the library picks its storage on import.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import tempfile
from collections.abc import Iterator
from functools import lru_cache
from http.server import BaseHTTPRequestHandler
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from cep_automation.settings import get_settings

if TYPE_CHECKING:
    from prometheus_client.core import GaugeMetricFamily

logger = logging.getLogger("cep_automation.records.metrics")
DURATION_BUCKETS = (0.1, 0.5, 1, 5, 10, 30, 60)  # the seed's buckets
WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800)
QUEUE_STATES = ("waiting", "delayed", "dead", "fair")
INTEGRATION_OUTCOMES = ("ok", "error", "no_answer")
INTEGRATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
BUILT_IN_INTEGRATIONS = ("mailchimp", "mandrill", "whatsapp", "meta", "ga4", "crm_webhook")


def observe_integration(integration: str, outcome: str, seconds: float) -> None:
    """One call to an external service (plugins/http.py and the SDK-based plugins call this)."""
    try:
        job_metrics().integration.labels(integration, outcome).observe(seconds)
    except Exception as exc:  # metrics never fail a call
        logger.debug("integration metric not recorded: %s", exc)
PROCESSED_STATUSES = ("completed", "failed", "skipped")
ENQUEUE_REFUSALS = ("queue_full", "too_large")


def observe_limit_wait(limit: str, how: str, seconds: float) -> None:
    """Time spent waiting on a declared limit (flow/limits.py, middleware/flow_control.py)."""
    try:
        job_metrics().limit_wait.labels(limit, how).observe(seconds)
    except Exception as exc:  # metrics never fail a job
        logger.debug("limit wait not recorded: %s", exc)


def count_deferred(queue: str) -> None:
    """An enqueue accepted past the queue's soft limit, deferred."""
    try:
        job_metrics().deferred.labels(queue).inc()
    except Exception as exc:  # metrics never fail an enqueue
        logger.debug("enqueue metric not recorded: %s", exc)


def count_rejected(queue: str, reason: str) -> None:
    """An enqueue refused, for one of :data:`ENQUEUE_REFUSALS`."""
    try:
        job_metrics().rejected.labels(queue, reason).inc()
    except Exception as exc:  # metrics never fail an enqueue
        logger.debug("enqueue metric not recorded: %s", exc)


def multiproc_dir() -> str:
    """Where worker processes write samples: ``PROMETHEUS_MULTIPROC_DIR`` or a per-namespace temp dir."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.path.join(
        tempfile.gettempdir(), f"cep-prometheus-{get_settings().cep_namespace}")
    os.makedirs(path, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    return path


@lru_cache(maxsize=1)
def job_metrics() -> SimpleNamespace:
    """The metrics a worker process records (created once per process)."""
    multiproc_dir()
    import prometheus_client as prom

    registry = prom.CollectorRegistry()
    labels = ["queue", "job_name"]
    found = SimpleNamespace(
        processed=prom.Counter("jobs_processed", "Jobs processed, by outcome.", ["queue", "status"],
                               registry=registry),
        duration=prom.Histogram("job_duration_seconds", "Time an attempt ran.", labels,
                                buckets=DURATION_BUCKETS, registry=registry),
        wait=prom.Histogram("job_wait_seconds", "Time from enqueue to first start.", labels,
                            buckets=WAIT_BUCKETS, registry=registry),
        retries=prom.Counter("job_retries", "Failed attempts that will be retried.", labels, registry=registry),
        dead=prom.Counter("job_dead_letters", "Messages sent to the dead letters.", labels, registry=registry),
        skips=prom.Counter("job_idempotent_skips", "Deliveries skipped as duplicates.", labels, registry=registry),
        stale_ticks=prom.Counter("job_stale_ticks", "Scheduled ticks skipped: first delivery too late.", labels,
                                 registry=registry),
        postponed=prom.Counter("job_postponed", "Attempts postponed, not failed: over a limit, or waiting for a"
                               " provider's confirmation (no attempt used up).", labels, registry=registry),
        parked=prom.Counter("job_parked", "Deliveries set aside to wait for their ordering key's turn.", labels,
                            registry=registry),
        integration=prom.Histogram("integration_request_seconds", "Calls to external services: time to the answer,"
                                   " by outcome (ok, error: an HTTP error status, no_answer: timeout or connection).",
                                   ["integration", "outcome"], buckets=INTEGRATION_BUCKETS, registry=registry),
        limit_wait=prom.Histogram("flow_limit_wait_seconds", "Time spent waiting on a declared limit: held inside a"
                                  " step, or the job postponed (its delay).", ["limit", "how"],
                                  buckets=WAIT_BUCKETS, registry=registry),
        deferred=prom.Counter("enqueue_deferred", "Enqueues accepted past the queue's soft limit, deferred.",
                              ["queue"], registry=registry),
        rejected=prom.Counter("enqueue_rejected", "Enqueues refused: the queue at its hard limit (queue_full) or"
                              " the payload over CEP_MAX_PAYLOAD_BYTES (too_large).", ["queue", "reason"],
                              registry=registry),
    )
    _zero_every_label_set(found)
    return found


def _zero_every_label_set(found: SimpleNamespace) -> None:
    """Create every (queue, job) and (queue, status) series at 0, so ``increase(...)`` sees 0, not nothing."""
    from cep_automation.queues import POLICIES

    for integration in BUILT_IN_INTEGRATIONS:
        for outcome in INTEGRATION_OUTCOMES:
            found.integration.labels(integration, outcome)
    for queue in {policy.queue for policy in POLICIES}:
        found.deferred.labels(queue)
        for reason in ENQUEUE_REFUSALS:
            found.rejected.labels(queue, reason)
    for policy in POLICIES:
        for status in PROCESSED_STATUSES:
            found.processed.labels(policy.queue, status)
        for metric in (found.duration, found.wait, found.retries, found.dead, found.skips, found.stale_ticks,
                       found.postponed, found.parked):
            metric.labels(policy.queue, policy.actor)


def queue_lengths() -> dict[tuple[str, str], int]:
    """(queue, state) → count: waiting and delayed from the Redis broker, dead from ``dead_letters``, fair: jobs
    with fairness keys waiting in their keys' lists to be fed to the queue."""
    from cep_automation.db import connection
    from cep_automation.flow import fairness
    from cep_automation.records.broker_state import queue_names, waiting_and_delayed

    lengths = waiting_and_delayed()
    lengths.update({(queue, "dead"): 0 for queue in queue_names()})
    lengths.update({(queue, "fair"): count for queue, count in fairness.waiting_in(queue_names()).items()})
    with connection(timeout=3) as conn:
        for row in conn.execute("SELECT queue, count(*) AS n FROM dead_letters WHERE status = 'dead'"
                                " GROUP BY queue"):
            lengths[(row["queue"], "dead")] = row["n"]
    return lengths


class QueueLengthCollector:
    """Reports ``queue_length{queue,state}`` when scraped."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily("queue_length", "Jobs per queue and state.", labels=["queue", "state"])
        try:
            for (queue, state), value in sorted(queue_lengths().items()):
                family.add_metric([queue, state], value)
        except Exception as exc:  # a scrape must still answer when Redis or PostgreSQL is down
            logger.warning("queue_length unavailable: %s", exc)
        yield family


class SequenceCollector:
    """Reports ``sequence_entries_total{sequence}``, ``sequence_exits_total{sequence,cause}`` and
    ``sequence_steps_total{sequence,status}`` from the counters every process adds to in Redis; each configured
    sequence's series exist at 0."""

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily

        from cep_automation.records import sequence_counts

        entries = CounterMetricFamily("sequence_entries", "Leads that entered a sequence.", labels=["sequence"])
        exits = CounterMetricFamily("sequence_exits", "Leads that left a sequence before its end, by cause.",
                                    labels=["sequence", "cause"])
        steps = CounterMetricFamily("sequence_steps", "Sequence steps by outcome.", labels=["sequence", "status"])
        try:
            counts = sequence_counts.read()
            for name in sequence_names():
                counts.setdefault(("entries", name), 0)
                for status in ("sent", "skipped", "failed"):
                    counts.setdefault(("steps", name, status), 0)
            families = {"entries": entries, "exits": exits, "steps": steps}
            for (kind, *labels), value in sorted(counts.items()):
                if kind in families:
                    families[kind].add_metric(labels, value)
        except Exception as exc:  # a scrape must still answer when Redis is down
            logger.warning("sequence counters unavailable: %s", exc)
        yield from (entries, exits, steps)


def sequence_names() -> list[str]:
    try:
        from cep_automation.sequences.definition import configured

        return sorted(configured())
    except Exception:  # an unreadable sequences file is reported at start-up, not by a scrape
        return []


def render() -> tuple[bytes, str]:
    """The exposition text of all worker processes, plus queue lengths."""
    multiproc_dir()
    import prometheus_client as prom
    from prometheus_client import multiprocess

    job_metrics()  # this process's zeros: a scrape before any job still lists every series
    registry = prom.CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # unannotated in prometheus_client
    registry.register(QueueLengthCollector())
    registry.register(SequenceCollector())
    return prom.generate_latest(registry), prom.CONTENT_TYPE_LATEST


def serve_metrics() -> None:
    """Serve ``/metrics`` on ``CEP_METRICS_HOST``:``CEP_METRICS_PORT``; run by the Dramatiq CLI as a fork process.

    With ``CEP_API_TOKEN`` set, a scrape must bring it (``Authorization: Bearer``), as on the HTTP service.
    """
    from http.server import ThreadingHTTPServer

    settings = get_settings()
    if not settings.cep_metrics_port:
        return
    job_metrics()  # every known series at 0 from the pool's start, before its first job
    token = settings.cep_api_token.get_secret_value() if settings.cep_api_token else None
    address = (settings.cep_metrics_host, settings.cep_metrics_port)
    try:
        server = ThreadingHTTPServer(address, metrics_handler(token))
    except OSError as exc:
        logger.info("Not serving /metrics on %s:%d (%s): another pool on this host serves them", *address, exc)
        return
    if token is None and not _loopback(settings.cep_metrics_host):
        logger.warning("Serving /metrics on %s without a token: set CEP_API_TOKEN", settings.cep_metrics_host)
    logger.info("Serving /metrics on %s:%d", *address)
    server.serve_forever()


def metrics_handler(token: str | None) -> type[BaseHTTPRequestHandler]:
    """A request handler answering ``GET /metrics`` (with ``token`` when one is given) and 404 elsewhere."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404, "only /metrics is served here")
                return
            if token is not None and not _bearer_matches(self.headers.get("Authorization", ""), token):
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Bearer realm="cep-automation"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body, content_type = render()
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug(format, *args)

    return Handler


def _bearer_matches(authorization: str, token: str) -> bool:
    """Constant-time check of ``Authorization: Bearer <token>``."""
    scheme, _, given = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def mark_process_dead(pid: int) -> None:
    """Drop a stopped process's live gauges (counters and histograms are kept, as Prometheus expects)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, multiproc_dir())  # type: ignore[no-untyped-call]  # unannotated in prometheus_client
