"""Dead letters retried by themselves: what ``dead_letters.auto_retry`` does every five minutes.

A provider outage of a few minutes used to dead-letter everything behind it until an operator stepped in.
Per queue (``queues.QUEUE_RULES``: ``auto_retry_every_s``, ``auto_retry_for_s``; 15 min for 24 h by default)
a dead letter whose error was transient (``records.dead_letters.TRANSIENT_ERROR_TYPES``: timeouts, 5xx, 429)
is retried through the one enqueue path (:func:`~cep_automation.runtime.enqueue.retry_dead_letter`), once
per period, until the window since its chain's first failure closes. A permanent error is never retried.

The chain is carried by the retry itself: its message option ``cep_auto_retry`` holds when the first
failure happened and how many automatic retries came before, so a retry that fails again becomes a dead
letter that knows both. Every retry is noted with ``retried_by = 'auto'`` (``dlq list``/``show``, the
dashboard). Letters are taken ``FOR UPDATE SKIP LOCKED``: two retriers never retry the same one.
"""

from __future__ import annotations

import datetime as dt
import logging

from cep_automation import options as opt
from cep_automation.db import connection
from cep_automation.errors import CepError, QueueFull
from cep_automation.queues import queue_rules
from cep_automation.records import dead_letters
from cep_automation.records.broker_state import queue_names
from cep_automation.runtime.enqueue import retry_dead_letter
from cep_automation.settings import get_settings

logger = logging.getLogger("cep_automation.runtime.auto_retry")


def retry_transient(queues: list[str] | None = None) -> dict[str, int]:
    """One pass over every queue with an automatic retry; returns queue → dead letters retried."""
    if not get_settings().cep_dead_letter_auto_retry:
        return {}
    retried: dict[str, int] = {}
    for queue in queues if queues is not None else queue_names():
        rules = queue_rules(queue)
        if rules.auto_retry_every_s is not None:
            retried[queue] = retry_queue(queue, rules.auto_retry_every_s, rules.auto_retry_for_s)
    return retried


def retry_queue(queue: str, every_s: int, for_s: int) -> int:
    """Retry the due dead letters of ``queue`` in one transaction; a full queue ends the pass for it."""
    count = 0
    with connection() as conn:
        for letter in dead_letters.auto_retry_due(conn, queue, every_s, for_s):
            chain = letter["auto_retry"] or {}
            mark = {"since": chain.get("since") or letter["failed_at"].astimezone(dt.UTC).isoformat(),
                    "count": int(chain.get("count", 0)) + 1}
            try:
                message_id = retry_dead_letter(conn, letter["id"], by="auto", options={opt.AUTO_RETRY: mark})
            except QueueFull as exc:
                logger.warning("Automatic retries of %s wait: %s", queue, exc)
                break
            except CepError as exc:  # e.g. the job was removed: leave the letter to an operator
                logger.error("Dead letter %s not retried automatically: %s", letter["id"], exc)
                continue
            logger.info("Dead letter %s retried automatically (%s of its chain) as %s", letter["id"],
                        mark["count"], message_id)
            count += 1
    return count
