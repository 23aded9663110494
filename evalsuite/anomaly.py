"""Anomaly guard over a checkpoint series: a collapse to chance between two good neighbours.

A checkpoint whose suite score lies inside the chance interval while both
neighbouring checkpoints lie above it is far more often a corrupted shard read
than a real training event, so it is flagged for a re-check.

Both numbers come from the run record, not from a formula of our own: per task the
headline (max over prompt variants of the normalized score) and the upper end of
its chance interval (``chance_high``: the central 95% of the same statistic for as
many chance-level prompts, see docs/metrics.md). The suite score is the mean of the
task headlines; the suite's chance upper end is the mean of the tasks' upper ends (a
conservative bound for the mean). Tasks that are not normalized (bits per byte,
perplexity) have no chance level and are left out.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HEADLINE = "max"
"""The across-prompt statistic suite scores are built from."""


@dataclass(frozen=True)
class SuitePoint:
    """One checkpoint's suite score and the upper end of its chance interval (normalized scale)."""

    step: int
    score: float
    chance_upper: float


def task_point(task: Any) -> tuple[float, float] | None:
    """(headline, chance interval's upper end) of one ``TaskRecord``; None when it has no chance level."""
    agg = getattr(task, "aggregate", None)
    if agg is None or not agg.normalizable:
        return None
    h = agg.headlines.get(HEADLINE)
    if h is None or h.chance_high is None:
        return None
    return h.value, h.chance_high


def suite_point(step: int, tasks: dict[str, Any]) -> SuitePoint | None:
    pts = [tp for t in tasks.values() if (tp := task_point(t)) is not None]
    if not pts:
        return None
    return SuitePoint(step, statistics.fmean(s for s, _ in pts), statistics.fmean(u for _, u in pts))


def collapsed(points: list[SuitePoint]) -> list[int]:
    """Steps whose score is inside the chance interval while both neighbours are above theirs."""
    pts = sorted(points, key=lambda p: p.step)
    out = []
    for prev, cur, nxt in zip(pts, pts[1:], pts[2:]):
        if cur.score <= cur.chance_upper and prev.score > prev.chance_upper and nxt.score > nxt.chance_upper:
            out.append(cur.step)
    return out


def series_anomalies(steps_fps: list[tuple[int, str]], out_dir: Path, task_names: set[str] | None = None) -> tuple[list[SuitePoint], list[int]]:
    """Suite points of the checkpoints (step, fingerprint) that have results, and the flagged steps."""
    from evalsuite.track import tasks_by_fingerprint

    by_fp = tasks_by_fingerprint(out_dir)
    points = []
    for step, fp in steps_fps:
        tasks = by_fp.get(fp, {})
        if task_names is not None:
            tasks = {k: v for k, v in tasks.items() if k in task_names}
        sp = suite_point(step, tasks)
        if sp is not None:
            points.append(sp)
    return points, collapsed(points)


def series_flags(series: Any, out_dir: Path) -> tuple[list[SuitePoint], list[int]]:
    """Suite points and flagged steps of a ``Series`` (fingerprints from job memos, else hashed here)."""
    from evalsuite.fingerprint import fingerprint, memo_fingerprint

    steps_fps = []
    for cp in series.checkpoints:
        if cp.step is None:
            continue
        fp = memo_fingerprint(out_dir, cp.path) or fingerprint(str(cp.path))
        steps_fps.append((cp.step, fp))
    return series_anomalies(steps_fps, out_dir)
