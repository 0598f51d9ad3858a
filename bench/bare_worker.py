"""The baseline as a worker module for the Dramatiq CLI (used by ``bench/load_test.py``)::

    dramatiq bare_worker --path bench --queues leads

It reads the same settings as ``cep_automation.actors`` (REDIS_URL, DATABASE_URL, CEP_NAMESPACE and the
integrations'), sets the log level the same way, and declares only the bare ``lead.created``.
"""

from __future__ import annotations

import logging

import bare_leads
import dramatiq

from cep_automation.settings import get_settings

settings = get_settings()
logging.getLogger("cep_automation").setLevel(settings.cep_log_level.upper())
broker = bare_leads.make_broker(settings.redis_url, settings.cep_namespace)
dramatiq.set_broker(broker)
lead_created = bare_leads.declare(broker)
