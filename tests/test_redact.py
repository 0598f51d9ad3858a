"""Personal data and secrets are masked in log lines."""

from __future__ import annotations

import pytest

from cep_automation.redact import mask_email, mask_phone, redact


@pytest.mark.parametrize("text, hidden, kept", [
    ("sent to ana.garcia@example.com", "ana.garcia", "a***@example.com"),
    ("phone +34 600 123 456", "600 123", "+34******456"),
    ("phone 600123456", "600123", "******456"),
    ("GET /v18.0/123?access_token=EAAGsecret&fields=id", "EAAGsecret", "access_token=***"),
    ("Authorization: Bearer abc.def-ghi", "abc.def", "Bearer ***"),
])
def test_redact_masks(text, hidden, kept):
    out = redact(text)
    assert hidden not in out and kept in out


@pytest.mark.parametrize("text", ["at 2026-11-25 10:00:00", "id 123456789012", "took 612 ms", "port 6379"])
def test_redact_leaves_dates_ids_and_numbers(text):
    assert redact(text) == text


def test_mask_helpers():
    assert mask_email("Ana@Example.com") == "A***@Example.com"
    assert mask_phone("+34600123456") == "+34******456"
    assert mask_phone("12") == "***"
