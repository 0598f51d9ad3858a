"""Log output through loguru: every record of the process — ours, Dramatiq's, libraries' — one line per event.

:func:`configure` puts an :class:`InterceptHandler` on the standard library's root logger, so whatever logs
through ``logging`` reaches loguru (the levels set on ``logging`` loggers still decide what is logged), and
adds one loguru sink on ``sys.stderr``: text in Dramatiq's layout (``[time] [PID n] [thread] [logger] [LEVEL]
message``) or, with ``CEP_LOG_JSON=1``, one JSON object per line. Inside a job each line carries the message id,
the job, its queue and attempt, and the step running (fields, from Dramatiq's current message and
:func:`step_context`), read only when a line is written: nothing is added to the per-message path.

Redaction: records from ``logging`` are masked as they are made (:mod:`cep_automation.log_redaction`); what is
logged with loguru directly is masked by this module's patcher, exceptions included (their text, never
loguru's variable-showing tracebacks).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
import traceback
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from loguru import logger

from cep_automation.redact import redact

FIELDS = ("message_id", "job", "queue", "attempt", "step")
TEXT_FORMAT = ("[{time:YYYY-MM-DD HH:mm:ss,SSS}] [PID {process}] [{thread.name}] [{extra[logger]}] [{level}] "
               "{message}{extra[fields]}\n")
_step: ContextVar[dict[str, Any] | None] = ContextVar("cep_log_step", default=None)
_seen = threading.local()


@contextlib.contextmanager
def step_context(step: str, message_id: str | None = None) -> Iterator[None]:
    """Lines logged inside name ``step`` (and the job's message id: steps may run in other threads)."""
    token = _step.set({"step": step, **({"message_id": message_id} if message_id else {})})
    try:
        yield
    finally:
        _step.reset(token)


def _fields_and_suffix() -> tuple[dict[str, Any], str]:
    """The running job's fields in this thread (message id, job, queue, attempt, step) and their text suffix, made
    once per delivery and step: a job writes a dozen lines, and each used to rebuild both. Do not change the dict."""
    from dramatiq.middleware import CurrentMessage

    message, step = CurrentMessage.get_current_message(), _step.get()
    cached = getattr(_seen, "fields", None)
    if cached is not None and cached[0] is message and cached[1] is step:
        return cached[2], cached[3]
    fields: dict[str, Any] = {}
    if message is not None:
        fields.update(message_id=message.message_id, job=message.actor_name, queue=message.queue_name,
                      attempt=_attempt(message, message.options.get("retries", 0) + 1))
    fields.update(step or {})
    suffix = _suffix(fields)
    _seen.fields = (message, step, fields, suffix)  # holding them keeps their ids from being reused
    return fields, suffix


def _suffix(fields: dict[str, Any]) -> str:
    shown = [f"{name}={fields[name]}" for name in FIELDS if fields.get(name) is not None]
    return " | " + " ".join(shown) if shown else ""


def _attempt(message: Any, counted: int) -> int:
    """The attempt as first seen for this delivery in this thread: after a failure the retry logic counts it
    at once, and its own lines must not show the next attempt's number. One entry per thread."""
    delivery = (message.message_id, id(message))  # each delivery has its own message proxy
    seen = getattr(_seen, "attempt", None)
    if seen is None or seen[0] != delivery:
        seen = _seen.attempt = (delivery, counted)
    return int(seen[1])


def _patch(record: Any) -> None:
    """Mask the message, string fields and any exception; add the job's fields and the text layout's suffix."""
    record["message"] = redact(record["message"])
    exception = record["exception"]
    if exception is not None and exception.type is not None:
        text = "".join(traceback.format_exception(exception.type, exception.value, exception.traceback))
        record["message"] += "\n" + redact(text).rstrip("\n")
        record["exception"] = None
    extra = record["extra"]
    for name, value in list(extra.items()):
        if isinstance(value, str):
            extra[name] = redact(value)
    fields, suffix = _fields_and_suffix()
    own = any(name in extra for name in FIELDS)  # a line may bind its own (a step's thread, a test)
    for name, value in fields.items():  # our ids and names, never personal data: nothing to mask
        extra.setdefault(name, value)
    extra.setdefault("logger", record["name"])
    extra["fields"] = _suffix(extra) if own else suffix


def _json_line(message: Any) -> None:
    record = message.record
    line = {"time": record["time"].isoformat(), "level": record["level"].name, "logger": record["extra"]["logger"],
            "message": record["message"], "process": record["process"].id, "thread": record["thread"].name}
    line.update({name: value for name, value in record["extra"].items() if name not in ("logger", "fields")})
    sys.stderr.write(json.dumps(line, default=str) + "\n")


def _text_line(message: Any) -> None:
    sys.stderr.write(str(message))  # looked up per line: Dramatiq's worker processes swap sys.stderr for a pipe


class InterceptHandler(logging.Handler):
    """Hands each standard-library record to loguru, with its logger's name, level and (masked) traceback."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        text = record.getMessage()
        if record.exc_info and record.exc_info[0] is not None:
            text += "\n" + (record.exc_text or "".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
        logger.bind(logger=record.name).opt(depth=0).log(level, text)


def configure(*, as_json: bool) -> None:
    """Send every log record of this process through loguru to stderr (idempotent: a second call replaces)."""
    logger.remove()
    logger.configure(patcher=_patch)
    logger.add(_json_line if as_json else _text_line, level=0, format=TEXT_FORMAT, backtrace=False,
               diagnose=False, catch=True)
    root = logging.getLogger()
    # Dramatiq's CLI gave the root logger a stream handler in its own layout: ours replaces it (pytest's stay).
    root.handlers = [h for h in root.handlers if not isinstance(h, InterceptHandler) and (
        not isinstance(h, logging.StreamHandler) or type(h).__module__.startswith("_pytest"))] + [InterceptHandler()]
