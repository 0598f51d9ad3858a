"""One redaction for every log record of the process, so a new log line cannot leak by forgetting it.

:func:`install` wraps the logging module's record factory: every record, whichever logger or library made
it and whichever handler writes it (Dramatiq's, uvicorn's, pytest's), has its message, its arguments and
its traceback passed through :func:`cep_automation.redact.redact` as it is created. Arguments keep their
type where a format needs it (numbers stay numbers; uvicorn's access log unpacks its tuple of strings).
"""

from __future__ import annotations

import logging
import numbers
import threading
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from cep_automation.redact import redact

_lock = threading.Lock()
_installed: Callable[..., logging.LogRecord] | None = None


def _clean(value: Any) -> Any:
    if value is None or isinstance(value, bool | numbers.Number):
        return value
    return redact(value if isinstance(value, str) else str(value))


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """Mask emails, phones and secrets in the record's message, arguments, traceback and stack."""
    record.msg = redact(record.msg if isinstance(record.msg, str) else str(record.msg))
    if isinstance(record.args, Mapping):
        record.args = {name: _clean(value) for name, value in record.args.items()}
    elif isinstance(record.args, tuple):
        record.args = tuple(_clean(value) for value in record.args)
    if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
        record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    return record


def install() -> None:
    """Redact every log record made from now on in this process (idempotent)."""
    global _installed
    with _lock:
        if _installed is not None:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            return redact_record(previous(*args, **kwargs))

        logging.setLogRecordFactory(factory)
        _installed = factory


def installed() -> bool:
    return _installed is not None and logging.getLogRecordFactory() is _installed
