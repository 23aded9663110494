"""Aggregation: hand-computed cases for normalization, spread, ranks, Borda; seeded bootstrap."""

from __future__ import annotations

import numpy as np
import pytest

from evalsuite.aggregate import (
    PromptInput,
    aggregate_task,
    average_rank,
    borda,
    clip,
    mad,
    normalize,
    paired_bootstrap,
    ranks,
    spread,
    suite_score,
)
from evalsuite.metrics import registry
from evalsuite.metrics.uncertainty import Resampler

ACC, MCC, TER, BPB = (registry.get(m) for m in ("acc", "mcc", "ter", "bits_per_byte"))


def test_normalize_is_one_formula_unclipped():
    assert normalize(66.0, 33.0, ACC) == pytest.approx(100 * 33 / 67)
    assert normalize(20.0, 33.0, ACC) == pytest.approx(100 * (20 - 33) / 67)  # below the baseline: negative, kept
    assert clip(normalize(20.0, 33.0, ACC)) == 0.0  # only a display clips
    assert normalize(100.0, 50.0, ACC) == 100.0
    assert normalize(-30.0, 0.0, MCC) == -30.0
    assert normalize(40.0, 80.0, TER) == pytest.approx(50.0)  # lower is better: best 0, the derangement's TER maps to 0
    assert normalize(0.9, 0.5, BPB) is None  # bits per byte are not normalized
    assert normalize(None, 10.0, ACC) is None


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


def test_resampler_is_reproducible_and_brackets_the_estimate():
    rng = np.random.default_rng(1)
    vals = (rng.random(300) < 0.6) * 100.0
    clusters = [str(i // 3) for i in range(300)]
    a = Resampler(clusters, 500, seed=3).mean(vals)
    b = Resampler(clusters, 500, seed=3).mean(vals)
    assert (a == b).all() and np.quantile(a, 0.025) < vals.mean() < np.quantile(a, 0.975)


def test_chance_of_the_max_is_exact_and_on_the_normalized_scale():
    # XNLI-ar-like: 3 choices, n = 300, 4 prompts at chance: the expected max raw accuracy is 36.14 (exact binomial),
    # i.e. about 4.2 normalized -- the number shown beside a normalized score, not 37 or 38 raw
    rng = np.random.default_rng(0)
    n, k = 300, 4
    inputs = []
    rs = Resampler([str(i) for i in range(n)], 400, seed=1)
    for j in range(k):
        correct = (rng.random(n) < 1 / 3) * 100.0
        inputs.append(PromptInput(f"p{j}", float(correct.mean()), 100 / 3, n, rs.mean(correct), None, (n, 1 / 3)))
    agg = aggregate_task(ACC, inputs)
    h = agg.headlines["max"]
    assert h.chance == pytest.approx(normalize(36.14, 100 / 3, ACC), abs=0.1)
    assert 3.5 < h.chance < 5.0
    assert h.chance_low <= h.value <= h.chance_high  # a chance-level model lies inside its chance interval
    assert h.ci_low <= h.value <= h.ci_high
    med = agg.headlines["median"]
    assert med.chance is None  # no draws were given for the median: nothing invented


def test_chance_from_draws_for_median_and_mean():
    rng = np.random.default_rng(3)
    n = 200
    inputs = [PromptInput(f"p{j}", 50.0, 50.0, n, None, (rng.random((1000, n)) < 0.5).mean(1) * 100.0) for j in range(5)]
    agg = aggregate_task(ACC, inputs)
    assert abs(agg.headlines["median"].chance) < 1.5  # the median of chance prompts sits at the baseline
    assert agg.headlines["max"].chance > 3  # the max of five lucky draws does not


def test_below_chance_prompts_keep_their_spread():
    agg = aggregate_task(ACC, [PromptInput(p, v, 33.0, 300) for p, v in (("a", 32.6), ("b", 31.0), ("c", 32.0), ("d", 31.5))])
    assert all(v < 0 for v in agg.normalized.values())
    assert agg.spread is not None and agg.spread.range > 2  # clipping would have shown four zeros and no spread


def test_paired_bootstrap():
    rng = np.random.default_rng(2)
    a = (rng.random(400) < 0.7) * 100.0
    b = (rng.random(400) < 0.5) * 100.0
    diff, p = paired_bootstrap(a, b, n=1000, seed=0)
    assert diff == pytest.approx(a.mean() - b.mean()) and p < 0.01
    _, p_same = paired_bootstrap(a, a, n=200, seed=0)
    assert p_same == 1.0
