"""Write a LeaderboardView as static files. Templates format; they compute nothing.

The jinja2 environment is sandboxed with autoescaping on: model names, task names,
prompts and predictions written by strangers are shown as text, never run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalsuite import __version__
from evalsuite.leaderboard.view import _COLORS, LeaderboardView, _fmt, _fmt_score, _n_text, sample_rows
from evalsuite.store import atomic_write_bytes, atomic_write_json


def _env() -> Any:
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    return ImmutableSandboxedEnvironment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    )


def render_site(view: LeaderboardView, out: Path, n_results: int) -> Path:
    """Write index, task, model, sample and series pages under ``out``; returns index.html."""
    env = _env()
    common = {"view": view, "version": __version__, "n_results": n_results}
    d = view.spec.decimals

    def write(rel: str, template: str, root: str, **ctx: Any) -> None:
        html = env.get_template(template).render(root=root, **common, **ctx)
        atomic_write_bytes(out / rel, html.encode("utf-8"))

    write("index.html", "index.html", "", page_title="Leaderboard")
    for c, page in view.task_pages.items():
        write(f"tasks/{page['slug']}.html", "task.html", "../", page_title=page["label"], page=page)
    for m in view.models:
        tasks = []
        for tn, tr in sorted(m.tasks.items()):
            slug = view.task_pages[tn]["slug"] if tn in view.task_pages else None
            has_samples = tr.samples_path is not None and view.spec.samples_per_task > 0
            tasks.append({"task": tn, "slug": slug or tn, "metric": tr.metric,
                          "score": _cell(tr.score, _fmt_score(tr.display, d, tr.normalizable)),
                          "ci": f"{_fmt(tr.ci[0], d)}–{_fmt(tr.ci[1], d)}" if tr.ci else "–",
                          "chance": _fmt(tr.chance, d), "n": _n_text(tr.n, tr.n_full),
                          "best": tr.best_prompt or "–", "mad": _fmt(tr.spread.mad, d) if tr.spread else "–",
                          "samples": has_samples, "note": tr.note, "runs": tr.runs})
            if has_samples and tr.samples_path is not None:
                rows, total = sample_rows(tr.samples_path, view.spec.samples_per_task)
                write(f"samples/{m.slug}/{slug or tn}.html", "samples.html", "../../", page_title=f"{m.name} · {tn}",
                      model=m, task=tn, rows=rows, total=total, shown=view.spec.samples_per_task)
        write(f"models/{m.slug}.html", "model.html", "../", page_title=m.name, model=m, tasks=tasks)
    if view.series:
        write("series.html", "series.html", "", page_title="Checkpoint series", colors=_COLORS)
    data = view.export()
    atomic_write_json(out / "leaderboard.json", data)
    atomic_write_bytes(out / "leaderboard.csv", _csv(data["cells"]).encode("utf-8"))
    return out / "index.html"


CSV_COLUMNS = ("model", "fingerprint", "task", "metric", "raw", "normalized", "normalized_unclipped", "ci_low", "ci_high",
               "chance", "chance_low", "chance_high", "n", "n_full", "best_prompt", "prompts", "comparable", "imported", "run_file")


def _csv(cells: list[dict[str, Any]]) -> str:
    """``leaderboard.csv``: the cells of ``leaderboard.json``, one row each (prompts joined by '|')."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for c in cells:
        w.writerow(["|".join(c[k]) if k == "prompts" else ("" if c.get(k) is None else c.get(k)) for k in CSV_COLUMNS])
    return buf.getvalue()


def _cell(v: float | None, text: str) -> Any:
    from evalsuite.leaderboard.view import Cell

    return Cell(v, text)
