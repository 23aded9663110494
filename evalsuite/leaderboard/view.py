"""LeaderboardView: every number, order and coordinate of the site, computed here.

Templates only format what this module produces (no arithmetic in templates).
Unreadable or schema-invalid result files are skipped and listed, never fatal.
lm-eval ``results_*.json`` files are imported beside evalsuite runs.
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

from evalsuite.aggregate import Interval, Spread, average_rank, bootstrap_task, borda, normalize, ranks, spread, suite_score
from evalsuite.leaderboard.spec import LeaderboardSpec
from evalsuite.leaderboard.paths import samples_beside, slugify, task_slug, unique_slugs
from evalsuite.store import SCHEMA

CORRELATIONS = {"pearson", "spearman", "mcc"}


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
    normalized: float | None


@dataclass(frozen=True)
class Glyph:
    """Inline SVG of a task's prompt spread: one dot per prompt, the headline, the CI whisker (0–100 → 0–100 px)."""

    dots: tuple[tuple[float, str], ...]
    head: float | None
    ci: tuple[float, float] | None


@dataclass
class TaskResult:
    task: str
    title: str
    category: str
    metric: str
    higher_is_better: bool
    prompts: dict[str, PromptRow]
    spread: Spread | None
    score: float | None
    """Headline (max/median/mean across prompts) of normalized scores; raw for lower-is-better metrics."""
    ci: Interval | None
    chance: float | None
    """Expected headline of a chance-level model (for max: the expected max over prompts)."""
    samples_path: Path | None
    created: str
    note: str = ""


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
    category_scores: dict[str, float | None] = field(default_factory=dict)
    rank: float = 0.0
    avg_rank: float = 0.0
    borda: float = 0.0


@dataclass
class SeriesChart:
    """One task's curve over a series: median with a min–max band of normalized scores across prompts."""

    task: str
    lines: list[dict[str, Any]]
    """Per series: {name, color, points: 'x,y ...', band: 'x,y ...', dots: [(x, y, title)]}."""
    x_ticks: list[tuple[float, str]]
    y_ticks: list[tuple[float, str]]
    baseline_y: float
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




def _fmt(v: float | None, d: int) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{d}f}"


# ---------------------------------------------------------------- loading

def _lmeval_to_record(data: dict[str, Any], path: Path) -> dict[str, Any] | None:
    """Convert lm-eval's results JSON (0–1 fractions per 'metric,filter') into our shape."""
    res = data.get("results")
    if not isinstance(res, dict):
        return None
    model = (data.get("model_name") or (data.get("config") or {}).get("model_args") or path.parent.name)
    tasks: dict[str, Any] = {}
    for task, metrics in res.items():
        if not isinstance(metrics, dict):
            continue
        vals = {}
        for k, v in metrics.items():
            if "," not in k or "stderr" in k or not isinstance(v, (int, float)):
                continue
            name, _filter = k.split(",", 1)
            vals[name] = float(v)
        if not vals:
            continue
        head = "acc" if "acc" in vals else sorted(vals)[0]
        scale = 100.0 if all(0.0 <= v <= 1.0 for v in vals.values()) else 1.0
        tasks[task] = {
            "headline_metric": head, "category": "lm-eval", "output_type": "imported",
            "prompts": {"lm-eval": {"n": int((data.get("n-samples", {}).get(task) or {}).get("effective", 0)),
                                    "metrics": {k: {"name": k, "value": v * scale, "higher_is_better": True} for k, v in vals.items()},
                                    "random_baseline": {}}},
            "spec": {"title": task, "prompts": [{"id": "lm-eval", "doc_to_text": "(lm-eval task template)"}]},
        }
    if not tasks:
        return None
    return {"schema": SCHEMA, "model": {"name": str(model), "fingerprint": f"lm-eval:{model}"}, "tasks": tasks,
            "created": str(data.get("date", "")), "versions": {"lm_eval": data.get("lm_eval_version")},
            "config": {}, "_source": "lm-eval"}


