"""The message options every layer reads or writes, named once.

Dramatiq keeps a message's options in ``message.options``; some are Dramatiq's own (``retries``,
``traceback``, ``eta``), some are ours. The producer, the middleware, the dead letters and the
web views all refer to them through these names.
"""

from __future__ import annotations

# Set by the producer (the enqueue path).
IDEMPOTENCY_KEY = "idempotency_key"  # the key this message runs under; also the actor option's name
SCHEDULED_AT = "scheduled_at"  # periodiq's tick, when the scheduler sent the message
RETRY_OF = "cep_retry_of"  # the dead letter's message id, when an operator retried it
ORDERING_KEY = "cep_ordering_key"  # jobs with the same key run one at a time, in enqueue order (flow/ordering.py)
FAIRNESS_KEY = "cep_fairness_key"  # jobs of different keys take turns in their queue (flow/fairness.py)
AUTO_RETRY = "cep_auto_retry"  # {"since", "count"}: a dead letter's automatic retry (runtime/auto_retry.py)

# Set by the middleware while the message is processed.
RETRIES = "retries"  # Dramatiq's count of failed attempts
TRACEBACK = "traceback"  # Dramatiq's traceback of the last failure
ERROR = "cep_error"  # {"type", "message", ...}: why the message failed without an exception to show
IDEMPOTENT_SKIP = "cep_idempotent_skip"  # the run record that made this delivery a duplicate
RETRY_DELAY_MS = "cep_retry_delay_ms"  # the delay chosen for the retry that follows this attempt
STALE_TICK = "cep_stale_tick"  # {"tick", "late_s"}: a scheduled tick whose first delivery came too late
PARKED = "cep_parked"  # fetched out of its ordering key's turn: kept aside until the job before it ends
IN_TURN = "cep_in_turn"  # enqueued where its line decides at once (first, or parked): fetched, it is the head
TRACE = "cep_trace"  # W3C trace context (traceparent) of the enqueue, with the otel extra (middleware/tracing.py)

# Set by the requeue sweep (records/broker_state.py) on a message it took back from a dead worker process.
REQUEUED = "cep_requeued"  # how many times; a marked message's deliveries are counted (DeliveryLimit)

# Options that describe one failed delivery, not the job; a retry from the dead letters starts without them.
DELIVERY_OPTIONS = frozenset({RETRIES, TRACEBACK, "requeue_timestamp", "eta", ERROR, IDEMPOTENT_SKIP, STALE_TICK,
                              RETRY_DELAY_MS, REQUEUED, PARKED, IN_TURN, "redis_message_id",
                              "dead_message_id"})
