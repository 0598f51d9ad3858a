"""Importing this package declares every actor on the configured broker.

This is the module the Dramatiq and periodiq command lines load::

    dramatiq cep_automation.actors --queues leads campaigns stats
    periodiq cep_automation.actors
"""

from __future__ import annotations

import sys

import pendulum

from cep_automation.bootstrap import bootstrap
from cep_automation.errors import CepError

# periodiq reads the local time; schedules are UTC whatever the machine's zone.
pendulum.set_local_timezone(pendulum.UTC)

try:
    broker = bootstrap()
except CepError as exc:  # a clear message instead of a traceback from inside the Dramatiq CLI
    sys.exit(f"error: {exc}")

from cep_automation.actors.alerts import alerts_check  # noqa: E402
from cep_automation.actors.backup import backup_daily  # noqa: E402
from cep_automation.actors.campaigns import campaign_sync  # noqa: E402
from cep_automation.actors.dead_letters import dead_letters_auto_retry  # noqa: E402
from cep_automation.actors.digest import digest_daily  # noqa: E402
from cep_automation.actors.gdpr import consent_sync, data_retention, gdpr_erase  # noqa: E402
from cep_automation.actors.history import history_snapshot  # noqa: E402
from cep_automation.actors.leads import lead_created  # noqa: E402
from cep_automation.actors.llm import llm_ingest  # noqa: E402
from cep_automation.actors.meta_leads import meta_leadgen  # noqa: E402
from cep_automation.actors.schedules import schedules_release  # noqa: E402
from cep_automation.actors.sequences import sequence_step  # noqa: E402
from cep_automation.actors.stats import stats_rollup  # noqa: E402

__all__ = ["alerts_check", "backup_daily", "broker", "campaign_sync", "consent_sync", "data_retention",
           "dead_letters_auto_retry", "digest_daily", "gdpr_erase", "history_snapshot", "lead_created", "llm_ingest",
           "meta_leadgen", "schedules_release", "sequence_step", "stats_rollup"]
