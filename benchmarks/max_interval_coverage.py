"""Coverage of the max-over-prompts interval (``aggregate.aggregate_task``), by simulation.

The estimand is θ_max, the maximum over prompts of each prompt's population accuracy. Each
replication draws n examples whose per-prompt correctness is correlated across prompts
(a Gaussian copula with correlation ρ), scores them through the same code the harness uses
(``metrics.uncertainty.Resampler`` for the bootstrap, ``aggregate.aggregate_task`` for the
interval), and records whether the interval of the normalized max covers normalized θ_max, its
width, and the width of a single prompt's 95% interval (for the ≤ 1.5× width target).

    python benchmarks/max_interval_coverage.py            # ≥ 1,000 replications per scenario
    python benchmarks/max_interval_coverage.py --reps 200 --quick

Writes ``benchmarks/results/max-interval-coverage-<time>.{json,md}``. A seeded 200-replication
version runs in the test suite (tests/test_numbers.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evalsuite.aggregate import PromptInput, aggregate_task  # noqa: E402
from evalsuite.metrics import registry  # noqa: E402
from evalsuite.metrics.uncertainty import Resampler  # noqa: E402

BASELINE = 100 / 3  # three-way multiple choice


@dataclass(frozen=True)
class Scenario:
    name: str
    thetas: tuple[float, ...]
    rho: float
    n: int


@dataclass(frozen=True)
class Outcome:
    scenario: str
    n: int
    rho: float
    reps: int
    coverage: float
    miss_above: float
    """Share of replications whose interval lies entirely above θ_max."""
    mean_width: float
    single_width: float
    width_ratio: float
    contains_headline: float


def _norm_ppf(p: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(p)


def simulate(s: Scenario, reps: int, boot: int, seed: int = 0) -> Outcome:
    acc = registry.get("acc")
    rng = np.random.default_rng(seed)
    cut = np.array([_norm_ppf(t) for t in s.thetas])
    k = len(s.thetas)
    theta_max = 100.0 * (max(s.thetas) - BASELINE / 100) / (1 - BASELINE / 100)
    clusters = [str(i) for i in range(s.n)]
    cover = above = contains = 0
    widths, singles = [], []
    for r in range(reps):
        u = rng.standard_normal((s.n, 1))
        e = rng.standard_normal((s.n, k))
        z = np.sqrt(s.rho) * u + np.sqrt(1 - s.rho) * e
        correct = (z < cut[None, :]) * 100.0  # n × k
        rs = Resampler(clusters, boot, seed=int(rng.integers(0, 2**31)))
        inputs = [PromptInput(f"p{j}", float(correct[:, j].mean()), BASELINE, s.n, rs.mean(correct[:, j])) for j in range(k)]
        agg = aggregate_task(acc, inputs)
        h = agg.headlines["max"]
        assert h.ci_low is not None and h.ci_high is not None
        cover += h.ci_low <= theta_max <= h.ci_high
        above += h.ci_low > theta_max
        contains += h.ci_low <= h.value <= h.ci_high
        widths.append(h.ci_high - h.ci_low)
        best = int(np.argmax(correct.mean(0)))
        d = 100.0 * (rs.mean(correct[:, best]) - BASELINE) / (100 - BASELINE)
        lo, hi = np.quantile(d, [0.025, 0.975])
        singles.append(hi - lo)
    mw, sw = float(np.mean(widths)), float(np.mean(singles))
    return Outcome(s.name, s.n, s.rho, reps, cover / reps, above / reps, mw, sw, mw / sw, contains / reps)


def scenarios(ns: tuple[int, ...] = (100, 300, 2490)) -> list[Scenario]:
    out = []
    for n in ns:
        for rho in (0.0, 0.6):
            out.append(Scenario("4 prompts tied at 40%", (0.40, 0.40, 0.40, 0.40), rho, n))
            out.append(Scenario("separated 47/44/40/36%", (0.47, 0.44, 0.40, 0.36), rho, n))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=1000)
    ap.add_argument("--boot", type=int, default=1000)
    ap.add_argument("--quick", action="store_true", help="n = 100 and 300 only")
    args = ap.parse_args()
    t0 = time.perf_counter()
    rows = [simulate(s, args.reps, args.boot, seed=i) for i, s in enumerate(scenarios((100, 300) if args.quick else (100, 300, 2490)))]
    took = time.perf_counter() - t0
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H-%M-%S")
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"max-interval-coverage-{stamp}.json").write_text(
        json.dumps({"reps": args.reps, "boot": args.boot, "seconds": round(took, 1), "rows": [asdict(r) for r in rows]}, indent=2) + "\n")
    lines = [f"# Max-over-prompts interval coverage ({args.reps} replications per scenario, {args.boot} bootstrap resamples, "
             f"{took:.0f} s)", "",
             "| scenario | n | ρ | coverage of θ_max | interval above θ_max | mean width | single-prompt width | ratio | holds headline |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.scenario} | {r.n} | {r.rho} | {100 * r.coverage:.1f}% | {100 * r.miss_above:.1f}% | {r.mean_width:.2f} | "
                     f"{r.single_width:.2f} | {r.width_ratio:.2f} | {100 * r.contains_headline:.0f}% |")
    (out / f"max-interval-coverage-{stamp}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
