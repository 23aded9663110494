"""Issue 16, "nothing lost, nothing escapes": the cache, the leaderboard and task files against
careless and hostile inputs, and clear errors instead of tracebacks.

Each test reproduces a failure found by an adversarial pass and fails on the code before the fix.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evalsuite.cli import app
from evalsuite.core.records import Response

ROOT = Path(__file__).resolve().parents[1]


def cli(args: list[str]):
    return CliRunner().invoke(app, args)


# ---------------------------------------------------------------- item 8: cache clear deletes only its own folders

def test_cache_clear_keeps_foreign_folders(tmp_path: Path) -> None:
    from evalsuite.cache import RequestCache, info

    root = tmp_path / "cache"
    for name in ("my_checkpoints", "datasets"):
        (root / name).mkdir(parents=True)
        (root / name / "precious.bin").write_bytes(b"x")
    c = RequestCache({"backend": "fake", "fingerprint": "f1"}, root)
    c.put(Response("r1", loglikelihood=-1.0))
    c.close()
    assert [r["namespace"] for r in info(root)] == [c.dir.name]  # foreign folders are not namespaces
    shown = cli(["cache", "info", "--cache-dir", str(root)])
    assert "datasets/" in shown.output and "my_checkpoints/" in shown.output
    res = cli(["cache", "clear", "--cache-dir", str(root), "-y"])
    assert res.exit_code == 0 and "removed 1 namespace" in res.output
    assert (root / "my_checkpoints" / "precious.bin").exists() and (root / "datasets" / "precious.bin").exists()
    assert not c.dir.exists()


# ---------------------------------------------------------------- item 9: cache clear during a running writer

def test_writer_recreates_a_shard_removed_under_it(tmp_path: Path) -> None:
    from evalsuite.cache import RequestCache, clear

    ident = {"backend": "fake", "fingerprint": "f2"}
    w = RequestCache(ident, tmp_path)
    w.put(Response("before", loglikelihood=-1.0))
    assert clear(tmp_path) == 1  # cleared while the writer keeps running
    w.put(Response("after", loglikelihood=-2.0))
    # no close(): the writer may be SIGKILLed now; what it wrote after the clear must be on disk
    found = RequestCache(ident, tmp_path).lookup(["before", "after"])
    assert set(found) == {"after"}
    w.close()
