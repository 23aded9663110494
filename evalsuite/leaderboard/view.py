"""LeaderboardView: every number, order and coordinate of the site, computed here.

Templates only format what this module produces (no arithmetic in templates). Every
number comes from the typed run record (``record.read_record``): the normalized score, its
interval and its chance were computed once, by ``aggregate.aggregate_task``, at scoring
time — this module picks runs, ranks models and formats, and never re-derives a score.
Unreadable or schema-invalid result files are skipped and listed, never fatal.
lm-eval ``results_*.json`` files are imported beside evalsuite runs: a value enters a
column only when its metric is the column's metric (normalized with that column's
baseline); otherwise it is shown raw, marked, and left out of ranks and suite scores.
"""

from __future__ import annotations

import fnmatch
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evalsuite.aggregate import Spread, average_rank, borda, clip, normalize, p_value, ranks, spread, suite_score
from evalsuite.core.errors import EvalsuiteError
from evalsuite.leaderboard.paths import slugify, task_slug, unique_slugs
from evalsuite.leaderboard.spec import LeaderboardSpec
from evalsuite.metrics import registry
from evalsuite.record import (SCHEMA, SCHEMA_V1, HeadlineRecord, MetricRecord, ModelRecord, PromptRecord, RecordError,
                              RunRecord, TaskRecord, from_dict, samples_path)

@dataclass(frozen=True)
class Cell:
    """A table cell: ``value`` sorts, ``text`` shows, ``title`` explains on hover."""

    value: float | None
    text: str
    title: str = ""


@dataclass(frozen=True)
class PromptRow:
    prompt_id: str
    template: str
    n: int
    raw: float | None
    baseline: float | None
    baseline_kind: str
    normalized: float | None
    """Unclipped."""


@dataclass(frozen=True)
class Glyph:
    """Inline SVG of a task's prompt spread: one dot per prompt, the headline, the CI whisker (0–100 → 0–100 px)."""

    dots: tuple[tuple[float, str], ...]
    head: float | None
    ci: tuple[float, float] | None


@dataclass(frozen=True)
class RunRef:
    """One run of a task that the leaderboard saw for a model."""

    run_file: str
    """Results file, relative to the results folder it was found in."""
    created: str
    n: int
    n_full: int | None
    config: str
    """Prompts, shots and limit of the run, as text."""
    used: bool


@dataclass
class TaskResult:
    task: str
    title: str
    category: str
    metric: str
    higher_is_better: bool
    normalizable: bool
    prompts: dict[str, PromptRow]
    spread: Spread | None
    headline: HeadlineRecord | None
    """The leaderboard's statistic across prompts (normalized scale; raw for bits per byte)."""
    score: float | None
    """``headline.value`` when the value may be ranked and averaged (comparable, normalized); else None."""
    display: float | None
    """What the cell shows (the headline, or an imported raw value)."""
    n: int
    n_full: int | None
    samples_path: Path | None
    run_file: str
    created: str
    note: str = ""
    imported: bool = False
    runs: list[RunRef] = field(default_factory=list)
    values: dict[str, float | None] = field(default_factory=dict)
    """Every metric's raw value of an imported run (its one prompt)."""
    source: tuple[Path, TaskRecord] | None = field(default=None, repr=False)
    """The results file and task record the cell came from (for paired comparisons)."""

    @property
    def ci(self) -> tuple[float, float] | None:
        h = self.headline
        return (h.ci_low, h.ci_high) if h is not None and h.ci_low is not None and h.ci_high is not None else None

    @property
    def chance(self) -> float | None:
        return self.headline.chance if self.headline is not None else None

    @property
    def best_prompt(self) -> str | None:
        return self.spread.best_prompt if self.spread else (next(iter(self.prompts)) if self.prompts else None)


@dataclass
class ModelEntry:
    key: str
    name: str
    slug: str
    fingerprint: str
    series: str | None
    step: int | None
    source: str
    """evalsuite or lm-eval."""
    tasks: dict[str, TaskResult] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    suite: float | None = None
    coverage: tuple[int, int] = (0, 0)
    """(tasks with a comparable score, tasks counted in the suite score)."""
    category_scores: dict[str, float | None] = field(default_factory=dict)
    rank: float = 0.0
    avg_rank: float = 0.0
    borda: float = 0.0
    tie_with_above: float | None = None
    """p-value of the paired suite-score difference with the model ranked just above (None: not tested)."""

    @property
    def complete(self) -> bool:
        return self.coverage[0] == self.coverage[1]


@dataclass
class SeriesChart:
    """One task's curve over a series: median with a min–max band of normalized scores across prompts."""

    task: str
    lines: list[dict[str, Any]]
    """Per series: {name, color, points: 'x,y ...', band: 'x,y ...', dots: [(x, y, title)]}."""
    x_ticks: list[tuple[float, str]]
    y_ticks: list[tuple[float, str]]
    baseline_y: float | None
    """y of the dashed baseline (0 normalized); None for raw metrics such as bits per byte."""
    width: int = 280
    height: int = 150


