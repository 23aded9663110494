"""The README's first command: the offline demo builds a model, runs the demo suite, writes results."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from evalsuite.cli import app


def test_demo_runs_offline_end_to_end(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the demo's leaderboard goes to ./reports/demo/ by default
    res = CliRunner().invoke(app, ["demo", "-o", str(tmp_path), "-q"])
    assert res.exit_code == 0, res.output
    lines = [x for x in res.output.strip().splitlines() if x.strip()]
    results = next(Path(x) for x in reversed(lines) if x.endswith(".json"))
    rec = json.loads(results.read_text(encoding="utf-8"))
    assert set(rec["tasks"]) == {"demo_sentiment_ar", "demo_lastword_ar", "demo_phrases_ar", "demo_bpb_ar"}
    assert rec["model"]["fingerprint"].startswith("sha256:")
    assert "demo_sentiment_ar" in res.output and "baseline" in res.output
    assert (tmp_path / "reports" / "demo" / "index.html").is_file()
    assert f"leaderboard: {Path('reports') / 'demo' / 'index.html'}" in res.output
    # the tiny model really learned the project-written text: raw last-word prediction beats chance
    assert rec["tasks"]["demo_lastword_ar"]["prompts"]["raw"]["metrics"]["acc"]["value"] > 25
