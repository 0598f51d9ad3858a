"""The plugin SDK: everything a plugin package imports, from one place.

A plugin implements the hooks in :mod:`~cep_automation.plugins.hookspecs` with :data:`hookimpl`
and registers integrations: subclasses of a kind (:class:`CRM`, :class:`Alerts`, …), usually
through :class:`HttpIntegration`. Methods raise :class:`TransientError` for what is worth retrying
and :class:`PermanentError` for what is not. The manager and registry that load plugins live here
too. See ``docs/plugins.md``.
"""

from __future__ import annotations

from cep_automation.errors import CepError, PermanentError, TransientError
from cep_automation.plugins.erasure import DataSubject, ErasureUnsupported
from cep_automation.plugins.hookspecs import Register, hookimpl, hookspec
from cep_automation.plugins.http import (
    CONNECT_TIMEOUT_S,
    READ_TIMEOUT_S,
    Classifier,
    HttpClient,
    HttpIntegration,
    retry_after_seconds,
)
from cep_automation.plugins.integration import KINDS, Integration
from cep_automation.plugins.kinds import (
    CRM,
    LLM,
    Ads,
    Alerts,
    Analytics,
    CampaignMetrics,
    Completion,
    Contact,
    EmailMarketing,
    Messaging,
    Storage,
    TransactionalEmail,
)
from cep_automation.plugins.manager import (
    GROUP,
    describe_plugins,
    get_plugin_manager,
    load_plugins,
    reset_plugins,
)
from cep_automation.plugins.registry import Registry, collect_integrations
from cep_automation.redact import mask_email, mask_phone, redact
from cep_automation.settings import Settings

__all__ = [
    "CONNECT_TIMEOUT_S", "CRM", "GROUP", "KINDS", "LLM", "READ_TIMEOUT_S", "Ads", "Alerts", "Analytics",
    "CampaignMetrics", "CepError", "Classifier", "Completion", "Contact", "DataSubject", "EmailMarketing",
    "ErasureUnsupported", "HttpClient",
    "HttpIntegration", "Integration", "Messaging", "PermanentError", "Register", "Registry", "Settings", "Storage",
    "TransactionalEmail", "TransientError", "collect_integrations", "describe_plugins", "get_plugin_manager",
    "hookimpl", "hookspec", "load_plugins", "mask_email", "mask_phone", "redact", "reset_plugins",
    "retry_after_seconds",
]
