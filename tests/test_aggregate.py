"""Aggregation: hand-computed cases for normalization, spread, ranks, Borda; seeded bootstrap."""

from __future__ import annotations

import numpy as np
import pytest

from evalsuite.aggregate import (
    average_rank,
    borda,
    bootstrap_mean,
    bootstrap_task,
    mad,
    normalize,
    paired_bootstrap,
    ranks,
    spread,
    suite_score,
)


def test_normalize():
    assert normalize(66.0, 33.0) == pytest.approx(100 * 33 / 67)
    assert normalize(20.0, 33.0) == 0.0  # below chance clips to 0
    assert normalize(100.0, 50.0) == 100.0
    assert normalize(-0.3 * 100, None, correlation=True) == 0.0
    assert normalize(0.9, 0.5, higher_is_better=False) == 0.9  # bits per byte stay raw
    assert normalize(None, 10.0) is None


def test_spread_and_sensitivity():
    s = spread({"a": 10.0, "b": 40.0, "c": 12.0, "d": 14.0})
    assert (s.max, s.min, s.range) == (40.0, 10.0, 30.0)
    assert s.median == 13.0 and s.mean == 19.0
    assert s.mad == mad([10, 40, 12, 14]) == 2.0  # |x - 13| = 3, 27, 1, 1 -> median 2
    assert s.best_prompt == "b" and s.sensitive  # range > 15
    calm = spread({"a": 50.0, "b": 52.0, "c": 51.0})
    assert not calm.sensitive and calm.headline("median") == 51.0 and calm.headline("max") == 52.0


def test_ranks_borda_suite():
    table = {"t1": {"A": 80.0, "B": 60.0, "C": 60.0}, "t2": {"A": 10.0, "B": 30.0, "C": None}}
    assert ranks(table["t1"]) == {"A": 1.0, "B": 2.5, "C": 2.5}
    assert average_rank(table) == {"A": (1 + 2) / 2, "B": (2.5 + 1) / 2, "C": (2.5 + 3) / 2}
    # t1: A beats B,C (2), B ties C (.5), C ties B (.5); t2: B beats A and C (2), A beats C (1)
    assert borda(table) == {"A": 3.0, "B": 2.5, "C": 0.5}
    assert suite_score({"t1": 80.0, "t2": 10.0, "t3": 40.0}, {"t1": "x", "t2": "x", "t3": "y"}) == pytest.approx((45 + 40) / 2)


def test_bootstrap_is_reproducible_and_brackets_the_estimate():
    rng = np.random.default_rng(1)
    vals = (rng.random(300) < 0.6) * 100.0
    clusters = [str(i // 3) for i in range(300)]
    a = bootstrap_mean(vals, clusters, n=500, seed=3)
    b = bootstrap_mean(vals, clusters, n=500, seed=3)
    assert a == b and a.low < vals.mean() < a.high


def test_max_over_prompts_baseline_is_biased_upward():
    rng = np.random.default_rng(0)
    n, prompts = 200, 7
    chance = {f"p{i}": np.full(n, 100 / 3) for i in range(prompts)}
    at_chance = {p: (rng.random(n) < 1 / 3) * 100.0 for p in chance}
    ci, expected_max = bootstrap_task(at_chance, chance, [str(i) for i in range(n)], "max", n=300, seed=0)
    assert expected_max > 100 / 3 + 2  # seven lucky draws beat one
    _, expected_median = bootstrap_task(at_chance, chance, [str(i) for i in range(n)], "median", n=300, seed=0)
    assert abs(expected_median - 100 / 3) < 2


def test_paired_bootstrap():
    rng = np.random.default_rng(2)
    a = (rng.random(400) < 0.7) * 100.0
    b = (rng.random(400) < 0.5) * 100.0
    diff, p = paired_bootstrap(a, b, n=1000, seed=0)
    assert diff == pytest.approx(a.mean() - b.mean()) and p < 0.01
    _, p_same = paired_bootstrap(a, a, n=200, seed=0)
    assert p_same == 1.0