def load_results(folders: list[Path]) -> tuple[list[tuple[Path, dict[str, Any]]], list[tuple[str, str]]]:
    """Every readable results file (evalsuite or lm-eval), and the skipped ones with a reason."""
    found: list[tuple[Path, dict[str, Any]]] = []
    skipped: list[tuple[str, str]] = []
    files: list[Path] = []
    shown: dict[Path, str] = {}
    for folder in folders:
        if folder.is_file():
            files.append(folder)
            shown[folder] = folder.name
        elif folder.is_dir():
            for f in sorted(folder.rglob("results*.json")):
                files.append(f)
                shown[f] = str(Path(folder.name) / f.relative_to(folder))  # no machine paths in the site
        else:
            skipped.append((folder.name, "no such folder"))
    for f in files:
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError) as e:
            skipped.append((shown[f], f"unreadable: {type(e).__name__}"))
            continue
        if not isinstance(data, dict):
            skipped.append((shown[f], "not a JSON object"))
            continue
        if data.get("schema") == SCHEMA:
            problem = _check_record(data)
            if problem:
                skipped.append((shown[f], f"schema-invalid: {problem}"))
                continue
            data["_source"] = "evalsuite"
            found.append((f, data))
        elif "results" in data and ("configs" in data or "config" in data or "versions" in data):
            rec = _lmeval_to_record(data, f)
            if rec is None:
                skipped.append((shown[f], "lm-eval file without usable metrics"))
            else:
                found.append((f, rec))
        else:
            skipped.append((shown[f], "neither an evalsuite nor an lm-eval results file"))
    return found, skipped


def _check_record(d: dict[str, Any]) -> str | None:
    """Why a results record cannot be shown (None when every field the site reads has its type)."""
    def num(v: Any) -> bool:
        return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))

    model = d.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("name"), str):
        return "model.name missing"
    if not isinstance(model.get("fingerprint"), (str, type(None))) or not isinstance(model.get("series"), (str, type(None))):
        return "model.fingerprint or model.series is not a string"
    if not (model.get("step") is None or (isinstance(model.get("step"), int) and not isinstance(model.get("step"), bool))):
        return "model.step is not an integer"
    if not isinstance(model.get("backend"), (dict, type(None))) or not isinstance(d.get("config"), (dict, type(None))):
        return "model.backend or config is not a mapping"
    if not isinstance(d.get("versions"), (dict, type(None))):
        return "versions is not a mapping"
    command = d.get("command")
    if command is not None and not (isinstance(command, list) and all(isinstance(c, str) for c in command)):
        return "command is not a list of strings"
    tasks = d.get("tasks")
    if not isinstance(tasks, dict):
        return "tasks missing"
    for name, t in tasks.items():
        if not isinstance(t, dict) or not isinstance(t.get("prompts"), dict) or not isinstance(t.get("headline_metric"), str):
            return f"task {name!r} malformed"
        if not isinstance(t.get("spec"), (dict, type(None))) or not isinstance(t.get("category", ""), str):
            return f"task {name!r}: spec or category malformed"
        if not isinstance(t.get("samples_file"), (str, type(None))):
            return f"task {name!r}: samples_file is not a string"
        for pid, p in t["prompts"].items():
            if not isinstance(p, dict) or not isinstance(p.get("metrics"), dict):
                return f"task {name!r} prompt {pid!r} malformed"
            if not isinstance(p.get("random_baseline"), (dict, type(None))):
                return f"task {name!r} prompt {pid!r}: random_baseline is not a mapping"
            if not num(p.get("n")) or not all(num(b) for b in (p.get("random_baseline") or {}).values()):
                return f"task {name!r} prompt {pid!r}: n or a baseline is not a number"
            for m in p["metrics"].values():
                v = m.get("value") if isinstance(m, dict) else "bad"
                if not num(v):
                    return f"task {name!r} prompt {pid!r} has a non-numeric value"
    return None


# ---------------------------------------------------------------- building

def _per_example(samples: Path, metric: str, prompts: list[str]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], list[str]] | None:
    """Aligned per-example values and chance scores per prompt, and cluster keys; None if not averageable."""
    vals: dict[str, dict[str, float]] = {p: {} for p in prompts}
    chance: dict[str, dict[str, float]] = {p: {} for p in prompts}
    clusters: dict[str, str] = {}
    try:
        with open(samples, encoding="utf-8") as f:
            for line in f:
                s = json.loads(line)
                pid = s.get("prompt_id")
                if pid not in vals:
                    continue
                v = (s.get("metrics") or {}).get(metric)
                if v is None:
                    continue
                ex = str(s.get("example_id"))
                vals[pid][ex] = float(v)
                ch = s.get("choices")
                chance[pid][ex] = 100.0 / len(ch) if ch else 0.0
                clusters[ex] = str(s.get("cluster", ex))
    except (OSError, ValueError):
        return None
    common = sorted(set.intersection(*(set(v) for v in vals.values()))) if vals else []
    if not common:
        return None
    return ({p: np.array([vals[p][e] for e in common]) for p in prompts},
            {p: np.array([chance[p][e] for e in common]) for p in prompts},
            [clusters[e] for e in common])


