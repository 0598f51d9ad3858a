"""The brokers we build send each signal to the middleware that handle it, as Dramatiq would, without the empty
calls: same hooks, same order, same error handling, and a middleware list edited in place is seen."""

from __future__ import annotations

import logging

import pytest
from dramatiq import Middleware
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import MiddlewareError, SkipMessage

from cep_automation.broker.signals import with_signal_table


class Recorder(Middleware):
    def __init__(self, name: str, calls: list[str]) -> None:
        self.name, self.calls = name, calls

    def before_enqueue(self, broker, message, delay):
        self.calls.append(f"{self.name}.before_enqueue")

    def after_enqueue(self, broker, message, delay):
        self.calls.append(f"{self.name}.after_enqueue")


class Silent(Middleware):
    """Defines no hook of its own."""


class Breaks(Middleware):
    def __init__(self, error: Exception) -> None:
        self.error = error

    def before_ack(self, broker, message):
        raise self.error

    def after_ack(self, broker, message):
        raise self.error


def both(calls: list[str], *extra: Middleware) -> list[StubBroker]:
    made = []
    for cls in (StubBroker, with_signal_table(StubBroker)):
        broker = cls(middleware=[])
        for middleware in (Recorder("a", calls), Silent(), Recorder("b", calls), *extra):
            broker.add_middleware(middleware)
        made.append(broker)
    return made


def test_the_same_hooks_run_in_the_same_order_as_dramatiqs():
    plain_calls: list[str] = []
    ours_calls: list[str] = []
    plain, _ = both(plain_calls)
    _, ours = both(ours_calls)
    for broker in (plain, ours):
        broker.emit_before("enqueue", None, None)
        broker.emit_after("enqueue", None, None)
        broker.emit_before("ack", None)  # nobody handles it
    assert ours_calls == plain_calls == ["a.before_enqueue", "b.before_enqueue", "b.after_enqueue", "a.after_enqueue"]


def test_a_middleware_added_or_removed_later_is_seen():
    calls: list[str] = []
    _, broker = both(calls)
    broker.emit_before("enqueue", None, None)
    late = Recorder("late", calls)
    broker.add_middleware(late)
    broker.emit_before("enqueue", None, None)
    broker.middleware.remove(late)  # as tests do, in place
    broker.emit_before("enqueue", None, None)
    assert calls == ["a.before_enqueue", "b.before_enqueue"] * 1 + [
        "a.before_enqueue", "b.before_enqueue", "late.before_enqueue", "a.before_enqueue", "b.before_enqueue"]


def test_a_hook_set_on_the_instance_is_called():
    calls: list[str] = []
    _, broker = both(calls)
    odd = Silent()
    odd.before_nack = lambda broker, message: calls.append("instance.before_nack")  # type: ignore[method-assign]
    broker.add_middleware(odd)
    broker.emit_before("nack", None)
    assert calls == ["instance.before_nack"]


@pytest.mark.parametrize("error", [SkipMessage(), MiddlewareError("stop")])
def test_a_middleware_error_before_stops_the_signal_as_in_dramatiq(error):
    for broker in both([], Breaks(error)):
        with pytest.raises(type(error)):
            broker.emit_before("ack", None)


class Said(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.CRITICAL)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_any_other_error_is_logged_and_the_signal_goes_on():
    calls: list[str] = []
    for broker in both(calls, Breaks(ValueError("boom"))):
        said, logger = Said(), broker.logger
        was = logger.disabled, logger.level
        logger.addHandler(said)  # its own logger, on: another test may have configured logging in this process
        logger.disabled, logger.level = False, logging.NOTSET
        try:
            broker.emit_before("ack", None)
            broker.emit_after("ack", None)
        finally:
            logger.removeHandler(said)
            logger.disabled, logger.level = was
        assert [line.split(" of ")[0] for line in said.lines] == ["Unexpected failure in before_ack",
                                                                   "Unexpected failure in after_ack"]