@dataclass
class LeaderboardView:
    spec: LeaderboardSpec
    columns: list[str]
    column_labels: dict[str, str]
    categories: dict[str, str]
    models: list[ModelEntry]
    index_rows: list[dict[str, Any]]
    task_pages: dict[str, dict[str, Any]]
    skipped: list[tuple[str, str]]
    series: dict[str, list[ModelEntry]]
    charts: list[SeriesChart]
    signals: dict[str, list[dict[str, Any]]]
    suite_columns: list[str] = field(default_factory=list)
    """Columns that enter suite scores and coverage (normalized metrics)."""
    anomalies: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Per series: checkpoints whose suite score fell inside the chance interval between two good neighbours."""

    def export(self) -> dict[str, Any]:
        """``leaderboard.json``: one cell per model × task and one row per model (normalized scale)."""
        cells = []
        for e in self.models:
            for c in self.columns:
                tr = e.tasks.get(c)
                if tr is None:
                    continue
                best = tr.best_prompt
                cells.append({
                    "model": e.name, "fingerprint": e.fingerprint, "task": c, "metric": tr.metric,
                    "raw": tr.prompts[best].raw if best in tr.prompts else None,
                    "normalized": clip(tr.score) if tr.normalizable and tr.score is not None else None,
                    "normalized_unclipped": tr.score if tr.normalizable else None,
                    "headline": self.spec.headline, "comparable": tr.score is not None,
                    "ci_low": tr.ci[0] if tr.ci else None, "ci_high": tr.ci[1] if tr.ci else None,
                    "chance": tr.chance,
                    "chance_low": tr.headline.chance_low if tr.headline else None,
                    "chance_high": tr.headline.chance_high if tr.headline else None,
                    "n": tr.n, "n_full": tr.n_full, "prompts": sorted(tr.prompts), "best_prompt": best,
                    "run_file": tr.run_file, "imported": tr.imported, "note": tr.note,
                })
        models = [{"model": e.name, "fingerprint": e.fingerprint, "suite_score": e.suite, "p_vs_above": e.tie_with_above,
                   "coverage": f"{e.coverage[0]}/{e.coverage[1]}", "complete": e.complete, "rank": e.rank,
                   "avg_rank": e.avg_rank, "borda": e.borda, "series": e.series, "step": e.step} for e in self.models]
        return {"leaderboard": self.spec.leaderboard, "headline": self.spec.headline, "scale": "normalized",
                "cells": cells, "models": models}


def _fmt(v: float | None, d: int) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{d}f}"


def _fmt_score(v: float | None, d: int, normalizable: bool) -> str:
    """A normalized score as shown: clipped to 0–100, with '< 0' for a below-chance score."""
    if v is None:
        return "–"
    if normalizable and v < 0:
        return "< 0"
    return _fmt(clip(v) if normalizable else v, d)


def _n_text(n: int, n_full: int | None) -> str:
    return f"n={n:,}/{n_full:,}" if n_full is not None and n_full != n else f"n={n:,}"


# ---------------------------------------------------------------- loading

def _lmeval_to_record(data: dict[str, Any], path: Path) -> RunRecord | None:
    """lm-eval's results JSON (0–1 fractions per 'metric,filter') as a run record; nothing is normalized here."""
    res = data.get("results")
    if not isinstance(res, dict):
        return None
    model = (data.get("model_name") or (data.get("config") or {}).get("model_args") or path.parent.name)
    tasks: dict[str, TaskRecord] = {}
    for task, metrics in res.items():
        if not isinstance(metrics, dict):
            continue
        vals: dict[str, float] = {}
        for k, v in metrics.items():
            if "," not in k or "stderr" in k or not isinstance(v, (int, float)) or isinstance(v, bool):
                continue
            name, _filter = k.split(",", 1)
            vals.setdefault(name, float(v))
        if not vals:
            continue
        head = "acc" if "acc" in vals else sorted(vals)[0]
        n = (data.get("n-samples", {}).get(task) or {}) if isinstance(data.get("n-samples"), dict) else {}
        mrecs = {}
        for k, v in vals.items():
            d = registry.find(k)
            scale = 100.0 if (d is None or d.scale != "unbounded") and 0.0 <= v <= 1.0 else 1.0
            mrecs[k] = MetricRecord(k, v * scale, d.higher_is_better if d else True, f"lm-eval:{k}")
        tasks[str(task)] = TaskRecord("", 1, "", "imported", [], "lm-eval", head, "lm-eval",
                                      int(n.get("effective") or 0) if isinstance(n, dict) else 0,
                                      int(n.get("original")) if isinstance(n, dict) and isinstance(n.get("original"), int) else None,
                                      prompts={"lm-eval": PromptRecord(int(n.get("effective") or 0) if isinstance(n, dict) else 0, mrecs)},
                                      title=str(task))
    if not tasks:
        return None
    return RunRecord(SCHEMA, "", str(data.get("date", "")), [], ModelRecord(str(model), f"lm-eval:{model}"), {}, tasks,
                     versions={"lm_eval": data.get("lm_eval_version")}, extra={"_source": "lm-eval"})