def _template_summary(spec: dict[str, Any], pid: str) -> str:
    for p in spec.get("prompts", []) or []:
        if isinstance(p, dict) and p.get("id") == pid:
            text = (p.get("description") or "") + (p.get("doc_to_text") or "")
            choices = p.get("doc_to_choice")
            if choices:
                text += "  ⟶  " + " | ".join(str(c) for c in choices)
            return text
    return ""


def _task_result(name: str, t: dict[str, Any], path: Path, rec: dict[str, Any], spec: LeaderboardSpec) -> TaskResult:
    head = t["headline_metric"]
    rows: dict[str, PromptRow] = {}
    hib = True
    for pid, p in t["prompts"].items():
        m = p["metrics"].get(head) or {}
        raw = m.get("value")
        hib = bool(m.get("higher_is_better", True))
        base = (p.get("random_baseline") or {}).get(head)
        norm = normalize(raw, base, hib, correlation=head in CORRELATIONS)
        rows[pid] = PromptRow(pid, _template_summary(t.get("spec") or {}, pid), int(p.get("n") or 0), raw, base, norm)
    norm_vals = {pid: r.normalized for pid, r in rows.items() if r.normalized is not None}
    sp = spread(norm_vals) if norm_vals and hib else None
    score = sp.headline(spec.headline) if sp else (min(norm_vals.values()) if norm_vals else None)
    ci = chance = None
    note = ""
    samples, refused = samples_beside(path, t.get("samples_file"))
    if refused:
        note = f"samples not shown: {refused}"
    if sp and samples and spec.bootstrap:
        per = _per_example(samples, head, sorted(rows))
        if per is not None:
            ci, chance = bootstrap_task(per[0], per[1], per[2], spec.headline, n=spec.bootstrap)
        else:
            note = f"{head} is a corpus-level metric: point estimate, no interval"
    return TaskResult(name, (t.get("spec") or {}).get("title") or name, t.get("category", "other"), head, hib, rows, sp,
                      score, ci, chance, samples, str(rec.get("created", "")), note)


