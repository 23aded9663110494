"""``evalsuite compare A B``: is model A better than model B, task by task?

A joint paired bootstrap: clusters of examples are resampled once per replicate and applied to
both models and every prompt; in each replicate each model's best prompt is chosen again (so
the winner's curse of picking the best prompt is inside the interval), the headlines are
normalized with each run's own trivial baseline, and their difference is recorded. The interval
is the central 95% of those differences; the p-value is twice the share on the other side of 0.
With one shared prompt and no clusters, McNemar's exact test on accuracy is printed beside it.
Only runs evaluated on identical example ids are compared.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from evalsuite.aggregate import ALPHA, normalize, p_value
from evalsuite.core.errors import UsageError
from evalsuite.metrics import registry
from evalsuite.metrics.classification import confusion, f1_from_confusion, macro_f1_from_confusion, mcc_from_confusion
from evalsuite.metrics.uncertainty import Resampler, seed_of
from evalsuite.record import RunRecord, TaskRecord, read_record, samples_path

_CORPUS_MC = {"f1_macro", "f1_binary", "mcc"}


@dataclass(frozen=True)
class TaskComparison:
    task: str
    metric: str
    a: float | None
    """Headline (max over prompts, normalized) of A."""
    b: float | None
    diff: float | None
    ci: tuple[float, float] | None
    p: float | None
    n: int
    mcnemar_p: float | None = None
    note: str = ""


def _confusion_stat(metric: str, k: int, positive: int | None) -> Callable[[np.ndarray, np.ndarray], float]:
    def f(g: np.ndarray, p: np.ndarray) -> float:
        c = confusion(g, p, k)
        match metric:
            case "f1_macro":
                return 100.0 * macro_f1_from_confusion(c)
            case "f1_binary":
                return 100.0 * float(f1_from_confusion(c)[0][positive or 0])
            case _:
                return 100.0 * mcc_from_confusion(c)
    return f


def _load_samples(path: Path, rec_file: Path, t: TaskRecord) -> dict[str, dict[str, dict[str, Any]]]:
    """prompt id → example id → sample record."""
    sp = samples_path(rec_file, t.samples_file)
    if sp is None:
        raise UsageError(f"{rec_file}: task {t.headline_metric}: its samples file is missing, so it cannot be compared")
    out: dict[str, dict[str, dict[str, Any]]] = {}
    with open(sp, encoding="utf-8") as f:
        for line in f:
            s = json.loads(line)
            out.setdefault(str(s.get("prompt_id")), {})[str(s.get("example_id"))] = s
    return out


def _per_prompt(metric: str, t: TaskRecord, samples: dict[str, dict[str, dict[str, Any]]], ids: list[str]
                ) -> dict[str, Callable[[np.ndarray], float]]:
    """Per prompt, the headline metric as a function of resampled example indices (raw scale)."""
    fns: dict[str, Callable[[np.ndarray], float]] = {}
    for pid, by_ex in samples.items():
        rows = [by_ex[e] for e in ids]
        if metric in _CORPUS_MC:
            labels = t.spec.get("labels") or []
            pos = next((labels.index(m["positive"]) for m in t.spec.get("metrics", [])
                        if isinstance(m, dict) and m.get("name") == metric and m.get("positive") in labels), None)
            g = np.array([int(r["gold"]) for r in rows])
            p = np.array([int(r["prediction"]) for r in rows])
            stat = _confusion_stat(metric, max(len(labels), int(max(g.max(), p.max())) + 1), pos)
            fns[pid] = lambda idx, g=g, p=p, stat=stat: stat(g[idx], p[idx])
        else:
            v = np.array([float((r.get("metrics") or {}).get(metric, math.nan)) for r in rows])
            if np.isnan(v).any():
                raise UsageError(f"{metric} is a corpus-level metric without per-example values: no paired comparison")
            fns[pid] = lambda idx, v=v: float(v[idx].mean())
    return fns


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (A right/B wrong = b, the reverse = c)."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def _example_ids(samples: dict[str, dict[str, dict[str, Any]]]) -> set[str]:
    sets = [set(x) for x in samples.values()]
    return set.intersection(*sets) if sets else set()


class Side:
    """One model's run of one task, ready for resampling: per-prompt metric functions and baselines."""

    def __init__(self, results_file: Path, t: TaskRecord):
        self.t = t
        self.metric = t.headline_metric
        self.samples = _load_samples(results_file, results_file, t)
        self.ids = _example_ids(self.samples)
        self.fns: dict[str, Callable[[np.ndarray], float]] = {}

    def prepare(self, ids: list[str]) -> None:
        self.fns = _per_prompt(self.metric, self.t, self.samples, ids)

    def head(self, idx: np.ndarray) -> float:
        """The normalized max over prompts on the examples ``idx`` (best prompt chosen on these examples)."""
        d = registry.get(self.metric)
        vals = []
        for pid, f in self.fns.items():
            m = self.t.prompts.get(pid)
            base = m.metrics[self.metric].baseline if m is not None and self.metric in m.metrics else None
            v = normalize(f(idx), base, d)
            if v is not None:
                vals.append(v)
        return max(vals) if vals else math.nan


