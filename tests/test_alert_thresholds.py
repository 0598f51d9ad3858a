"""CEP_ALERT_THRESHOLDS: overrides of the thresholds table for the built-in alerting."""

from __future__ import annotations

import pytest

from cep_automation.errors import SettingsError
from cep_automation.ops.thresholds import THRESHOLDS, overridden


def test_overrides_change_one_queue_or_every_threshold_of_an_alert():
    changed = overridden("QueueDepthHigh:leads.limit=500,QueueDepthHigh.for_s=60,BackupMissing=off")
    depth = {t.queue: t for t in changed if t.alert == "QueueDepthHigh"}
    assert depth["leads"].limit == 500 and depth["stats"].limit == 50
    assert {t.for_s for t in depth.values()} == {60}
    assert not any(t.alert == "BackupMissing" for t in changed)
    assert len(changed) == len(THRESHOLDS) - 1
    assert overridden("") == THRESHOLDS


@pytest.mark.parametrize("text", ["Nope.limit=1", "QueueDepthHigh:leads.colour=1", "QueueDepthHigh.limit=many",
                                  "QueueDepthHigh.limit=", "QueueDepthHigh:nowhere=off"])
def test_malformed_overrides_say_what_is_wrong(text):
    with pytest.raises(ValueError, match="QueueDepthHigh|Nope"):
        overridden(text)


def test_the_setting_is_checked_at_start_up(settings_for):
    assert settings_for(cep_alert_thresholds="PoolDown.for_s=300").cep_alert_thresholds == "PoolDown.for_s=300"
    with pytest.raises(SettingsError, match="CEP_ALERT_THRESHOLDS is invalid .*'soon' is not a number"):
        settings_for(cep_alert_thresholds="PoolDown.for_s=soon")
