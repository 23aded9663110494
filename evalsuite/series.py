"""Checkpoint series: discovery, completeness, incremental tracking, early-signal statistics.

A series is a folder of checkpoints (``checkpoint-<N>``, ``step<N>``,
``global_step<N>``, ``iter_<N>`` …), a glob, or an explicit comma-separated list.
Each checkpoint is keyed by its content fingerprint (``fingerprint.py``), so a
re-run over evaluated checkpoints loads no weights and computes nothing.

Statistics follow FineTasks / HPLT-e and are computed on the **median across
prompt variants** of normalized scores: the max would turn prompt-picking noise
into apparent learning.
"""

from __future__ import annotations

import glob as _glob
import json
import math
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from evalsuite.core.errors import UsageError

_STEP_PATTERNS = [
    re.compile(r"^checkpoint[-_]?(\d+)$", re.I),
    re.compile(r"^global[-_]?step[-_]?(\d+)$", re.I),
    re.compile(r"^step[-_]?(\d+)$", re.I),
    re.compile(r"^iter(?:ation)?[-_]?(\d+)$", re.I),
    re.compile(r"^ckpt[-_]?(\d+)$", re.I),
    re.compile(r"^(\d+)$"),
]
COMPLETE_MARKERS = ("complete", "COMPLETE", ".complete", "DONE")


@dataclass(frozen=True)
class Checkpoint:
    """One saved model of a training run."""

    path: Path
    step: int | None
    """Training step, from the folder name or trainer_state.json (None if unknown)."""

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class Series:
    """Checkpoints of one training run, ordered by step."""

    name: str
    checkpoints: tuple[Checkpoint, ...]


def parse_step(folder: Path) -> int | None:
    """Step of a checkpoint folder: from its name, else ``trainer_state.json``'s ``global_step``."""
    for pat in _STEP_PATTERNS:
        m = pat.match(folder.name)
        if m:
            return int(m.group(1))
    state = folder / "trainer_state.json"
    if state.is_file():
        try:
            v = json.loads(state.read_text(encoding="utf-8")).get("global_step")
            return int(v) if v is not None else None
        except (ValueError, OSError, TypeError):
            return None
    return None


def _looks_like_checkpoint(p: Path) -> bool:
    return p.is_dir() and (parse_step(p) is not None or (p / "config.json").exists())


def discover(spec: str, every: int | None = None, steps: Iterable[int] | None = None,
             include_incomplete: bool = True) -> Series:
    """Find the checkpoints named by ``spec`` (folder, glob, or comma-separated list)."""
    paths: list[Path]
    name: str
    if "," in spec:
        paths = [Path(x.strip()) for x in spec.split(",") if x.strip()]
        name = Path(paths[0]).parent.name or "series"
    elif any(c in spec for c in "*?["):
        paths = [Path(p) for p in sorted(_glob.glob(spec)) if Path(p).is_dir()]
        name = Path(spec).parent.name or "series"
    else:
        root = Path(spec)
        if not root.is_dir():
            raise UsageError(f"{spec}: no such folder")
        if (root / "config.json").exists() and parse_step(root) is None:
            paths = [root]
        else:
            paths = [p for p in sorted(root.iterdir()) if p.is_dir() and parse_step(p) is not None]
        name = root.name
    missing = [p for p in paths if not p.is_dir()]
    if missing:
        raise UsageError(f"checkpoint folder(s) not found: {', '.join(map(str, missing))}")
    cps = [Checkpoint(p, parse_step(p)) for p in paths]
    cps.sort(key=lambda c: (c.step is None, c.step if c.step is not None else 0, c.name))
    if steps is not None:
        wanted = set(steps)
        cps = [c for c in cps if c.step in wanted]
    if every:
        cps = [c for c in cps if c.step is not None and c.step % every == 0]
    if not include_incomplete:
        cps = [c for c in cps if checkpoint_files_present(c.path)]
    if not cps:
        raise UsageError(f"{spec}: no checkpoints found (expected subfolders like checkpoint-<N>, step<N>, global_step<N>)")
    return Series(name, tuple(cps))