def paired_draws(name: str, sides: list[Side], n_boot: int) -> tuple[list[float], list[np.ndarray], int] | str:
    """Headline and bootstrap draws of each side on the same resamples; or why they cannot be paired."""
    ids_sets = [s.ids for s in sides]
    if not ids_sets[0] or any(x != ids_sets[0] for x in ids_sets):
        return "the runs were not evaluated on identical example ids: not compared"
    ids = sorted(ids_sets[0])
    first = next(iter(sides[0].samples.values()))
    clusters = [str(first[e].get("cluster", e)) for e in ids]
    for s in sides:
        s.prepare(ids)
    everything = np.arange(len(ids))
    rs = Resampler(clusters, n_boot, seed_of(name, "compare"))
    idxs = [np.concatenate([rs.members[c] for c in draw]) for draw in rs.draws]
    return ([s.head(everything) for s in sides], [np.array([s.head(i) for i in idxs]) for s in sides], len(ids))


def compare_task(name: str, a: tuple[Path, RunRecord], b: tuple[Path, RunRecord], n_boot: int = 2000) -> TaskComparison:
    ta, tb = a[1].tasks[name], b[1].tasks[name]
    metric = ta.headline_metric
    d = registry.find(metric)
    if metric != tb.headline_metric or d is None or not d.normalizable:
        return TaskComparison(name, metric, None, None, None, None, None, 0, note="headline metrics differ or are not normalized")
    sa, sb = Side(a[0], ta), Side(b[0], tb)
    got = paired_draws(name, [sa, sb], n_boot)
    if isinstance(got, str):
        return TaskComparison(name, metric, None, None, None, None, None, 0, note=got)
    (ha, hb), (da, db), n = got
    arr = da - db
    lo, hi = (float(x) for x in np.quantile(arr, [ALPHA / 2, 1 - ALPHA / 2]))
    mc = None
    clusters_unique = len({str(r.get("cluster", e)) for e, r in next(iter(sa.samples.values())).items()}) == len(sa.ids)
    if len(sa.fns) == 1 and set(sa.fns) == set(sb.fns) and clusters_unique and metric.startswith("acc"):
        pid = next(iter(sa.fns))
        ids = sorted(sa.ids)
        ra = [float(sa.samples[pid][e]["metrics"][metric]) > 0 for e in ids]
        rb = [float(sb.samples[pid][e]["metrics"][metric]) > 0 for e in ids]
        mc = mcnemar_exact(sum(x and not y for x, y in zip(ra, rb)), sum(y and not x for x, y in zip(ra, rb)))
    return TaskComparison(name, metric, ha, hb, ha - hb, (lo, hi), p_value(arr), n, mc)


def compare(path_a: Path, path_b: Path, n_boot: int = 2000) -> list[TaskComparison]:
    """Every task the two results files share."""
    a, b = read_record(path_a), read_record(path_b)
    shared = sorted(set(a.tasks) & set(b.tasks))
    if not shared:
        raise UsageError(f"{path_a} and {path_b} share no task")
    return [compare_task(t, (path_a, a), (path_b, b), n_boot) for t in shared]
