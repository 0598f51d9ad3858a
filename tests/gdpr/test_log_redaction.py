"""One global redaction: every log record of the process is masked, whichever logger made it."""

from __future__ import annotations

import logging

from cep_automation import log_redaction


def test_every_record_is_masked_whatever_the_logger(caplog):
    log_redaction.install()
    caplog.set_level(logging.INFO)
    logging.getLogger("some.library").info("sent to %s at %s (%d tries)", "ana@example.com", "+34 600 123 456", 3)
    logging.getLogger("cep_automation.anything").warning({"to": "ana@example.com"})
    try:
        raise ValueError("bad address luis@example.org")
    except ValueError:
        logging.getLogger("other").exception("failed for token=abc123")
    text = caplog.text
    assert "ana@example.com" not in text and "600 123 456" not in text and "luis@example.org" not in text
    assert "abc123" not in text and "a***@example.com" in text and "(3 tries)" in text
    assert log_redaction.installed()


def test_uvicorn_access_arguments_keep_their_shape():
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5000", "GET", "/x?token=secret", "1.1", 200), None)
    log_redaction.redact_record(record)
    assert record.args == ("127.0.0.1:5000", "GET", "/x?token=***", "1.1", 200)
