"""Our Dramatiq middleware, one class per module; :mod:`cep_automation.broker` sets their order."""

from __future__ import annotations

from cep_automation.middleware.audit import Audit
from cep_automation.middleware.broker_state import BrokerMaintenance
from cep_automation.middleware.dead_letters import DeadLetters
from cep_automation.middleware.delivery_limit import DeliveryLimit
from cep_automation.middleware.fairness import FairFeeder
from cep_automation.middleware.flow_control import FlowControl
from cep_automation.middleware.idempotency import Idempotency
from cep_automation.middleware.job_state import JobState
from cep_automation.middleware.metrics import Metrics
from cep_automation.middleware.ordering import Ordering
from cep_automation.middleware.retries import Retries
from cep_automation.middleware.schedules import StaleTicks
from cep_automation.middleware.validation import PayloadValidation

__all__ = [
    "Audit", "BrokerMaintenance", "DeadLetters", "DeliveryLimit", "FairFeeder", "FlowControl", "Idempotency",
    "JobState", "Metrics", "Ordering", "PayloadValidation", "Retries", "StaleTicks",
]
