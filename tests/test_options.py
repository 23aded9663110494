"""Issue 17: one option set for every evaluating command; plain progress lines for logs."""

from __future__ import annotations

import dataclasses
import io
import json
import re
from pathlib import Path

from typer.testing import CliRunner

from evalsuite.cli import app
from evalsuite.cli_options import EvalOptions


def _help(cmd: str) -> str:
    res = CliRunner().invoke(app, [cmd, "--help"], env={"COLUMNS": "80", "TERMINAL_WIDTH": "80", "NO_COLOR": "1"},
                             terminal_width=80)
    assert res.exit_code == 0, res.output
    return res.output


def _flag(field: dataclasses.Field) -> str:
    return "--" + field.name.replace("_", "-")


def test_run_and_track_share_every_evaluation_option():
    run_help, track_help = _help("run"), _help("track")
    for f in dataclasses.fields(EvalOptions):
        assert _flag(f) in run_help, f.name
        assert _flag(f) in track_help, f.name
    for must in ("--seed", "--max-length", "--add-bos", "--trust-remote-code", "--quiet", "--tokenizer", "--name"):
        assert must in track_help
    assert EvalOptions().backend.value == "auto"
    assert len(re.findall(r"\[default: auto\]", run_help)) == len(re.findall(r"\[default: auto\]", track_help))


def test_run_help_is_grouped_in_panels_and_fits_80_columns():
    text = _help("run")
    panels = [p for p in ("Model", "Selection", "Backend", "vLLM", "Output") if re.search(rf"╭─ {p} ─", text)]
    assert panels == ["Model", "Selection", "Backend", "vLLM", "Output"]
    assert max(len(line) for line in text.splitlines()) <= 80
    track = _help("track")
    assert "╭─ Series ─" in track and "--watch" in track
    assert max(len(line) for line in track.splitlines()) <= 80


def test_track_passes_the_shared_options_through(tmp_path: Path):
    series = tmp_path / "exp"
    (series / "checkpoint-1").mkdir(parents=True)
    (series / "checkpoint-1" / "config.json").write_text("{}", encoding="utf-8")
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["track", str(series), "--tasks", "demo_sentiment_ar", "--limit", "2", "--backend", "fake",
                                   "--seed", "7", "--max-length", "64", "--add-bos", "--shots", "1", "--name", "exp-a",
                                   "-o", str(out), "-q"])
    assert res.exit_code == 0, res.output
    (path,) = out.glob("*/results_*.json")
    rec = json.loads(path.read_text(encoding="utf-8"))
    conf = rec["config"]
    assert (conf["seed"], conf["max_length"], conf["add_bos"], conf["shots"]) == (7, 64, True, 1)
    assert rec["model"]["display_name"] == "exp-a step 1" and rec["model"]["series"] == "exp-a"


def test_plain_progress_lines_every_n_seconds():
    from evalsuite.progress import PlainProgress

    now = [0.0]
    buf = io.StringIO()
    p = PlainProgress(100, initial=20, every=10.0, stream=buf, clock=lambda: now[0])
    for _ in range(40):
        now[0] += 0.5
        p.update(1)
    p.close()
    lines = buf.getvalue().splitlines()
    assert lines[0] == "progress: 40/100 requests (40%), 2.0/s, elapsed 10s, ETA 30s"
    assert lines[1].startswith("progress: 60/100") and lines[-1].startswith("done: 60/100")
    assert len(lines) == 3


def test_run_prints_progress_lines_when_stderr_is_not_a_terminal(tmp_path: Path):
    res = CliRunner().invoke(app, ["run", "--model", "m", "--backend", "fake", "--tasks", "demo_sentiment_ar", "--limit", "6",
                                   "--progress-every", "0.000001", "--no-cache", "-o", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert re.search(r"progress: \d+/\d+ requests \(\d+%\), [\d.]+/s, elapsed \d+s, ETA", res.output), res.output
    assert re.search(r"done: (\d+)/\1 requests", res.output), res.output