def load_results(folders: list[Path]) -> tuple[list[tuple[Path, RunRecord, str]], list[tuple[str, str]]]:
    """Every readable results file (evalsuite or lm-eval) with its name relative to its folder, and the skipped ones."""
    found: list[tuple[Path, RunRecord, str]] = []
    skipped: list[tuple[str, str]] = []
    files: list[Path] = []
    shown: dict[Path, str] = {}
    rel: dict[Path, str] = {}
    for folder in folders:
        if folder.is_file():
            files.append(folder)
            shown[folder] = rel[folder] = folder.name
        elif folder.is_dir():
            for f in sorted(folder.rglob("results*.json")):
                files.append(f)
                rel[f] = str(f.relative_to(folder))
                shown[f] = str(Path(folder.name) / f.relative_to(folder))  # no machine paths in the site
        else:
            skipped.append((folder.name, "no such folder"))
    for f in files:
        try:
            data = json.loads(f.read_text(encoding="utf-8")) if f.stat().st_size <= 64 * 2**20 else None
        except (OSError, ValueError, UnicodeDecodeError) as e:
            skipped.append((shown[f], f"unreadable: {type(e).__name__}"))
            continue
        if not isinstance(data, dict):
            skipped.append((shown[f], "not a JSON object (or larger than 64 MiB)"))
            continue
        if data.get("schema") in (SCHEMA, SCHEMA_V1):
            try:
                found.append((f, from_dict(data, shown[f]), rel[f]))
            except (RecordError, TypeError, ValueError) as e:
                skipped.append((shown[f], f"schema-invalid: {str(e).split(': ', 1)[-1]}"))
        elif "results" in data and ("configs" in data or "config" in data or "versions" in data):
            rec = _lmeval_to_record(data, f)
            if rec is None:
                skipped.append((shown[f], "lm-eval file without usable metrics"))
            else:
                found.append((f, rec, rel[f]))
        else:
            skipped.append((shown[f], "neither an evalsuite nor an lm-eval results file"))
    return found, skipped


# ---------------------------------------------------------------- building

def _template_summary(spec: dict[str, Any], pid: str) -> str:
    for p in spec.get("prompts", []) or []:
        if isinstance(p, dict) and p.get("id") == pid:
            text = (p.get("description") or "") + (p.get("doc_to_text") or "")
            choices = p.get("doc_to_choice")
            if choices:
                text += "  ⟶  " + " | ".join(str(c) for c in choices)
            return text
    return ""


def _run_config(rec: RunRecord, t: TaskRecord) -> tuple[Any, ...]:
    """What must match for two runs of a task to be the same measurement (the limit may differ)."""
    c = rec.config
    return (t.spec_hash, t.data_digest, json.dumps(sorted(t.prompts)), t.shots, c.get("seed"),
            c.get("backend"), c.get("dtype"), c.get("max_length"), c.get("add_bos"))


def _config_text(rec: RunRecord, t: TaskRecord) -> str:
    return f"prompts {','.join(sorted(t.prompts))}; shots {t.shots}; limit {t.limit if t.limit is not None else 'none'}"


def _task_result(name: str, t: TaskRecord, path: Path, run_file: str, rec: RunRecord, spec: LeaderboardSpec) -> TaskResult:
    head = t.headline_metric
    d = registry.find(head)
    normalizable = bool(d and d.normalizable)
    agg = t.aggregate
    rows: dict[str, PromptRow] = {}
    for pid, p in t.prompts.items():
        m = p.metrics.get(head)
        norm = agg.normalized.get(pid) if agg is not None and agg.normalizable else None
        rows[pid] = PromptRow(pid, _template_summary(t.spec, pid), p.n, m.value if m else None, m.baseline if m else None,
                              (m.baseline_kind or "") if m else "", norm)
    sp = None
    if agg is not None and agg.normalized:
        oriented = agg.normalized if (agg.normalizable or (d is None or d.higher_is_better)) else \
            {k: -v for k, v in agg.normalized.items()}
        sp = spread(oriented)
    h = agg.headlines.get(spec.headline) if agg is not None else None
    score = h.value if h is not None and normalizable else None
    values = {k: m.value for p in list(t.prompts.values())[:1] for k, m in p.metrics.items()}
    if rec.extra.get("_source") == "lm-eval":
        return TaskResult(name, t.title or name, t.category, head, d.higher_is_better if d else True, False, rows, None, None,
                          None, rows["lm-eval"].raw if "lm-eval" in rows else None, t.n_examples, t.n_full, None, run_file,
                          rec.created, imported=True, values=values)
    return TaskResult(name, t.title or name, t.category, head, d.higher_is_better if d else True, normalizable, rows, sp, h,
                      score, h.value if h is not None else None, t.n_examples, t.n_full, samples_path(path, t.samples_file),
                      run_file, rec.created)


def _select_runs(cands: list[tuple[Path, RunRecord, str, TaskRecord]]) -> tuple[int, str]:
    """Index of the run a (model, task) cell uses, and a note when other configurations exist.

    Among the runs whose task spec, data digest and configuration match the newest run's, the one
    with the most examples (then the newest) — so a later smoke run never replaces a full run.
    """
    newest = max(range(len(cands)), key=lambda i: (cands[i][1].created, str(cands[i][0])))
    key = _run_config(cands[newest][1], cands[newest][3])
    same = [i for i in range(len(cands)) if _run_config(cands[i][1], cands[i][3]) == key]
    pick = max(same, key=lambda i: (cands[i][3].n_examples, cands[i][1].created, str(cands[i][0])))
    other = len(same) < len(cands)
    return pick, ("other runs with a different configuration exist (see the model page)" if other else "")


