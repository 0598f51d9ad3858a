"""Daily spend caps: every paid call is charged here, and a job over a cap waits until the next day.

The caps are data (:class:`Cap`): LLM calls in euros (``LLM_DAILY_CAP_EUR``) and in tokens
(``LLM_DAILY_CAP_TOKENS``), and a budget per paid API (``CEP_SPEND_BUDGETS``, euros or the units an
integration counts). A day is a calendar day in Europe/Madrid. The API an integration or a job calls::

    spend.check("llm")                                  # before a paid call: OverBudget once a cap is reached
    spend.charge("openai", "openai/gpt-4", kind="llm", usd=0.012, tokens=1834)

Over a cap, :func:`check` raises :class:`~cep_automation.errors.OverBudget` (a ``Postponed``: no attempt is
used up) with the seconds until Madrid's midnight, so the job runs again when the day's spend starts at
zero. One alert goes through the alert sinks when a cap reaches 80% and another at 100%, once per day and cap.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import redis

from cep_automation.db.redis_client import get_redis, key
from cep_automation.errors import OverBudget
from cep_automation.records import spend as records
from cep_automation.records.spend import Charge, Totals
from cep_automation.settings import get_settings

logger = logging.getLogger("cep_automation.runtime.spend")
LLM = records.LLM  # the kind of language-model calls, which the LLM caps add up
MADRID = ZoneInfo("Europe/Madrid")
LEVELS = ((1.0, "high"), (0.8, "medium"))  # share of a cap → the alert's severity, highest first
MEASURES = {"cost_eur": "EUR", "tokens": "tokens", "units": "units"}
_BUDGET = re.compile(r"^\s*([\w.-]+)\s*=\s*(\d+(?:\.\d+)?)\s*(units|eur)?\s*$", re.I)


def _now() -> dt.datetime:
    return dt.datetime.now(MADRID)


# The time the caps go by; tests replace it to move to another day without waiting.
clock: Callable[[], dt.datetime] = _now


@dataclass(frozen=True)
class Cap:
    """At most ``limit`` of ``measure`` (cost_eur, tokens or units) a day, over every call of ``kind`` or of
    ``provider`` (exactly one of the two)."""

    name: str
    measure: str
    limit: float
    kind: str | None = None
    provider: str | None = None

    def applies(self, kind: str | None, provider: str | None) -> bool:
        if self.kind is not None:
            return self.kind == kind
        return self.provider is not None and self.provider == provider

    def used(self, totals: Totals) -> float:
        return float(getattr(totals, self.measure))

    def describe(self, used: float) -> str:
        unit = MEASURES[self.measure]
        return f"{self.name}: {used:,.2f} of {self.limit:,.2f} {unit} today ({used / self.limit:.0%})"


def parse_budgets(text: str) -> list[Cap]:
    """``CEP_SPEND_BUDGETS`` ("whatsapp=20,miami=500units") as caps; ValueError names a malformed entry."""
    caps = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        match = _BUDGET.match(item)
        if match is None:
            raise ValueError(f"{item!r}: expected PROVIDER=EUROS or PROVIDER=Nunits")
        provider, amount, unit = match.groups()
        measure = "units" if (unit or "").lower() == "units" else "cost_eur"
        caps.append(Cap(f"{provider} budget", measure, float(amount), provider=provider))
    return caps


def caps() -> list[Cap]:
    """The caps in force (a cap of 0 is no cap)."""
    settings = get_settings()
    found = [Cap("LLM daily cap (EUR)", "cost_eur", settings.llm_daily_cap_eur, kind=LLM),
             Cap("LLM daily cap (tokens)", "tokens", settings.llm_daily_cap_tokens, kind=LLM)]
    return [cap for cap in found + parse_budgets(settings.cep_spend_budgets) if cap.limit > 0]


def today() -> dt.date:
    """The caps' day: today in Europe/Madrid."""
    return clock().astimezone(MADRID).date()


def seconds_until_midnight() -> float:
    """Seconds from now until the next midnight in Europe/Madrid (when the caps start again)."""
    now = clock().astimezone(MADRID)
    midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), MADRID)
    return max(1.0, midnight.timestamp() - now.timestamp())  # in real seconds: a day may have 23 or 25 hours


def check(kind: str | None = None, provider: str | None = None) -> None:
    """Raise :class:`OverBudget` when a cap of ``kind`` or ``provider`` is reached today.

    Raises:
      OverBudget: with ``retry_after`` the seconds until Madrid's midnight.
    """
    for cap, used in _usage(caps(), kind, provider):
        if used >= cap.limit:
            _alert_levels(cap, used)
            raise OverBudget(f"{cap.describe(used)}: waits until midnight Europe/Madrid",
                             retry_after=seconds_until_midnight())


def charge(provider: str, item: str, *, kind: str | None = None, eur: float | None = None,
           usd: float | None = None, tokens: int = 0, units: float = 0.0, message_id: str | None = None,
           job: str | None = None) -> None:
    """Record one paid call (``eur``, or ``usd`` converted at ``CEP_USD_EUR_RATE``) and alert a cap it brings to
    80% or 100%. ``kind`` defaults to ``provider``; language-model calls are ``kind="llm"``."""
    if eur is None:
        eur = (usd or 0.0) * get_settings().cep_usd_eur_rate
    records.record(Charge(kind or provider, provider, item, round(eur, 6), tokens, units, usd), today(),
                   job=job, message_id=message_id)
    for cap, used in _usage(caps(), kind or provider, provider):
        _alert_levels(cap, used)


def usage_of_caps() -> list[tuple[Cap, float]]:
    """Every cap in force, with how much of it is used today."""
    return [pair for cap in caps() for pair in _usage([cap], cap.kind, cap.provider)]


def _usage(found: Iterable[Cap], kind: str | None, provider: str | None) -> list[tuple[Cap, float]]:
    """Each cap that applies, with how much of it is used today (one read per kind or provider)."""
    day, totals, result = today(), dict[tuple[str, str], Totals](), []
    for cap in found:
        if not cap.applies(kind, provider):
            continue
        scope = ("kind", cap.kind) if cap.kind is not None else ("provider", cap.provider or "")
        if scope not in totals:
            totals[scope] = records.day_totals(day, **{scope[0]: scope[1]})
        result.append((cap, cap.used(totals[scope])))
    return result


def _alert_levels(cap: Cap, used: float) -> None:
    """Send the highest level ``used`` has reached, once per day and cap (across processes)."""
    for share, severity in LEVELS:
        if used >= share * cap.limit:
            if _first_time(cap, share):
                _send(cap, used, share, severity)
            return


def _first_time(cap: Cap, share: float) -> bool:
    try:
        return bool(get_redis().set(key("spend", "alerted", today().isoformat(), cap.name, f"{share:g}"), "1",
                                    nx=True, ex=2 * 24 * 3600))
    except redis.RedisError as exc:  # better a second alert than none (the sinks' collapsing still applies)
        logger.warning("cannot note the spend alert in Redis (%s); sending it", type(exc).__name__)
        return True


def _send(cap: Cap, used: float, share: float, severity: str) -> None:
    from cep_automation.runtime import integrations
    from cep_automation.runtime.alerts import send_alert

    what = "reached" if share >= 1 else f"at {share:.0%}"
    waits = "; paid calls wait until midnight Europe/Madrid" if share >= 1 else ""
    send_alert(integrations.registry(), severity, f"Spend {what}: {cap.name}", cap.describe(used) + waits,
               rule=f"spend:{cap.name}", day=today().isoformat())
