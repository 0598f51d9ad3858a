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


def redact_unguarded(text: str) -> str:
    """The four patterns over every text, as redact() did before its cheap tests."""
    from cep_automation import redact as module

    text = module._SECRET_PARAM.sub(r"\1***", text)
    text = module._BEARER.sub(lambda m: f"{m.group(1)} ***", text)
    text = module._EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    return module._PHONE.sub(lambda m: mask_phone(m.group(1)), text)


def test_the_cheap_tests_before_each_pattern_never_change_what_is_masked():
    import random

    pieces = ["ana.garcia@example.com", "+34 600 123 456", "600123456", "34612345678", "+1 2 3 4 5 6 7 8 9",
              "access_token=EAAG", "KEY=abc", "Bearer abc.def", "BAſIC Zm9v", "Zoho-oauthtoken 1000.x", "oauth  t",
              "2026-11-25", "612 ms", "6379", "+", "@", "=", "7", "x@y.es", "PUT /3.0/lists/x/members/fa95fc1c",
              "→ 200 in 3 ms", "ñandú", " ", "-", "wamid.HBgL", "basic", "99 999 999", "+34-600-123-456"]
    rng = random.Random(1201)
    for _ in range(3000):
        text = "".join(rng.choice(pieces) + rng.choice(["", " ", "&", "/", "'"]) for _ in range(rng.randint(1, 6)))
        assert redact(text) == redact_unguarded(text), text
