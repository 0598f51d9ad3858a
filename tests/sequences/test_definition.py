"""The sequences file: the shipped one is valid, and every mistake in a school's copy is named with its place."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from cep_automation.errors import SettingsError
from cep_automation.sequences.definition import DEFAULT_FILE, SequenceFileError, Wait, load, parse
from cep_automation.settings import load_settings

MADRID = ZoneInfo("Europe/Madrid")


def test_the_shipped_file_declares_nurture_and_course_start():
    found = load()
    assert [s.name for s in found["nurture"].steps] == ["course_details", "whatsapp_reminder", "last_call"]
    assert [s.wait.days for s in found["nurture"].steps] == [2, 5, 10]
    assert found["course_start"].base == "run_start"
    assert [s.wait.days for s in found["course_start"].steps] == [-7, -1]
    assert all(step.needs_consent for step in found["nurture"].steps)


def test_every_problem_is_listed_with_the_step_it_is_in():
    text = """
[sequences.nurture]
[[sequences.nurture.steps]]
name = "day2"
wait = { days = 2, after = "2d" }
channel = "email"
template = "x"
[[sequences.nurture.steps]]
name = "day5"
wait = { after = "5 weeks" }
channel = "fax"
[[sequences.nurture.steps]]
name = "day9"
wait = { days = 9, at = "10:00" }
channel = "whatsapp"
template = "t"
params = ["{lead.email}"]
[[sequences.nurture.steps]]
name = "day12"
wait = { days = 12, at = "25:00" }
channel = "crm_task"
title = "Call {lead.name}"
[sequences.Bad-Name]
[typo]
"""
    with pytest.raises(SequenceFileError) as caught:
        parse(text, Path("school.toml"))
    message = str(caught.value)
    assert "school.toml" in message
    assert "typo: not a section" in message
    assert "sequences.Bad-Name" in message
    assert "steps[1] (day2).wait" in message and "either after" in message
    assert "steps[2] (day5).wait.after" in message and "a duration such as" in message
    assert "steps[2] (day5).channel" in message
    assert "steps[4] (day12).wait.at" in message
    assert "unknown parameter {lead.email}" in message  # contact details never go into a message body


def test_not_toml_and_missing_file_say_so(tmp_path):
    with pytest.raises(SequenceFileError, match="not valid TOML"):
        parse("[sequences.x\n", Path("f.toml"))
    with pytest.raises(SequenceFileError, match="cannot be read"):
        load(tmp_path / "missing.toml")


def test_a_bad_file_stops_start_up_with_the_settings_error(tmp_path, monkeypatch):
    bad = tmp_path / "seq.toml"
    bad.write_text('[sequences.nurture]\nsteps = [{ name = "a", wait = { after = "2d" }, channel = "email" }]\n')
    with pytest.raises(SettingsError) as caught:
        load_settings(redis_url="redis://x", database_url="postgresql://x", cep_sequences_file=str(bad), _env_file=None)
    assert "CEP_SEQUENCES_FILE" in str(caught.value) and "needs template" in str(caught.value)
    good = tmp_path / "good.toml"
    good.write_text(DEFAULT_FILE.read_text())
    assert load_settings(redis_url="redis://x", database_url="postgresql://x", cep_sequences_file=str(good),
                         _env_file=None).cep_sequences_file == str(good)


def test_waits_at_a_local_time_days_after_the_base():
    base = dt.datetime(2026, 3, 27, 18, 0, tzinfo=dt.UTC)  # Friday before the spring change
    due = Wait(days=2, at=dt.time(10, 0)).due(base, MADRID)
    assert due == dt.datetime(2026, 3, 29, 8, 0, tzinfo=dt.UTC)  # 10:00 CEST, after the clocks went forward
    assert Wait(after="36h").due(base, MADRID) == base + dt.timedelta(hours=36)
    assert Wait(days=-7, at=dt.time(10, 0)).due(dt.datetime(2026, 11, 2, 23, 0, tzinfo=dt.UTC), MADRID) == \
        dt.datetime(2026, 10, 27, 9, 0, tzinfo=dt.UTC)  # 10:00 CET, a week before 3 November (local)