def checkpoint_files_present(path: Path) -> bool:
    """config.json and every weight file (all shards of a sharded index) exist."""
    if not (path / "config.json").is_file():
        return False
    for index in list(path.glob("*.safetensors.index.json")) + list(path.glob("pytorch_model*.bin.index.json")):
        try:
            shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
        except (ValueError, KeyError, OSError):
            return False
        return all((path / s).is_file() for s in shards)
    return any(path.glob("*.safetensors")) or any(path.glob("pytorch_model*.bin"))


def snapshot(path: Path) -> tuple[tuple[str, int, int], ...]:
    """(name, size, mtime) of every file: compared across polls to see writing has stopped."""
    out = []
    for p in sorted(path.rglob("*")):
        if p.is_file():
            st = p.stat()
            out.append((str(p.relative_to(path)), st.st_size, st.st_mtime_ns))
    return tuple(out)


@dataclass
class CompletenessWatch:
    """Decides when a checkpoint folder is completely written.

    Complete when a marker file exists (``complete``), or when all expected files are
    present and nothing changed between two consecutive polls.
    """

    last: dict[Path, tuple] = field(default_factory=dict)

    def is_complete(self, path: Path) -> bool:
        if any((path / m).exists() for m in COMPLETE_MARKERS):
            return True
        snap = snapshot(path)
        prev = self.last.get(path)
        self.last[path] = snap
        return checkpoint_files_present(path) and prev is not None and prev == snap


# ---------------------------------------------------------------- statistics

def step_scores(step: int, task: Any) -> StepScores | None:
    """One task of one checkpoint for curves and statistics, from its run record: the one path for
    ``evalsuite signal``, ``track`` and the series page.

    Normalized tasks: per-prompt normalized scores, baseline 0. Tasks whose headline is not normalized
    (bits per byte, perplexity: lower is better) enter with their raw values negated, so that "higher is
    better" holds for every statistic; they have no baseline, so signal-to-noise and non-randomness are
    left undefined for them, and the page plots their raw values.
    """
    agg = getattr(task, "aggregate", None)
    if agg is None or not agg.normalized:
        return None
    if agg.normalizable:
        return StepScores(step, dict(agg.normalized), 0.0)
    from evalsuite.metrics import registry

    d = registry.find(agg.metric)
    sign = -1.0 if d is None or not d.higher_is_better else 1.0
    return StepScores(step, {k: sign * v for k, v in agg.normalized.items()}, None, sign)


def spearman(x: list[float], y: list[float]) -> float | None:
    """Spearman's rho with average ranks; None when undefined (constant input or < 3 points)."""
    from evalsuite.metrics.classification import spearman as rho

    if len(x) < 3:
        return None
    value, flag = rho(x, y)
    return None if flag else value


def kendall_tau(x: list[float], y: list[float]) -> float | None:
    """Kendall's tau-b; None when undefined."""
    n = len(x)
    if n < 2:
        return None
    conc = disc = tx = ty = 0
    for i in range(n):
        for j in range(i + 1, n):
            dx = (x[i] > x[j]) - (x[i] < x[j])
            dy = (y[i] > y[j]) - (y[i] < y[j])
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                tx += 1
            elif dy == 0:
                ty += 1
            elif dx == dy:
                conc += 1
            else:
                disc += 1
    denom = math.sqrt((conc + disc + tx) * (conc + disc + ty))
    return None if denom == 0 else (conc - disc) / denom


@dataclass(frozen=True)
class StepScores:
    """One task at one checkpoint: normalized score per prompt variant."""

    step: int
    by_prompt: dict[str, float]
    baseline: float | None
    """Baseline on the same scale (0 after normalization; None for raw metrics such as bits per byte)."""
    sign: float = 1.0
    """−1 when ``by_prompt`` holds negated raw values of a lower-is-better metric (plot ``sign · value``)."""

    @property
    def median(self) -> float:
        return statistics.median(self.by_prompt.values())

    @property
    def spread(self) -> float:
        """Across-prompt standard deviation (0 with one prompt)."""
        v = list(self.by_prompt.values())
        return statistics.pstdev(v) if len(v) > 1 else 0.0

    @property
    def best_prompt(self) -> str:
        return max(sorted(self.by_prompt), key=lambda p: self.by_prompt[p])


