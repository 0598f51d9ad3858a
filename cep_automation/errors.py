"""Errors raised by cep_automation.

Hierarchy::

    CepError
    ├── SettingsError          configuration is missing or wrong
    ├── ServiceUnavailable     Redis or PostgreSQL cannot be reached
    ├── UnknownJob             an actor name that is not declared
    ├── PayloadError           a job payload does not match its schema
    └── MigrationError         a database migration failed
"""

from __future__ import annotations


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


class PayloadError(CepError):
    """A job payload failed validation; ``errors`` names each bad field."""

    def __init__(self, job: str, errors: list[str]) -> None:
        self.job = job
        self.errors = errors
        super().__init__(f"invalid payload for {job}: " + "; ".join(errors))


class MigrationError(CepError):
    """A migration file could not be applied."""