def shown_name(spec: LeaderboardSpec, model: ModelRecord) -> str:
    """A model's name on the leaderboard: the YAML's ``display_names`` entry matching its recorded display
    name, ``--model`` path or fingerprint (first match, globs allowed); else its recorded display name."""
    recorded = model.display_name or model.name
    keys = (recorded, model.name, model.fingerprint or "")
    for pattern, shown in spec.display_names.items():
        if any(k and (k == pattern or fnmatch.fnmatchcase(k, pattern)) for k in keys):
            return shown
    return recorded


def build_view(spec: LeaderboardSpec, folders: list[Path]) -> LeaderboardView:
    records, skipped = load_results(folders)
    models: dict[str, ModelEntry] = {}
    per_cell: dict[tuple[str, str], list[tuple[Path, RunRecord, str, TaskRecord]]] = {}
    for path, rec, rel in sorted(records, key=lambda x: (x[1].created, str(x[0]))):
        m = rec.model
        fp = str(m.fingerprint or "")
        name = shown_name(spec, m)
        names = {name, m.name, m.display_name or m.name}
        if not any(fnmatch.fnmatchcase(n, g) for n in names for g in spec.include) \
                or any(fnmatch.fnmatchcase(n, g) for n in names for g in spec.exclude):
            continue
        key = f"{name}|{fp}"
        entry = models.get(key)
        source = str(rec.extra.get("_source", "evalsuite"))
        if entry is None:
            slug = slugify(Path(name).name or name) + "-" + (re.sub(r"[^0-9a-f]", "", fp.split(":")[-1])[:8] or "x")
            entry = models[key] = ModelEntry(key, name, slug, fp, m.series, m.step, source)
        for tname, t in rec.tasks.items():
            per_cell.setdefault((key, tname), []).append((path, rec, rel, t))
        entry.meta = {
            "fingerprint": fp, "created": rec.created, "versions": rec.versions, "seed": rec.config.get("seed"),
            "backend": m.backend.get("backend"), "dtype": m.backend.get("dtype"), "command": " ".join(rec.command),
            "series": m.series, "step": m.step,
        }
    for (key, tname), cands in per_cell.items():
        pick, note = _select_runs(cands)
        path, rec, rel, t = cands[pick]
        try:
            tr = _task_result(tname, t, path, rel, rec, spec)
        except (KeyError, TypeError, ValueError) as e:
            skipped.append((path.name, f"task {tname!r} unusable: {type(e).__name__}: {e}"))
            continue
        tr.note = note
        tr.source = (path, t)
        tr.runs = [RunRef(c[2], c[1].created, c[3].n_examples, c[3].n_full, _config_text(c[1], c[3]), i == pick)
                   for i, c in sorted(enumerate(cands), key=lambda ic: ic[1][1].created, reverse=True)]
        models[key].tasks[tname] = tr

    # the column's metric and baseline come from evalsuite runs of that task
    column_metric: dict[str, str] = {}
    column_base: dict[str, float] = {}
    for e in models.values():
        if e.source == "lm-eval":
            continue
        for tn, tr in e.tasks.items():
            column_metric.setdefault(tn, tr.metric)
            for r in tr.prompts.values():
                if r.baseline is not None and tr.metric == column_metric[tn]:
                    column_base.setdefault(tn, r.baseline)
    for e in models.values():
        if e.source != "lm-eval":
            continue
        for tn, tr in list(e.tasks.items()):
            _import_cell(tr, column_metric.get(tn), column_base.get(tn))

    entries = list(models.values())
    # two models may slug alike (team-x/final, team-y/final): each then gets a hash of its exact key
    slugs = unique_slugs({e.key: e.slug for e in entries})
    for entry in entries:
        entry.slug = slugs[entry.key]
    all_tasks = sorted({t for e in entries for t in e.tasks})
    columns = [c for c in spec.columns] if spec.columns else all_tasks
    categories: dict[str, str] = {}
    for cat, tasks in spec.categories.items():
        for t in tasks:
            categories[t] = cat
    for e in entries:
        for tn, tr in e.tasks.items():
            categories.setdefault(tn, tr.category)
    # a column enters suite scores when its metric is normalized (bits per byte is shown, not averaged)
    # (a column nobody has results for says nothing about anyone: it is shown empty and not counted)
    col_norm = {c: any(e.tasks[c].normalizable for e in entries if c in e.tasks and not e.tasks[c].imported)
                for c in columns}
    suite_columns = [c for c in columns if col_norm[c]]
    table: dict[str, dict[str, float | None]] = {}
    for c in suite_columns:
        table[c] = {e.key: (e.tasks[c].score if c in e.tasks else None) for e in entries}
    for e in entries:
        scores = {c: table[c][e.key] for c in suite_columns}
        e.coverage = (sum(v is not None for v in scores.values()), len(suite_columns))
        e.suite = suite_score(scores, categories)
        cats: dict[str, list[float]] = {}
        for c, v in scores.items():
            if v is not None:
                cats.setdefault(categories.get(c, "other"), []).append(v)
        e.category_scores = {k: sum(v) / len(v) for k, v in cats.items()}
    avg = average_rank(table) if entries and suite_columns else {}
    bd = borda(table) if entries and suite_columns else {}
    # complete models rank first by suite score; a model missing tasks ranks after them (never above by omission)
    order = sorted(entries, key=lambda e: (not e.complete, -e.coverage[0], e.suite is None, -(e.suite or 0.0), e.name))
    complete_ranks = ranks({e.key: e.suite for e in entries if e.complete})
    n_complete = sum(e.complete for e in entries)
    for i, e in enumerate(order):
        e.avg_rank = avg.get(e.key, 0.0)
        e.borda = bd.get(e.key, 0.0)
        e.rank = complete_ranks[e.key] if e.complete else float(n_complete + 1 + sum(1 for x in order[:i] if not x.complete))
    entries = order
    if spec.bootstrap:
        _significance([e for e in entries if e.complete and e.source == "evalsuite"], suite_columns, categories, spec.bootstrap)

    d = spec.decimals
    titles = {c: next((e.tasks[c].title for e in entries if c in e.tasks), c) for c in columns}
    labels = {c: spec.column_labels.get(c) or titles[c] for c in columns}
    index_rows = []
    for e in entries:
        cells = []
        for c in columns:
            tr = e.tasks.get(c)
            if tr is None or tr.display is None:
                cells.append({"cell": Cell(None, "–", "not evaluated"), "raw": "–", "glyph": None, "sensitive": False,
                              "task": c, "n": "", "mark": ""})
                continue
            best = tr.best_prompt or ""
            raw_best = tr.prompts[best].raw if best in tr.prompts else None
            ci_txt = f"; 95% CI {_fmt_score(tr.ci[0], d, tr.normalizable)}–{_fmt_score(tr.ci[1], d, tr.normalizable)}" if tr.ci else ""
            chance_txt = f"; chance {_fmt(tr.chance, d)}" if tr.chance is not None else ""
            spread_txt = (f"; prompts: max {_fmt(tr.spread.max, d)}, median {_fmt(tr.spread.median, d)}, "
                          f"MAD {_fmt(tr.spread.mad, d)}, range {_fmt(tr.spread.range, d)}") if tr.spread else ""
            base = tr.prompts[best].baseline if best in tr.prompts else None
            title = (f"{tr.metric} raw {_fmt(raw_best, d)} (prompt {best}, baseline {_fmt(base, d)}); {_n_text(tr.n, tr.n_full)}"
                     f"{ci_txt}{chance_txt}{spread_txt}" + (f"; {tr.note}" if tr.note else ""))
            glyph = None
            if tr.spread and tr.normalizable:
                glyph = Glyph(tuple((round(clip(r.normalized) or 0.0, 2), f"{pid}: {_fmt(r.normalized, d)}")
                                    for pid, r in sorted(tr.prompts.items()) if r.normalized is not None),
                              round(clip(tr.score) or 0.0, 2) if tr.score is not None else None,
                              (round(clip(tr.ci[0]) or 0.0, 2), round(clip(tr.ci[1]) or 0.0, 2)) if tr.ci else None)
            # sort key: the normalized score; a raw metric (bits per byte) sorts by its own value
            value = tr.score if tr.score is not None else (tr.display if not tr.normalizable and not tr.imported else None)
            text = _fmt_score(tr.display, d, tr.normalizable) if not tr.imported or tr.score is not None else _fmt(tr.display, d)
            partial = tr.n_full is not None and tr.n < tr.n_full
            cells.append({"cell": Cell(value, text, title), "raw": _fmt(raw_best, d), "glyph": glyph,
                          "sensitive": bool(tr.spread and tr.spread.sensitive), "task": c,
                          "n": _n_text(tr.n, tr.n_full) if partial else "",
                          "mark": ("raw, not comparable" if tr.imported and tr.score is None else "")})
        index_rows.append({
            "tie": e.tie_with_above is not None and e.tie_with_above >= 0.05,
            "tie_p": _fmt(e.tie_with_above, 2) if e.tie_with_above is not None else "",
            "model": e, "rank": Cell(e.rank, _fmt(e.rank, 0) if e.rank == int(e.rank) else _fmt(e.rank, 1)),
            "suite": Cell(e.suite, _fmt(e.suite, d)), "avg_rank": Cell(e.avg_rank, _fmt(e.avg_rank, 2)),
            "borda": Cell(e.borda, _fmt(e.borda, 1)), "cells": cells,
            "coverage": f"{e.coverage[0]}/{e.coverage[1]}", "complete": e.complete,
        })

    task_pages: dict[str, dict[str, Any]] = {}
    for c in columns:
        trs = sorted(((e, e.tasks[c]) for e in entries if c in e.tasks),
                     key=lambda et: (et[1].score is None, -(et[1].score or 0.0), et[0].name))
        prompt_ids = sorted({pid for _, tr in trs for pid in tr.prompts})
        templates = {}
        for pid in prompt_ids:
            templates[pid] = next((tr.prompts[pid].template for _, tr in trs if pid in tr.prompts and tr.prompts[pid].template), "")
        rows = []
        for e, tr in trs:
            pc = []
            for pid in prompt_ids:
                r = tr.prompts.get(pid)
                if r is None:
                    pc.append({"raw": Cell(None, "–"), "norm": Cell(None, "–"), "base": "–"})
                else:
                    pc.append({"raw": Cell(r.raw, _fmt(r.raw, d)),
                               "norm": Cell(r.normalized, _fmt_score(r.normalized, d, tr.normalizable)),
                               "base": _fmt(r.baseline, d), "base_kind": r.baseline_kind})
            h = tr.headline
            rows.append({"model": e, "prompts": pc,
                         "score": Cell(tr.score, _fmt_score(tr.display, d, tr.normalizable) if not tr.imported or tr.score is not None
                                       else _fmt(tr.display, d)),
                         "mad": _fmt(tr.spread.mad, d) if tr.spread else "–",
                         "range": _fmt(tr.spread.range, d) if tr.spread else "–",
                         "best": tr.best_prompt or "–",
                         "sensitive": bool(tr.spread and tr.spread.sensitive),
                         "ci": f"{_fmt(tr.ci[0], d)}–{_fmt(tr.ci[1], d)}" if tr.ci else "–",
                         "chance": (f"{_fmt(h.chance, d)} ({_fmt(h.chance_low, d)}–{_fmt(h.chance_high, d)})"
                                    if h is not None and h.chance is not None else "–"),
                         "n": _n_text(tr.n, tr.n_full), "note": tr.note})
        first = trs[0][1] if trs else None
        task_pages[c] = {"task": c, "label": labels[c], "title": first.title if first else c,
                         "metric": first.metric if first else "", "prompt_ids": prompt_ids, "templates": templates,
                         "rows": rows, "slug": task_slug(c),
                         "normalizable": bool(first and first.normalizable),
                         "higher_is_better": first.higher_is_better if first else True}

    series: dict[str, list[ModelEntry]] = {}
    for e in entries:
        if e.series and e.step is not None:
            series.setdefault(e.series, []).append(e)
    for s in series.values():
        s.sort(key=lambda e: e.step or 0)
    charts, signals = _series_charts(series, columns, labels, categories, suite_columns)
    return LeaderboardView(spec, columns, labels, categories, entries, index_rows, task_pages, skipped, series, charts, signals,
                           suite_columns, _anomalies(series, suite_columns, d))


