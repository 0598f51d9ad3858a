"""Broker signals sent only to the middleware that handle them.

Dramatiq's ``emit_before``/``emit_after`` call the hook of every middleware for every signal, and most hooks are
:class:`dramatiq.Middleware`'s empty defaults: our stack has 19 middleware, and of their 38 hooks for ``ack``, 36
for ``enqueue`` and 12 of the 38 for processing a message none does anything. Each empty call costs a ``getattr``
and a Python call, on every message and every enqueue. :class:`SignalTable` keeps, per signal, the bound hooks
that a middleware (its class or the instance) actually defines, in Dramatiq's order, with Dramatiq's error
handling; the table is rebuilt whenever the middleware list changes (``add_middleware``, or a test editing
``broker.middleware`` in place).
"""

from __future__ import annotations

from typing import Any

from dramatiq import Middleware
from dramatiq.middleware import MiddlewareError

Hooks = tuple[tuple[Any, Middleware], ...]


class SignalTable:
    """Mixed into a Dramatiq broker class, before it: the same signals, without the empty calls."""

    middleware: list[Middleware]
    logger: Any
    _signal_stack: tuple[Middleware, ...] = ()
    _signal_hooks: dict[str, Hooks] | None = None

    def emit_before(self, signal: str, *args: Any, **kwargs: Any) -> None:
        name = "before_" + signal
        for hook, middleware in self._hooks(name):
            try:
                hook(self, *args, **kwargs)
            except MiddlewareError:
                raise
            except Exception:
                self.logger.critical("Unexpected failure in %s of %r.", name, middleware, exc_info=True)

    def emit_after(self, signal: str, *args: Any, **kwargs: Any) -> None:
        name = "after_" + signal
        for hook, middleware in self._hooks(name):
            try:
                hook(self, *args, **kwargs)
            except Exception:
                self.logger.critical("Unexpected failure in %s of %r.", name, middleware, exc_info=True)

    def _hooks(self, name: str) -> Hooks:
        stack = tuple(self.middleware)
        table = self._signal_hooks
        if table is None or stack != self._signal_stack:
            table, self._signal_stack = {}, stack
            self._signal_hooks = table
        found = table.get(name)
        if found is None:
            order = stack if name.startswith("before_") else stack[::-1]  # "after" hooks run innermost first
            found = table[name] = tuple((getattr(m, name), m) for m in order if _handles(m, name))
        return found


def _handles(middleware: Middleware, name: str) -> bool:
    """Whether ``middleware`` defines ``name`` itself rather than inheriting Dramatiq's empty default."""
    if name in getattr(middleware, "__dict__", ()):
        return True
    default = getattr(Middleware, name, None)
    return default is None or getattr(type(middleware), name, None) is not default


def with_signal_table(broker_class: type[Any]) -> type[Any]:
    """``broker_class`` with :class:`SignalTable` mixed in (made once per class)."""
    made = _classes.get(broker_class)
    if made is None:
        made = _classes[broker_class] = type(broker_class.__name__, (SignalTable, broker_class), {
            "__module__": broker_class.__module__, "__doc__": broker_class.__doc__})
    return made


_classes: dict[type[Any], type[Any]] = {}
