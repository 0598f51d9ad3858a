"""Marketing hours: when a message may reach a lead (09:00–21:00 Europe/Madrid, never on a holiday).

A step due outside the window waits for its next opening. Times are computed in the zone's wall clock with
``zoneinfo``, so a window opens at 09:00 local on both sides of a DST change; an instant in the skipped hour
of a spring change is normalized through UTC (``next_open`` returns a real instant, never a wall time that does
not exist).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
LOOK_AHEAD_DAYS = 400  # a holiday list cannot close the window for longer than this


@dataclass(frozen=True)
class MarketingHours:
    """``opens``–``closes`` local time in ``zone``, every day but ``holidays``."""

    zone: dt.tzinfo
    opens: dt.time
    closes: dt.time
    holidays: frozenset[dt.date] = frozenset()

    def is_open(self, when: dt.datetime) -> bool:
        local = when.astimezone(self.zone)
        return local.date() not in self.holidays and self.opens <= local.time().replace(tzinfo=None) < self.closes

    def next_open(self, when: dt.datetime) -> dt.datetime:
        """``when`` itself if the window is open then, else the next opening (an aware instant in UTC: aware
        datetimes sharing a zone compare by wall time, which is wrong across a DST change)."""
        when = when.astimezone(dt.UTC)
        if self.is_open(when):
            return when
        local = when.astimezone(self.zone)
        day = local.date()
        if local.time().replace(tzinfo=None) >= self.closes:
            day += dt.timedelta(days=1)
        for _ in range(LOOK_AHEAD_DAYS):
            if day not in self.holidays:
                opening = _instant(day, self.opens, self.zone)
                if opening >= when:
                    return opening
            day += dt.timedelta(days=1)
        raise ValueError(f"marketing hours never open in the {LOOK_AHEAD_DAYS} days after {when:%Y-%m-%d}")

    def local_at(self, day: dt.date, at: dt.time) -> dt.datetime:
        return _instant(day, at, self.zone)


def _instant(day: dt.date, at: dt.time, zone: dt.tzinfo) -> dt.datetime:
    """The instant (UTC) of a wall-clock time; one in a spring-forward gap moves past the gap."""
    naive = dt.datetime.combine(day, at)
    aware = naive.replace(tzinfo=zone)
    return aware.astimezone(dt.UTC)


def parse_hours(text: str) -> tuple[dt.time, dt.time]:
    """``"09:00-21:00"`` → (09:00, 21:00); ``ValueError`` saying what is expected."""
    match = HOURS.match(text)
    if not match:
        raise ValueError("marketing hours look like 09:00-21:00")
    h1, m1, h2, m2 = (int(group) for group in match.groups())
    if h2 == 24 and m2 == 0:
        h2, m2 = 23, 59
    if not (0 <= h1 < 24 and 0 <= h2 < 24 and m1 < 60 and m2 < 60):
        raise ValueError("marketing hours look like 09:00-21:00 (hours 00-24, minutes 00-59)")
    opens, closes = dt.time(h1, m1), dt.time(h2, m2, 59 if (h2, m2) == (23, 59) else 0)
    if closes <= opens:
        raise ValueError("marketing hours must close after they open on the same day")
    return opens, closes


def parse_holidays(text: str) -> frozenset[dt.date]:
    """``"2026-12-25,2027-01-01"`` → dates; ``ValueError`` naming the bad one."""
    found = set()
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            found.add(dt.date.fromisoformat(item))
        except ValueError:
            raise ValueError(f"{item!r} is not a date like 2026-12-25") from None
    return frozenset(found)


def zone_named(name: str) -> dt.tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not a time zone name such as Europe/Madrid") from None


def marketing_hours() -> MarketingHours:
    """The configured window (``CEP_MARKETING_HOURS``, ``CEP_MARKETING_TIMEZONE``, ``CEP_MARKETING_HOLIDAYS``)."""
    from cep_automation.settings import get_settings

    settings = get_settings()
    opens, closes = parse_hours(settings.cep_marketing_hours)
    return MarketingHours(zone_named(settings.cep_marketing_timezone), opens, closes,
                          parse_holidays(settings.cep_marketing_holidays))