def _anomalies(series: dict[str, list[ModelEntry]], columns: list[str], d: int) -> dict[str, list[dict[str, Any]]]:
    """The anomaly guard of ``track --status`` and ``evalsuite signal`` (``anomaly.collapsed``), on the same records."""
    from evalsuite.anomaly import collapsed, suite_point

    out: dict[str, list[dict[str, Any]]] = {}
    for sname, entries in series.items():
        points, names = [], {}
        for e in entries:
            tasks = {c: e.tasks[c].source[1] for c in columns if c in e.tasks and e.tasks[c].source is not None}
            sp = suite_point(e.step, tasks) if e.step is not None else None
            if sp is not None:
                points.append(sp)
                names[e.step] = e.name
        by_step = {p.step: p for p in points}
        flagged = [{"step": s, "model": names[s], "score": _fmt(by_step[s].score, d), "chance_upper": _fmt(by_step[s].chance_upper, d)}
                   for s in collapsed(points)]
        if flagged:
            out[sname] = flagged
    return out


def _significance(ranked: list[ModelEntry], columns: list[str], categories: dict[str, str], n_boot: int) -> None:
    """For each complete model, the paired bootstrap p-value of its suite-score difference with the model above.

    Every task is resampled with the same clusters for both models (identical example ids required), each
    model's best prompt is chosen again in every replicate, and the suite score of each replicate is the
    same category-then-suite mean as the headline. A pair on different examples is not tested.
    """
    from evalsuite.compare import Side, paired_draws

    for above, below in zip(ranked, ranked[1:]):
        diffs = np.zeros(n_boot)
        draws_a: dict[str, np.ndarray] = {}
        draws_b: dict[str, np.ndarray] = {}
        ok = True
        for c in columns:
            ta, tb = above.tasks.get(c), below.tasks.get(c)
            if ta is None or tb is None or ta.source is None or tb.source is None:
                ok = False
                break
            try:
                got = paired_draws(c, [Side(*ta.source), Side(*tb.source)], n_boot)
            except (OSError, ValueError, KeyError, TypeError, EvalsuiteError):
                got = "unreadable samples"
            if isinstance(got, str):
                ok = False
                break
            draws_a[c], draws_b[c] = got[1]
        if not ok or not columns:
            continue
        for r in range(n_boot):
            sa = suite_score({c: float(draws_a[c][r]) for c in columns}, categories)
            sb = suite_score({c: float(draws_b[c][r]) for c in columns}, categories)
            diffs[r] = (sa or 0.0) - (sb or 0.0)
        below.tie_with_above = p_value(diffs)


