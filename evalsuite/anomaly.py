"""Anomaly guard over a checkpoint series: a collapse to chance between two good neighbours.

A checkpoint whose suite score lies inside the chance interval while both
neighbouring checkpoints lie above it is far more often a corrupted shard read
than a real training event, so it is flagged for a re-check.

Scale: per task, the median across prompt variants of the normalized headline
score (0 = the random baseline, as in the early-signal statistics); the suite
score is the mean over tasks. The chance interval of a task is where a random
guesser lands with 95% probability: up to ``b + 1.96·sqrt(b(1−b)/n)`` on the raw
scale (b the random baseline as a fraction, n examples), normalized like the
score. The suite's upper bound is the mean of its tasks' bounds. Tasks with a
lower-is-better headline (bits per byte) have no chance level and are left out.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalsuite.series import normalized


@dataclass(frozen=True)
class SuitePoint:
    """One checkpoint's suite score and the upper end of its chance interval (normalized scale)."""

    step: int
    score: float
    chance_upper: float


def chance_upper(baseline: float, n: int) -> float:
    """Upper end of the 95% chance interval on the normalized scale, for baseline ``baseline`` (0-100)."""
    if n <= 0 or baseline <= 0 or baseline >= 100:
        return 0.0
    p = baseline / 100.0
    upper = baseline + 100.0 * 1.96 * math.sqrt(p * (1 - p) / n)
    return normalized(min(upper, 100.0), baseline) or 0.0


def task_point(task: dict[str, Any]) -> tuple[float, float] | None:
    """(median normalized score, chance upper bound) of one task entry of a results record."""
    head = task.get("headline_metric")
    scores, uppers = [], []
    for p in task.get("prompts", {}).values():
        m = p.get("metrics", {}).get(head, {})
        v = m.get("value")
        if v is None or not m.get("higher_is_better", True):
            continue
        b = p.get("random_baseline", {}).get(head)
        nv = normalized(v, b)
        if nv is None:
            continue
        scores.append(nv)
        uppers.append(chance_upper(b or 0.0, int(p.get("n") or 0)))
    if not scores:
        return None
    return statistics.median(scores), statistics.fmean(uppers)


def suite_point(step: int, tasks: dict[str, dict[str, Any]]) -> SuitePoint | None:
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


def tasks_by_fingerprint(out_dir: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """Per model fingerprint, per task, the newest results entry in ``out_dir``."""
    from evalsuite.track import _load, _results_files

    by_fp: dict[str, dict[str, dict[str, Any]]] = {}
    for f in sorted(_results_files(out_dir)):  # oldest first, newer overwrite
        rec = _load(f)
        if rec is None:
            continue
        fp = rec.get("model", {}).get("fingerprint")
        for name, t in rec.get("tasks", {}).items():
            by_fp.setdefault(fp, {})[name] = t
    return by_fp


def series_anomalies(steps_fps: list[tuple[int, str]], out_dir: Path, task_names: set[str] | None = None) -> tuple[list[SuitePoint], list[int]]:
    """Suite points of the checkpoints (step, fingerprint) that have results, and the flagged steps."""
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
    from evalsuite.executors.jobs import memo_fingerprint
    from evalsuite.fingerprint import fingerprint

    steps_fps = []
    for cp in series.checkpoints:
        if cp.step is None:
            continue
        fp = memo_fingerprint(out_dir, cp.path) or fingerprint(str(cp.path))
        steps_fps.append((cp.step, fp))
    return series_anomalies(steps_fps, out_dir)
