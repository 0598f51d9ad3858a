"""A job's limits, declared as data: a :class:`~cep_automation.flow.limits.Limit` and the key that buckets it.

    @job("campaign.sync", limits=[PerKey(Limit("campaign.sync", concurrency=1), key="campaign:{campaign_id}")])

The key is a template filled from the job's payload (``"campus:{campus_id}"``), a payload field's name, or a
function of the payload. The middleware :class:`~cep_automation.middleware.flow_control.FlowControl` takes every
limit of a job before it runs and frees its concurrency slots when it ends.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cep_automation.flow.limits import Limit

UNKEYED = "-"  # the bucket of a message whose payload lacks the key's fields: they share one


@dataclass(frozen=True)
class PerKey:
    """``limit`` applied per value of ``key`` (a template, a field name, or a function of the payload)."""

    limit: Limit
    key: str | Callable[[Mapping[str, Any]], str] = ""

    def bucket(self, payload: Mapping[str, Any]) -> str:
        """This payload's bucket; :data:`UNKEYED` when a field the key names is missing."""
        return str(self.key(payload)) if callable(self.key) else render_key(self.key, payload)


def render_key(template: str, payload: Mapping[str, Any]) -> str:
    """``template`` filled from ``payload`` (``"campus:{campus_id}"``; a bare name is that field's value);
    :data:`UNKEYED` when it is empty or a field it names is missing. Ordering and fairness keys use it too."""
    if not template:
        return UNKEYED
    template = template if "{" in template else "{" + template + "}"
    fields = [name for _, name, _, _ in string.Formatter().parse(template) if name]
    if any(payload.get(name) is None for name in fields):
        return UNKEYED
    return template.format_map(payload)