def _import_cell(tr: TaskResult, column_metric: str | None, baseline: float | None) -> None:
    """An imported lm-eval value: in the column only with the column's metric and its baseline; else raw and marked."""
    tr.imported = True
    row = tr.prompts.get("lm-eval")
    if row is None:
        return
    d = registry.find(column_metric or "")
    if column_metric is None or d is None:
        tr.note = "imported from lm-eval; no evalsuite run of this task gives its metric and baseline: shown raw, not ranked"
        return
    raw = tr.values.get(column_metric)  # the imported file may hold the column's metric beside its own headline
    if raw is None or baseline is None:
        tr.note = (f"imported from lm-eval ({tr.metric}); this column's metric is {column_metric}: shown raw, "
                   "left out of ranks and suite scores")
        return
    norm = normalize(raw, baseline, d)
    tr.metric = column_metric
    tr.normalizable = d.normalizable
    tr.prompts = {"lm-eval": PromptRow("lm-eval", row.template, row.n, raw, baseline, "from evalsuite runs of this task", norm)}
    tr.spread = spread({"lm-eval": norm}) if norm is not None else None
    tr.headline = HeadlineRecord(norm, None, None, None, None, None, "imported: one value, no interval") if norm is not None else None
    tr.score = norm
    tr.display = norm
    tr.note = f"imported from lm-eval ({column_metric}, normalized with this column's baseline)"


