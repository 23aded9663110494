"""Shared by test_executors.py and test_slurm.py: a 3-checkpoint tiny series and a local reference track."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from evalsuite.runner import RunConfig

STEPS = (0, 30, 90)
TASKS = "demo_lastword_ar,demo_sentiment_ar"


def build_series(root: Path) -> Path:
    """Three checkpoints of one tiny run (hidden 32, 2 layers), trained 0, 30 and 90 steps."""
    from evalsuite.tiny import build_tiny_model

    for s in STEPS:
        build_tiny_model(root / f"checkpoint-{s}", steps=s, hidden=32, layers=2)
    return root


def base_config(out: Path, cache: Path | None = None) -> RunConfig:
    return RunConfig(model="-", tasks=TASKS, output=out, device="cpu", limit=3, cache_dir=cache)


def per_request(out: Path) -> dict[tuple[str, str], float | str | None]:
    """(model fingerprint, request id) → log-likelihood (or generated text), over every samples file."""
    found: dict[tuple[str, str], float | str | None] = {}
    for res in sorted(out.glob("*/results_*.json")):
        rec = json.loads(res.read_text(encoding="utf-8"))
        fp = rec["model"]["fingerprint"]
        for t in rec["tasks"].values():
            for line in (res.parent / t["samples_file"]).read_text(encoding="utf-8").splitlines():
                for r in json.loads(line)["requests"]:
                    found[(fp, r["request_id"])] = r.get("loglikelihood", r.get("generation"))
    return found


def assert_same_numbers(got: Path, want: Path, tol: float = 1e-4) -> None:
    a, b = per_request(got), per_request(want)
    assert a.keys() == b.keys() and a
    for k, v in b.items():
        if isinstance(v, float):
            assert abs(a[k] - v) <= tol, (k, a[k], v)  # type: ignore[operator]
        else:
            assert a[k] == v, k


def result_pairs(out: Path) -> list[tuple[str, str]]:
    """(fingerprint, task) of every result: a sweep that ran a job twice would list a pair twice."""
    pairs = []
    for res in out.glob("*/results_*.json"):
        rec = json.loads(res.read_text(encoding="utf-8"))
        pairs += [(rec["model"]["fingerprint"], t) for t in rec["tasks"]]
    return sorted(pairs)


def wait_for(pred, timeout: float, what: str, step: float = 0.2):  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def require_env(name: str) -> bool:
    return os.environ.get(name) == "1"
