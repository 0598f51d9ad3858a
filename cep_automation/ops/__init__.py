"""Operations: alert thresholds as data, and the deployment files generated from them."""

from __future__ import annotations

from cep_automation.ops.thresholds import KINDS, SEVERITIES, THRESHOLDS, Threshold

__all__ = ["KINDS", "SEVERITIES", "THRESHOLDS", "Threshold"]
