"""Personal data under the GDPR/RGPD: erasure, access export, retention, consent (docs/gdpr.md).

Code that needs no broker, like ``domain/``: the jobs that use it are in ``actors/gdpr.py``.
"""

from __future__ import annotations

from cep_automation.gdpr.consent import ConsentChange, LeadErased, LeadNotFound, record_consent
from cep_automation.gdpr.database import erase_from_database
from cep_automation.gdpr.export import export_subject
from cep_automation.gdpr.identifiers import IdentifierError, keyed_hash, normalize
from cep_automation.gdpr.needles import Needles
from cep_automation.gdpr.reapply import reapply
from cep_automation.gdpr.records import Erasure, load_erasure, open_erasure
from cep_automation.gdpr.redis_store import erase_from_redis
from cep_automation.gdpr.retention import run_retention
from cep_automation.gdpr.sequences import cancel_pending_sequence_steps
from cep_automation.gdpr.subjects import Subject, find_subject

__all__ = [
    "ConsentChange", "Erasure", "IdentifierError", "LeadErased", "LeadNotFound", "Needles", "Subject",
    "cancel_pending_sequence_steps", "erase_from_database", "erase_from_redis", "export_subject", "find_subject",
    "keyed_hash", "load_erasure", "normalize", "open_erasure", "reapply", "record_consent", "run_retention",
]