THRESHOLDS = {"monotonicity": 0.5, "snr": 3.0, "non_randomness": 3.0, "prompt_switch_rate": 0.5}


@dataclass(frozen=True)
class Signal:
    """Early-signal statistics of one task over one series."""

    task: str
    steps: list[int]
    medians: list[float]
    monotonicity: float | None
    snr: float | None
    non_randomness: float | None
    """(best median − baseline) / noise."""
    prompt_switch_rate: float | None
    trajectory_cv: float | None
    passes: dict[str, bool]

    def as_dict(self) -> dict[str, Any]:
        return {
            "task": self.task, "steps": self.steps, "medians": self.medians, "monotonicity": self.monotonicity,
            "snr": self.snr, "non_randomness": self.non_randomness, "prompt_switch_rate": self.prompt_switch_rate,
            "trajectory_cv": self.trajectory_cv, "passes": self.passes,
        }


def task_signal(task: str, points: list[StepScores], window: int = 3, seed_std: float | None = None) -> Signal:
    """Statistics over the steps of one series for one task.

    - monotonicity: Spearman of the median score against step;
    - snr: mean (median − baseline) over the final ``window`` checkpoints / noise, where noise is the
      across-seed std when given (FineTasks) else the mean across-prompt std in that window;
    - non_randomness: (best median − baseline) / noise;
    - prompt_switch_rate: share of consecutive checkpoints whose best prompt variant differs;
    - trajectory_cv: std / mean of the medians over steps.
    A task stuck at chance has a median near the baseline, so its snr stays small.
    """
    pts = sorted(points, key=lambda p: p.step)
    steps = [p.step for p in pts]
    med = [p.median for p in pts]
    has_base = all(p.baseline is not None for p in pts)
    base = statistics.fmean(p.baseline for p in pts if p.baseline is not None) if pts and has_base else 0.0
    mono = spearman([float(s) for s in steps], med)
    tail = pts[-window:]
    single_prompt = all(len(p.by_prompt) < 2 for p in pts)
    if (seed_std is None and single_prompt) or not has_base:
        # no across-prompt (or across-seed) noise estimate, or no baseline to stand above:
        # SNR and non-randomness are undefined, not infinite
        tail = []
    noise = seed_std if seed_std is not None else (statistics.fmean(p.spread for p in tail) if tail else 0.0)
    above = statistics.fmean(p.median - (p.baseline or 0.0) for p in tail) if tail else 0.0
    eps = 1e-9
    snr = None if not tail else (above / noise if noise > eps else (math.inf if above > eps else 0.0))
    best = max(med) if med else 0.0
    nonrand = None if not tail else ((best - base) / noise if noise > eps else (math.inf if best - base > eps else 0.0))
    switches = [a.best_prompt != b.best_prompt for a, b in zip(pts, pts[1:]) if len(a.by_prompt) > 1]
    psr = sum(switches) / len(switches) if switches else None
    mean = statistics.fmean(med) if med else 0.0
    cv = (statistics.pstdev(med) / mean) if len(med) > 1 and mean > eps else None
    passes = {
        "monotonicity": mono is not None and mono >= THRESHOLDS["monotonicity"],
        "snr": snr is not None and snr >= THRESHOLDS["snr"],
        "non_randomness": nonrand is not None and nonrand > THRESHOLDS["non_randomness"],
        "prompt_switch_rate": psr is None or psr <= THRESHOLDS["prompt_switch_rate"],
    }
    return Signal(task, steps, med, mono, _finite(snr), _finite(nonrand), psr, cv, passes)


def ranking_consistency(series_scores: dict[str, dict[int, float]]) -> float | None:
    """Mean Kendall tau between the rankings of several series at consecutive common steps."""
    if len(series_scores) < 2:
        return None
    names = sorted(series_scores)
    common = sorted(set.intersection(*(set(v) for v in series_scores.values())))
    taus = []
    for a, b in zip(common, common[1:]):
        t = kendall_tau([series_scores[n][a] for n in names], [series_scores[n][b] for n in names])
        if t is not None:
            taus.append(t)
    return statistics.fmean(taus) if taus else None


def _finite(x: float | None) -> float | None:
    if x is None:
        return None
    if math.isinf(x):
        return 1e9 if x > 0 else -1e9
    return x
