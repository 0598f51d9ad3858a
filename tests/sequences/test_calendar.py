"""Marketing hours: 09:00-21:00 Europe/Madrid, never on a holiday, right on both sides of each DST change."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from cep_automation.sequences.calendar import MarketingHours, parse_holidays, parse_hours, zone_named

MADRID = ZoneInfo("Europe/Madrid")
HOURS = MarketingHours(MADRID, dt.time(9), dt.time(21), frozenset({dt.date(2026, 12, 25)}))


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def test_open_inside_the_window_only():
    assert HOURS.is_open(utc(2026, 12, 1, 8, 0))  # 09:00 CET
    assert not HOURS.is_open(utc(2026, 12, 1, 7, 59))
    assert not HOURS.is_open(utc(2026, 12, 1, 20, 0))  # 21:00 CET: closed
    assert HOURS.next_open(utc(2026, 12, 1, 12, 0)) == utc(2026, 12, 1, 12, 0)


def test_a_step_due_at_night_waits_for_the_morning_and_holidays_are_skipped():
    assert HOURS.next_open(utc(2026, 12, 1, 22, 30)) == utc(2026, 12, 2, 8, 0)
    assert HOURS.next_open(utc(2026, 12, 2, 3, 0)) == utc(2026, 12, 2, 8, 0)
    assert HOURS.next_open(utc(2026, 12, 24, 21, 0)) == utc(2026, 12, 26, 8, 0)  # not on Christmas


def test_the_last_sunday_of_march():
    # 29 March 2026: 02:00 CET becomes 03:00 CEST. The night before, 09:00 is 08:00 UTC; that morning, 07:00 UTC.
    assert HOURS.next_open(utc(2026, 3, 28, 21, 0)) == utc(2026, 3, 29, 7, 0)
    assert HOURS.is_open(utc(2026, 3, 29, 7, 0)) and not HOURS.is_open(utc(2026, 3, 29, 6, 59))
    assert HOURS.next_open(utc(2026, 3, 29, 19, 30)) == utc(2026, 3, 30, 7, 0)  # 21:30 CEST: closed


def test_the_last_sunday_of_october():
    # 25 October 2026: 03:00 CEST becomes 02:00 CET. 09:00 is 07:00 UTC the day before and 08:00 UTC that day.
    assert HOURS.next_open(utc(2026, 10, 24, 20, 0)) == utc(2026, 10, 25, 8, 0)
    assert not HOURS.is_open(utc(2026, 10, 25, 7, 30))  # 08:30 CET
    assert HOURS.is_open(utc(2026, 10, 24, 7, 30))  # 09:30 CEST the day before
    assert HOURS.next_open(utc(2026, 10, 25, 20, 0)) == utc(2026, 10, 26, 8, 0)


def test_a_window_opening_inside_the_skipped_hour_opens_after_it():
    night = MarketingHours(MADRID, dt.time(2, 30), dt.time(5))
    assert night.next_open(utc(2026, 3, 28, 23, 0)) == utc(2026, 3, 29, 1, 30)  # 03:30 CEST: the first real instant


def test_settings_are_parsed_with_clear_errors():
    assert parse_hours("09:00-21:00") == (dt.time(9), dt.time(21))
    assert parse_hours("00:00-24:00")[1] == dt.time(23, 59, 59)
    for bad in ("9-21", "21:00-09:00", "09:00-25:00"):
        with pytest.raises(ValueError, match="marketing hours"):
            parse_hours(bad)
    assert parse_holidays("2026-12-25, 2027-01-01") == {dt.date(2026, 12, 25), dt.date(2027, 1, 1)}
    with pytest.raises(ValueError, match="'25/12' is not a date"):
        parse_holidays("25/12")
    with pytest.raises(ValueError, match="not a time zone"):
        zone_named("Madrid")