def build_view(spec: LeaderboardSpec, folders: list[Path]) -> LeaderboardView:
    records, skipped = load_results(folders)
    models: dict[str, ModelEntry] = {}
    # oldest first so the newest result of a (model, task) wins
    records.sort(key=lambda fr: (str(fr[1].get("created", "")), str(fr[0])))
    for path, rec in records:
        m = rec["model"]
        name = m["name"]
        if not any(fnmatch.fnmatchcase(name, g) for g in spec.include) or any(fnmatch.fnmatchcase(name, g) for g in spec.exclude):
            continue
        fp = str(m.get("fingerprint") or "")
        key = f"{name}|{fp}"
        entry = models.get(key)
        if entry is None:
            slug = slugify(Path(name).name or name) + "-" + (re.sub(r"[^0-9a-f]", "", fp.split(":")[-1])[:8] or "x")
            entry = models[key] = ModelEntry(key, name, slug, fp, m.get("series"), m.get("step"), rec.get("_source", "evalsuite"))
        for tname, t in rec["tasks"].items():
            try:
                entry.tasks[tname] = _task_result(tname, t, path, rec, spec)
            except (KeyError, TypeError, ValueError) as e:
                skipped.append((path.name, f"task {tname!r} unusable: {type(e).__name__}: {e}"))
        entry.meta = {
            "fingerprint": fp, "created": rec.get("created", ""), "versions": rec.get("versions", {}),
            "seed": (rec.get("config") or {}).get("seed"), "backend": (m.get("backend") or {}).get("backend"),
            "dtype": (m.get("backend") or {}).get("dtype"), "command": " ".join(rec.get("command") or []),
            "series": m.get("series"), "step": m.get("step"),
        }
    # imported lm-eval results: use the baseline of the same evalsuite task when one is known
    known_base: dict[str, float] = {}
    for e in models.values():
        for tn, tr in e.tasks.items():
            for r in tr.prompts.values():
                if r.baseline is not None:
                    known_base.setdefault(tn, r.baseline)
    for e in models.values():
        if e.source != "lm-eval":
            continue
        for tn, tr in e.tasks.items():
            b = known_base.get(tn)
            rows = {pid: PromptRow(r.prompt_id, r.template, r.n, r.raw, b, normalize(r.raw, b) if b is not None else None)
                    for pid, r in tr.prompts.items()}
            vals = {pid: r.normalized for pid, r in rows.items() if r.normalized is not None}
            sp = spread(vals) if vals else None
            tr.prompts, tr.spread = rows, sp
            tr.score = sp.headline(spec.headline) if sp else None
            tr.note = "imported from lm-eval" + ("" if b is not None else "; random baseline unknown, not normalized")

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
    table: dict[str, dict[str, float | None]] = {}
    for c in columns:
        col: dict[str, float | None] = {}
        for e in entries:
            tr = e.tasks.get(c)
            col[e.key] = tr.score if tr is not None and tr.higher_is_better else None
        table[c] = col
    for e in entries:
        scores = {c: table[c][e.key] for c in columns}
        e.suite = suite_score(scores, categories)
        cats: dict[str, list[float]] = {}
        for c, v in scores.items():
            if v is not None:
                cats.setdefault(categories.get(c, "other"), []).append(v)
        e.category_scores = {k: sum(v) / len(v) for k, v in cats.items()}
    avg = average_rank(table) if entries and columns else {}
    bd = borda(table) if entries and columns else {}
    suite_ranks = ranks({e.key: e.suite for e in entries})
    for e in entries:
        e.avg_rank = avg.get(e.key, 0.0)
        e.borda = bd.get(e.key, 0.0)
        e.rank = suite_ranks.get(e.key, 0.0)
    entries.sort(key=lambda e: (e.rank, e.name))

    d = spec.decimals
    labels = {c: spec.column_labels.get(c, c) for c in columns}
    index_rows = []
    for e in entries:
        cells = []
        for c in columns:
            tr = e.tasks.get(c)
            if tr is None or tr.score is None:
                cells.append({"cell": Cell(None, "–", "not evaluated"), "raw": "–", "glyph": None, "sensitive": False,
                              "task": c})
                continue
            best = tr.spread.best_prompt if tr.spread else next(iter(tr.prompts))
            raw_best = tr.prompts[best].raw
            ci_txt = f"; 95% CI {_fmt(tr.ci.low, d)}–{_fmt(tr.ci.high, d)}" if tr.ci else ""
            spread_txt = (f"; prompts: max {_fmt(tr.spread.max, d)}, median {_fmt(tr.spread.median, d)}, "
                          f"MAD {_fmt(tr.spread.mad, d)}, range {_fmt(tr.spread.range, d)}") if tr.spread else ""
            title = (f"{tr.metric} raw {_fmt(raw_best, d)} (prompt {best}, baseline {_fmt(tr.prompts[best].baseline, d)})"
                     f"{ci_txt}{spread_txt}")
            glyph = None
            if tr.spread:
                glyph = Glyph(tuple((round(min(100.0, max(0.0, r.normalized)), 2), f"{pid}: {_fmt(r.normalized, d)}")
                                    for pid, r in sorted(tr.prompts.items()) if r.normalized is not None),
                              round(min(100.0, tr.score), 2),
                              (round(max(0.0, tr.ci.low), 2), round(min(100.0, tr.ci.high), 2)) if tr.ci else None)
            cells.append({"cell": Cell(tr.score, _fmt(tr.score, d), title), "raw": _fmt(raw_best, d), "glyph": glyph,
                          "sensitive": bool(tr.spread and tr.spread.sensitive), "task": c})
        index_rows.append({
            "model": e, "rank": Cell(e.rank, _fmt(e.rank, 0) if e.rank == int(e.rank) else _fmt(e.rank, 1)),
            "suite": Cell(e.suite, _fmt(e.suite, d)), "avg_rank": Cell(e.avg_rank, _fmt(e.avg_rank, 2)),
            "borda": Cell(e.borda, _fmt(e.borda, 1)), "cells": cells,
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
                    pc.append({"raw": Cell(r.raw, _fmt(r.raw, d)), "norm": Cell(r.normalized, _fmt(r.normalized, d)),
                               "base": _fmt(r.baseline, d)})
            rows.append({"model": e, "prompts": pc, "score": Cell(tr.score, _fmt(tr.score, d)),
                         "mad": _fmt(tr.spread.mad, d) if tr.spread else "–",
                         "range": _fmt(tr.spread.range, d) if tr.spread else "–",
                         "best": tr.spread.best_prompt if tr.spread else "–",
                         "sensitive": bool(tr.spread and tr.spread.sensitive),
                         "ci": f"{_fmt(tr.ci.low, d)}–{_fmt(tr.ci.high, d)}" if tr.ci else "–",
                         "chance": _fmt(tr.chance, d), "note": tr.note})
        first = trs[0][1] if trs else None
        task_pages[c] = {"task": c, "label": labels[c], "title": first.title if first else c,
                         "metric": first.metric if first else "", "prompt_ids": prompt_ids, "templates": templates,
                         "rows": rows, "slug": task_slug(c)}

    series: dict[str, list[ModelEntry]] = {}
    for e in entries:
        if e.series and e.step is not None:
            series.setdefault(e.series, []).append(e)
    for s in series.values():
        s.sort(key=lambda e: e.step or 0)
    charts, signals = _series_charts(series, columns, labels)
    return LeaderboardView(spec, columns, labels, categories, entries, index_rows, task_pages, skipped, series, charts, signals)


_COLORS = ["#1f6feb", "#d1495b", "#2a9d8f", "#e9a03b", "#7b5ea7", "#5c7080"]


def _series_charts(series: dict[str, list[ModelEntry]], columns: list[str], labels: dict[str, str]
                   ) -> tuple[list[SeriesChart], dict[str, list[dict[str, Any]]]]:
    from evalsuite.series import StepScores, task_signal

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

    tasks = list(columns) + ["__suite__"]
    for task in tasks:
        lines = []
        ymax = 0.0
        data = {}
        for si, (sname, entries) in enumerate(sorted(series.items())):
            pts = []
            for e in entries:
                if task == "__suite__":
                    if e.suite is not None:
                        pts.append((e.step, e.suite, e.suite, e.suite))
                    continue
                tr = e.tasks.get(task)
                if tr is None or not tr.spread:
                    continue
                pts.append((e.step, tr.spread.median, tr.spread.min, tr.spread.max))
            if pts:
                data[sname] = (si, pts)
                ymax = max(ymax, max(p[3] for p in pts))
        if not data:
            continue
        top = max(10.0, math.ceil(ymax / 10) * 10)

        def y(v: float) -> float:
            return round(T + (H - T - B) * (1 - v / top), 1)

        for sname, (si, pts) in data.items():
            color = _COLORS[si % len(_COLORS)]
            line = " ".join(f"{x(s)},{y(m)}" for s, m, _, _ in pts)
            band = " ".join(f"{x(s)},{y(mx)}" for s, _, _, mx in pts) + " " + " ".join(f"{x(s)},{y(mn)}" for s, _, mn, _ in reversed(pts))
            dots = [(x(s), y(m), f"{sname} step {s}: median {m:.1f} (prompts {mn:.1f}–{mx:.1f})") for s, m, mn, mx in pts]
            lines.append({"name": sname, "color": color, "points": line, "band": band, "dots": dots})
        step_ticks = all_steps if len(all_steps) <= 6 else all_steps[:: max(1, len(all_steps) // 5)]
        charts.append(SeriesChart("suite score" if task == "__suite__" else labels.get(task, task), lines,
                                  [(x(s), str(s)) for s in step_ticks], [(y(v), f"{v:g}") for v in (0, top / 2, top)],
                                  y(0.0), W, H))
        if task != "__suite__":
            for sname, entries in series.items():
                pts = [StepScores(e.step, {pid: r.normalized for pid, r in e.tasks[task].prompts.items() if r.normalized is not None}, 0.0)
                       for e in entries if task in e.tasks and e.step is not None and e.tasks[task].spread]
                if len(pts) >= 2:
                    signals.setdefault(sname, []).append(_signal_row(task_signal(task, pts).as_dict()))
    return charts, signals


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
            if s.get("choices"):
                scores = "; ".join(f"{c}: {r.get('loglikelihood'):.3f}" if isinstance(r.get("loglikelihood"), (int, float)) else f"{c}: –"
                                   for c, r in zip(s["choices"], reqs))
                pred = s["choices"][s["prediction"]] if isinstance(s.get("prediction"), int) and s["prediction"] < len(s["choices"]) else str(s.get("prediction", ""))
            else:
                scores = "; ".join(f"{k}: {v:.3f}" for k, v in (s.get("metrics") or {}).items() if isinstance(v, (int, float)))
                pred = str(s.get("prediction", reqs[0].get("generation", "") if reqs else ""))
            if len(ctx) > max_chars:
                ctx = "…" + ctx[-max_chars:]
            rows.append({"prompt_id": pid, "example_id": str(s.get("example_id")), "context": ctx,
                         "target": str(s.get("target", "")), "prediction": pred, "scores": scores})
    return rows, total
