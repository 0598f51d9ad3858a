"""Retry delay curves: exponential, linear, fixed and steps, capped, with bounded jitter."""

from __future__ import annotations

import random

import pytest

from cep_automation.backoff import RATE_LIMITED, Backoff, exponential, fixed, linear, steps


@pytest.mark.parametrize("curve, expected", [
    (exponential(2_000), [2_000, 4_000, 8_000, 16_000]),
    (exponential(60_000, cap_ms=120_000), [60_000, 120_000, 120_000]),
    (linear(1_000), [1_000, 2_000, 3_000]),
    (fixed(30_000), [30_000, 30_000]),
    (RATE_LIMITED, [5_000, 15_000, 60_000, 60_000]),
])
def test_nominal_delays(curve, expected):
    assert [curve.nominal_ms(n) for n in range(1, len(expected) + 1)] == expected


def test_jitter_stays_within_its_bound_and_spreads():
    rng = random.Random(7)
    draws = [exponential(10_000).delay_ms(1, rng) for _ in range(1000)]
    assert 9_000 <= min(draws) and max(draws) <= 11_000
    assert max(draws) - min(draws) > 1_000  # not in lockstep


@pytest.mark.parametrize("make, message", [
    (lambda: Backoff("random", 1000), "not one of exponential"),
    (lambda: Backoff("fixed", 0), "0 < base_ms"),
    (lambda: Backoff("fixed", 1000, jitter=0.9), "jitter must be between"),
    (lambda: steps(), "at least one step"),
    (lambda: exponential(1000).nominal_ms(0), "counted from 1"),
])
def test_bad_curves_say_what_is_wrong(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_describe():
    assert exponential(2_000).describe(3) == "2 s, 4 s, 8 s"
    assert steps(30_000, 120_000, 300_000).describe(3) == "30 s, 2 min, 5 min"
