"""Flow control that Dramatiq lacks, shared by every worker process on every host (state in Redis, Lua).

- :mod:`~cep_automation.flow.throttle`: a rate per key (GCRA), one round trip per try;
- :mod:`~cep_automation.flow.concurrency`: at most N at once per key, with leases a dead holder cannot keep;
- :mod:`~cep_automation.flow.limits`: :class:`Limit` declared as data and :func:`hold`, which waits for a slot
  or postpones the job without using up an attempt.

Integrations take their limits from :func:`cep_automation.flow.limits.hold` (WhatsApp per phone number,
Mailchimp connections per account); see docs/architecture.md, "Flow control".
"""

from cep_automation.flow.limits import Limit, hold

__all__ = ["Limit", "hold"]
