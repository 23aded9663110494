"""A non-editable install ships the task YAML: `evalsuite tasks list` works from another folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_install_ships_tasks(tmp_path: Path):
    wheel_dir = tmp_path / "wheel"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(wheel_dir), str(ROOT)], capture_output=True, text=True)
    if build.returncode != 0 and "hatchling" in (build.stderr + build.stdout):
        build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheel_dir), str(ROOT)],
                               capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    (wheel,) = wheel_dir.glob("evalsuite-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(wheel)], check=True,
                   capture_output=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([str(venv / "bin" / "evalsuite"), "tasks", "list"], cwd=tmp_path, capture_output=True, text=True,
                         env=env)
    assert out.returncode == 0, out.stderr
    assert "xnli_ar" in out.stdout and "demo_sentiment_ar" in out.stdout
    where = subprocess.run([str(py), "-c", "import evalsuite, sys; print(evalsuite.__file__)"], cwd=tmp_path,
                           capture_output=True, text=True, env=env).stdout
    assert str(venv) in where  # the installed copy, not the checkout
