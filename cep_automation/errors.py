"""Errors raised by cep_automation.

Hierarchy::

    CepError
    ├── SettingsError          configuration is missing or wrong
    ├── ServiceUnavailable     Redis or PostgreSQL cannot be reached
    ├── UnknownJob             an actor name that is not declared
    ├── MigrationError         a database migration failed
    ├── DeadLetterNotFound     no dead letter has that id
    ├── QueueFull              a queue is at its hard limit: the job was not enqueued
    ├── PayloadTooLarge        a payload over CEP_MAX_PAYLOAD_BYTES: refused at enqueue
    ├── ScheduleError          a run_at, delay or debounce that cannot be honoured (naive time, negative delay)
    ├── ScheduledJobNotFound   no job held for later has that id (or it was released or cancelled)
    ├── TransientError         worth retrying (timeout, 429, 5xx); may carry retry_after
    │   ├── Unconfirmed        a send that may have reached the provider (read timeout): check before repeating
    │   ├── Postponed          not a failure: the job waits (e.g. for a provider's confirmation), no attempt used
    │   │   └── OverBudget     a daily spend cap is reached: the job waits until the next day (Europe/Madrid)
    │   └── BackupBusy         another backup holds the lock; this one runs later
    └── PermanentError         never worth retrying (invalid phone, unknown list)
        └── PayloadError       a job payload does not match its schema

``TransientError`` is a Dramatiq ``Retry``, so its ``retry_after`` becomes the retry delay;
``PermanentError`` sends the message straight to the dead letters.
"""

from __future__ import annotations

from dramatiq.errors import Retry
from dramatiq.middleware import MiddlewareError


class CepError(Exception):
    """Base class of every error this package raises on purpose."""


class SettingsError(CepError):
    """One or more settings are missing or invalid; the message lists them all."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"cep_automation cannot start: {len(problems)} setting problem(s):\n{lines}\n"
            "Set them in the environment or in a .env file (see .env.example)."
        )


class ServiceUnavailable(CepError):
    """A service we depend on (Redis, PostgreSQL, the broker) did not answer."""


class UnknownJob(CepError):
    """The named job (actor) is not declared."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        super().__init__(f"unknown job {name!r}; known jobs: {', '.join(sorted(known))}")


class DeadLetterNotFound(CepError):
    """No dead letter has that id."""


class QueueFull(CepError):
    """The queue is at its hard limit; nothing was enqueued, try again after ``retry_after`` seconds."""

    def __init__(self, queue: str, depth: int, limit: int, retry_after: int) -> None:
        self.queue, self.depth, self.limit, self.retry_after = queue, depth, limit, retry_after
        super().__init__(f"queue {queue!r} is full: {depth} jobs waiting (hard limit {limit}); nothing was enqueued,"
                         f" try again in {retry_after} s")


class PayloadTooLarge(CepError):
    """A payload larger than ``CEP_MAX_PAYLOAD_BYTES``; refused before anything is enqueued."""

    def __init__(self, job: str, size: int, limit: int) -> None:
        self.job, self.size, self.limit = job, size, limit
        super().__init__(f"payload of {job} is {size} bytes, over the {limit}-byte limit (CEP_MAX_PAYLOAD_BYTES);"
                         " pass an id or a stored file's key instead of the data")


class ScheduleError(CepError):
    """A ``run_at``, ``delay`` or ``debounce`` that cannot be honoured; the message says which and why."""


class ScheduledJobNotFound(CepError):
    """No job is held for later under that id (unknown, already released to its queue, or cancelled)."""


class TransientError(CepError, Retry):
    """A failure that may go away; retried after ``retry_after`` seconds when given."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        Retry.__init__(self, message, delay=int(retry_after * 1000) if retry_after is not None else None)


class Unconfirmed(TransientError):
    """A request that may have reached the provider and been acted on (it timed out after it was sent)."""


class Postponed(TransientError):
    """The job must wait (for a provider's confirmation, say); its retry does not use up an attempt."""


class OverBudget(Postponed):
    """A daily spend cap is reached; the job waits until the cap's day is over (``retry_after``)."""


class BackupBusy(TransientError):
    """Another backup holds the lock; this one runs later."""


class PermanentError(CepError):
    """A failure that retrying cannot fix; the message goes to the dead letters at once."""


class PayloadError(PermanentError, MiddlewareError):
    """A job payload failed validation; ``errors`` names each bad field."""

    def __init__(self, job: str, errors: list[str]) -> None:
        self.job = job
        self.errors = errors
        super().__init__(f"invalid payload for {job}: " + "; ".join(errors))


class MigrationError(CepError):
    """A migration file could not be applied."""