_COLORS = ["#1f6feb", "#d1495b", "#2a9d8f", "#e9a03b", "#7b5ea7", "#5c7080"]


def _series_charts(series: dict[str, list[ModelEntry]], columns: list[str], labels: dict[str, str],
                   categories: dict[str, str], suite_cols: list[str]) -> tuple[list[SeriesChart], dict[str, list[dict[str, Any]]]]:
    """Curves and statistics of every series, all on the median across prompts (``series.step_scores``)."""
    from evalsuite.series import StepScores, step_scores, task_signal

    charts: list[SeriesChart] = []
    signals: dict[str, list[dict[str, Any]]] = {}
    if not series:
        return charts, signals
    W, H, L, R, T, B = 280, 150, 34, 8, 10, 22
    all_steps = sorted({e.step for s in series.values() for e in s if e.step is not None})
    lo, hi = (all_steps[0], all_steps[-1]) if all_steps else (0, 1)
    span = (hi - lo) or 1

    def x(step: int) -> float:
        return round(L + (W - L - R) * (step - lo) / span, 1)

    # one table of StepScores: per series, task → points (the same function signal and track use)
    pts_by: dict[str, dict[str, list[StepScores]]] = {}
    for sname, entries in series.items():
        for e in entries:
            for task in columns:
                tr = e.tasks.get(task)
                if tr is None or e.step is None or tr.imported or not tr.prompts:
                    continue
                pt = step_scores(e.step, _AggShim(tr))
                if pt is not None:
                    pts_by.setdefault(sname, {}).setdefault(task, []).append(pt)
    for task in list(columns) + ["__suite__"]:
        lines = []
        ymax, ymin = 0.0, 0.0
        data = {}
        for si, sname in enumerate(sorted(series)):
            tasks = pts_by.get(sname, {})
            pts: list[tuple[int, float, float, float]] = []
            if task == "__suite__":
                steps = sorted({p.step for ps in tasks.values() for p in ps})
                for s in steps:
                    med = {t: next(p.median for p in ps if p.step == s) for t, ps in tasks.items()
                           if t in suite_cols and any(p.step == s for p in ps)}
                    if med and len(med) == len(suite_cols):  # a suite point only where every suite task was evaluated
                        v = suite_score(dict(med), categories)
                        if v is not None:
                            pts.append((s, v, v, v))
            else:
                # plotted on the metric's own scale (raw bits per byte stay positive; lower is better)
                pts = [(p.step, p.sign * p.median, *sorted((p.sign * min(p.by_prompt.values()), p.sign * max(p.by_prompt.values()))))
                       for p in tasks.get(task, [])]
            if pts:
                data[sname] = (si, sorted(pts))
                ymax = max(ymax, max(p[3] for p in pts))
                ymin = min(ymin, min(p[2] for p in pts))
        if not data:
            continue
        top = max(10.0, math.ceil(ymax / 10) * 10)
        bottom = min(0.0, math.floor(ymin / 10) * 10)

        def y(v: float) -> float:
            return round(T + (H - T - B) * (1 - (v - bottom) / (top - bottom)), 1)

        for sname, (si, p) in data.items():
            color = _COLORS[si % len(_COLORS)]
            line = " ".join(f"{x(s)},{y(m)}" for s, m, _, _ in p)
            band = " ".join(f"{x(s)},{y(mx)}" for s, _, _, mx in p) + " " + " ".join(f"{x(s)},{y(mn)}" for s, _, mn, _ in reversed(p))
            dots = [(x(s), y(m), f"{sname} step {s}: median {m:.1f} (prompts {mn:.1f}–{mx:.1f})") for s, m, mn, mx in p]
            lines.append({"name": sname, "color": color, "points": line, "band": band, "dots": dots})
        step_ticks = all_steps if len(all_steps) <= 6 else all_steps[:: max(1, len(all_steps) // 5)]
        raw = task != "__suite__" and task not in suite_cols
        title = "suite score (median across prompts)" if task == "__suite__" else labels.get(task, task)
        charts.append(SeriesChart(title + (" (raw, lower is better)" if raw else ""), lines,
                                  [(x(s), str(s)) for s in step_ticks],
                                  [(y(v), f"{v:g}") for v in sorted({bottom, 0.0, top / 2, top})], None if raw else y(0.0), W, H))
    for sname, tasks in pts_by.items():
        for task in columns:
            p = tasks.get(task, [])
            if len(p) >= 2:
                signals.setdefault(sname, []).append(_signal_row(task_signal(task, p).as_dict()))
    return charts, signals


class _AggShim:
    """Lets ``series.step_scores`` read a TaskResult like a task record (normalized per prompt)."""

    def __init__(self, tr: TaskResult):
        from evalsuite.record import AggregateRecord

        if tr.normalizable:
            vals = {pid: r.normalized for pid, r in tr.prompts.items() if r.normalized is not None}
        else:
            vals = {pid: r.raw for pid, r in tr.prompts.items() if r.raw is not None}
        self.aggregate = AggregateRecord(tr.metric, tr.normalizable, vals, {})


def _signal_row(sig: dict[str, Any]) -> dict[str, Any]:
    """Display strings for one task's early-signal statistics."""

    def f(v: float | None) -> str:
        return "–" if v is None else ("inf" if abs(v) >= 1e8 else f"{v:.2f}")

    def mark(ok: bool) -> str:
        return "✓" if ok else "✗"

    p = sig["passes"]
    return {
        "task": sig["task"], "n": len(sig["steps"]),
        "monotonicity": f(sig["monotonicity"]), "monotonicity_v": sig["monotonicity"] if sig["monotonicity"] is not None else "",
        "snr": f(sig["snr"]), "snr_v": sig["snr"] if sig["snr"] is not None else "",
        "nonrand": f(sig["non_randomness"]), "nonrand_v": sig["non_randomness"] if sig["non_randomness"] is not None else "",
        "psr": f(sig["prompt_switch_rate"]), "cv": f(sig["trajectory_cv"]),
        "pass_monotonicity": mark(p["monotonicity"]), "pass_snr": mark(p["snr"]), "pass_nonrand": mark(p["non_randomness"]),
        "pass_psr": mark(p["prompt_switch_rate"]),
    }


def sample_correct(s: dict[str, Any]) -> bool | None:
    """Whether one per-sample record was answered correctly (None where the task has no right answer:
    bits per byte, regression, multi-label)."""
    pred, gold = s.get("prediction"), s.get("gold")
    if s.get("choices") and isinstance(pred, int) and not isinstance(pred, bool) and gold is not None:
        return pred in gold if isinstance(gold, list) else pred == gold
    if isinstance(pred, bool):  # target log-likelihood: the target was the greedy continuation
        return pred
    m = s.get("metrics") or {}
    for key in ("exact_match", "acc"):
        if isinstance(m.get(key), (int, float)):
            return bool(m[key] > 0)
    return None


def sample_rows(path: Path, per_prompt: int, max_chars: int = 800) -> tuple[list[dict[str, str]], int]:
    """The first ``per_prompt`` samples of each prompt variant, as display strings (escaped by the template)."""
    rows: list[dict[str, str]] = []
    seen: dict[str, int] = {}
    total = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            total += 1
            try:
                s = json.loads(line)
            except ValueError:
                continue
            pid = str(s.get("prompt_id"))
            if seen.get(pid, 0) >= per_prompt:
                continue
            seen[pid] = seen.get(pid, 0) + 1
            reqs = s.get("requests") or []
            ctx = str(reqs[0].get("context", "")) if reqs else ""
            choices: list[dict[str, Any]] = []
            if s.get("choices"):
                gold = s.get("gold")
                golds = set(gold) if isinstance(gold, list) else {gold}
                for i, (c, r) in enumerate(zip(s["choices"], reqs)):
                    ll = r.get("loglikelihood")
                    choices.append({"choice": str(c), "loglikelihood": f"{ll:.3f}" if isinstance(ll, (int, float)) else "–",
                                    "gold": i in golds, "predicted": i == s.get("prediction")})
                scores = "; ".join(f"{c['choice']}: {c['loglikelihood']}" for c in choices)
                pred = s["choices"][s["prediction"]] if isinstance(s.get("prediction"), int) and s["prediction"] < len(s["choices"]) else str(s.get("prediction", ""))
            else:
                scores = "; ".join(f"{k}: {v:.3f}" for k, v in (s.get("metrics") or {}).items() if isinstance(v, (int, float)))
                pred = str(s.get("prediction", reqs[0].get("generation", "") if reqs else ""))
            if len(ctx) > max_chars:
                ctx = "…" + ctx[-max_chars:]
            rows.append({"prompt_id": pid, "example_id": str(s.get("example_id")), "context": ctx,
                         "target": str(s.get("target", "")), "prediction": pred, "scores": scores, "choices": choices,
                         "correct": sample_correct(s)})
    return rows, total
