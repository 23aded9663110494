"""A non-editable install ships the task YAML: `evalsuite tasks list` works from another folder.

The test venv must see the packages of the interpreter running pytest, wherever that is: the
system Python, or (as a user has it) a virtualenv. ``venv --system-site-packages`` made from
inside a virtualenv sees the *base* interpreter's packages, not the virtualenv's, so the new venv
instead gets a ``.pth`` file listing the running interpreter's site-packages folders.
"""

from __future__ import annotations

import os
import site
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
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    _see_running_packages(py)
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


def running_site_packages() -> list[str]:
    """The site-packages folders of the interpreter running this test (a virtualenv's own included)."""
    dirs = list(site.getsitepackages())
    if site.ENABLE_USER_SITE and os.path.isdir(site.getusersitepackages()):
        dirs.append(site.getusersitepackages())
    return [d for d in dirs if os.path.isdir(d)]


def _see_running_packages(py: Path) -> None:
    """Make the venv at ``py`` import the dependencies installed for the running interpreter.

    Plain path lines in a ``.pth`` file are appended to ``sys.path`` after the venv's own
    site-packages (so the wheel installed there wins), and ``.pth`` files inside those folders are
    not processed (so an editable install of the checkout stays invisible).
    """
    own = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, check=True).stdout.strip()
    Path(own, "_running_interpreter.pth").write_text("\n".join(running_site_packages()) + "\n", encoding="utf-8")


def test_running_site_packages_is_this_environment():
    """Inside a virtualenv the list holds the virtualenv's site-packages, not only the base interpreter's."""
    import typer

    dirs = running_site_packages()
    assert any(Path(typer.__file__).resolve().is_relative_to(Path(d).resolve()) for d in dirs), dirs
    if sys.prefix != sys.base_prefix:  # running inside a virtualenv
        assert any(Path(d).resolve().is_relative_to(Path(sys.prefix).resolve()) for d in dirs), dirs
