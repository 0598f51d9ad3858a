"""A job that crashes with personal data in its payload and its error, for the Sentry test::

    dramatiq cep_automation.actors telemetry_actors --queues leads
"""

from __future__ import annotations

import dramatiq


@dramatiq.actor(actor_name="telemetry.crash", queue_name="leads", max_retries=0, time_limit=30_000)
def crash(email: str, phone: str) -> None:
    """A bug (not one of our errors): dead-lettered at once, reported once."""
    raise RuntimeError(f"could not parse the reply for {email} (phone {phone})")
