"""Reliability: request cache, kill-and-resume, concurrent runs, reproducibility, NaN and OOM handling."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evalsuite.backends.hf import HFBackend, HFOptions
from evalsuite.cache import RequestCache, info, namespace
from evalsuite.cli import app
from evalsuite.core.records import Response
from evalsuite.runner import RunConfig, run

ROOT = Path(__file__).resolve().parents[1]


def _cached_rows(cache_dir: Path) -> int:
    n = 0
    for shard in cache_dir.rglob("*.sqlite"):
        try:
            con = sqlite3.connect(f"file:{shard}?mode=ro", uri=True, timeout=5)
            n += con.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
            con.close()
        except sqlite3.Error:
            pass
    return n


def _samples(results: Path) -> dict[tuple, float]:
    rec = json.loads(results.read_text(encoding="utf-8"))
    out = {}
    for name, t in rec["tasks"].items():
        for line in (results.parent / t["samples_file"]).read_text(encoding="utf-8").splitlines():
            s = json.loads(line)
            for i, r in enumerate(s["requests"]):
                out[(name, s["prompt_id"], s["example_id"], i)] = r.get("loglikelihood")
    return out


def _metrics(results: Path) -> dict:
    rec = json.loads(results.read_text(encoding="utf-8"))
    return {(t, p): {k: v["value"] for k, v in pr["metrics"].items()}
            for t, task in rec["tasks"].items() for p, pr in task["prompts"].items()}


def _cmd(model: Path, data: Path, out: Path, cache: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "evalsuite", "run", "--model", str(model), "--tasks", "xnli_ar", "--data-dir", str(data),
            "--limit", "120", "--batch-tokens", "192", "--device", "cpu", "-o", str(out), "--cache-dir", str(cache), "-q", *extra]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


@pytest.fixture(scope="module")
def reference(tiny_model: Path, xnli_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted run without the cache."""
    tmp = tmp_path_factory.mktemp("ref")
    out = subprocess.run(_cmd(tiny_model, xnli_file.parent.parent, tmp / "out", tmp / "cache", "--no-cache"),
                         capture_output=True, text=True, env=_env(), check=True)
    return Path(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("kill_fraction", [0.1, 0.5, 0.9])
def test_sigkill_and_resume_recomputes_only_the_rest(tiny_model, xnli_file, reference, tmp_path, kill_fraction):
    total = 120 * 4 * 3
    cache = tmp_path / "cache"
    cmd = _cmd(tiny_model, xnli_file.parent.parent, tmp_path / "out", cache)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
    deadline = time.time() + 240
    while _cached_rows(cache) < kill_fraction * total:
        if proc.poll() is not None or time.time() > deadline:
            pytest.fail(f"the run ended before the kill point: {proc.communicate()[1].decode()[-2000:]}")
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    persisted = _cached_rows(cache)
    assert kill_fraction * total <= persisted < total
    assert not list((tmp_path / "out").rglob("results_*.json")), "no results file from a killed run"
    done = subprocess.run(cmd, capture_output=True, text=True, env=_env(), check=True)
    resumed = Path(done.stdout.strip().splitlines()[-1])
    rec = json.loads(resumed.read_text(encoding="utf-8"))
    assert rec["timings"]["cache"]["hits"] == persisted
    assert rec["timings"]["cache"]["computed"] == total - persisted
    ref, got = _samples(reference), _samples(resumed)
    assert ref.keys() == got.keys()
    assert max(abs(ref[k] - got[k]) for k in ref) < 1e-4
    assert _metrics(resumed) == _metrics(reference)
    # a third run comes entirely from the cache, loads no weights, and gives identical numbers
    again = subprocess.run(cmd, capture_output=True, text=True, env=_env(), check=True)
    third = Path(again.stdout.strip().splitlines()[-1])
    rec3 = json.loads(third.read_text(encoding="utf-8"))
    assert rec3["timings"]["cache"]["computed"] == 0 and rec3["timings"]["model_loaded"] is False
    assert rec3["timings"]["backend_calls"] == 0
    assert _samples(third) == got and _metrics(third) == _metrics(resumed)
    # byte-identical apart from timing fields and the engine that computed (a run served by the cache computes nothing)
    assert rec["model"]["backend"]["engine"] == "packed" and "engine" not in rec3["model"]["backend"]
    for r in (rec, rec3):
        r["model"]["backend"] = {k: v for k, v in r["model"]["backend"].items() if k not in ("engine", "engine_reason")}
    strip = lambda r: {k: v for k, v in r.items() if k not in ("created", "timings")}  # noqa: E731
    assert json.dumps(strip(rec3), sort_keys=True) == json.dumps(strip(rec), sort_keys=True)


def test_two_concurrent_runs_share_cache_and_results_folder(tiny_model, xnli_file, tmp_path):
    from evalsuite.tiny import build_tiny_model

    other = build_tiny_model(tmp_path / "other-model", steps=30, seed=1)
    cache, out = tmp_path / "cache", tmp_path / "out"
    data = xnli_file.parent.parent
    procs = [subprocess.Popen(_cmd(m, data, out, cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
             for m in (tiny_model, other, tiny_model)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1].decode()[-1500:] for o in outs]
    paths = [Path(o[0].decode().strip().splitlines()[-1]) for o in outs]
    assert len(set(paths)) == 3
    for p in paths:
        assert json.loads(p.read_text(encoding="utf-8"))["schema"]
    assert _metrics(paths[0]) == _metrics(paths[2])
    ns = info(cache)
    assert len(ns) == 2 and all(n["responses"] == 120 * 12 for n in ns)
    assert sum(n["shards"] for n in ns) == 3  # one shard per process
    assert not list(out.rglob("*.tmp")), "no temporary files left behind"


def test_cache_key_ignores_batch_size_but_not_dtype_or_length():
    base = {"backend": "hf", "model": "a", "fingerprint": "sha256:x", "dtype": "float32", "max_length": 512, "add_bos": False}
    assert namespace(base) == namespace({**base, "model": "elsewhere/a"})
    assert namespace(base) != namespace({**base, "dtype": "bfloat16"})
    assert namespace(base) != namespace({**base, "max_length": 256})
    assert namespace(base) != namespace({**base, "add_bos": True})
    assert namespace(base) != namespace({**base, "fingerprint": "sha256:y"})


def test_cache_roundtrip_and_errors_not_cached(tmp_path):
    c = RequestCache({"backend": "x"}, tmp_path)
    c.put(Response("a", loglikelihood=-1.5, is_greedy=True, n_tokens=3))
    c.put(Response("b", loglikelihood=float("nan"), error="non-finite"))
    c.close()
    got = RequestCache({"backend": "x"}, tmp_path).lookup(["a", "b", "c"])
    assert set(got) == {"a"} and got["a"].loglikelihood == -1.5 and got["a"].is_greedy is True


def test_cache_cli_info_and_clear(tmp_path):
    c = RequestCache({"backend": "x", "model": "m"}, tmp_path)
    c.put(Response("a", loglikelihood=-1.0))
    c.close()
    r = CliRunner().invoke(app, ["cache", "info", "--cache-dir", str(tmp_path), "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["namespaces"][0]["responses"] == 1
    r = CliRunner().invoke(app, ["cache", "clear", "--cache-dir", str(tmp_path), "--yes"])
    assert r.exit_code == 0 and "removed 1" in r.output
    assert info(tmp_path) == []


def _backend(tiny_model: Path, **kw) -> HFBackend:
    return HFBackend(str(tiny_model), HFOptions(device="cpu", dtype="float32", **kw))


@pytest.mark.parametrize("packing", [True, False], ids=["packed", "prefix-cache"])
def test_nan_log_probs_are_reported_per_task_and_the_run_goes_on(tiny_model, tmp_path, packing):
    b = _backend(tiny_model, packing=packing)
    poison = b.tok("سيئة", add_special_tokens=False)["input_ids"][0]
    body = b.model.model  # the decoder both engines run (the packed one calls it directly)
    forward = body.forward

    def nan_forward(*args, **kwargs):
        out = forward(*args, **kwargs)
        ids = kwargs["input_ids"]
        bad = (ids == poison).any(dim=1)
        out.last_hidden_state[bad] = float("nan")
        return out

    body.forward = nan_forward
    res = run(RunConfig(model=str(tiny_model), tasks="demo_sentiment_ar", output=tmp_path, use_cache=False,
                        share_prefixes=False), backend=b, progress=False)
    assert b.engine_info["engine"] == ("packed" if packing else "prefix-cache")  # the engine under test did the work
    p = res.record.tasks["demo_sentiment_ar"].prompts["native"]
    assert p.errors and all("non-finite" in e for e in p.errors)
    assert 0 < p.n < 24 and p.metrics["acc"].value is not None


@pytest.mark.parametrize("packing", [True, False], ids=["packed", "prefix-cache"])
def test_out_of_memory_halves_the_batch_and_matches(tiny_model, tmp_path, packing):
    ref = run(RunConfig(model=str(tiny_model), tasks="demo_sentiment_ar", output=tmp_path / "a", use_cache=False),
              backend=_backend(tiny_model), progress=False)
    b = _backend(tiny_model, batch_tokens=100_000, packing=packing)
    body = b.model.model
    forward = body.forward

    def small_device(*args, **kwargs):
        if kwargs["input_ids"].shape[0] > 3:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return forward(*args, **kwargs)

    body.forward = small_device
    res = run(RunConfig(model=str(tiny_model), tasks="demo_sentiment_ar", output=tmp_path / "b", use_cache=False),
              backend=b, progress=False)
    assert res.record.timings["oom_retries"] > 0
    assert b.engine_info["engine"] == ("packed" if packing else "prefix-cache")
    assert _samples(res.results_path) == pytest.approx(_samples(ref.results_path), abs=1e-4)


def test_trust_remote_code_is_off_by_default_and_recorded(tmp_path):
    r = run(RunConfig(model="m", tasks="demo_sentiment_ar", backend="fake", output=tmp_path, use_cache=False), progress=False)
    assert r.record.config["trust_remote_code"] is False
    src = (ROOT / "evalsuite" / "backends" / "hf.py").read_text(encoding="utf-8")
    assert "trust_remote_code=True" not in src


def test_results_are_never_half_written(tmp_path, monkeypatch):
    import evalsuite.store as store

    target = tmp_path / "r.json"
    store.atomic_write_json(target, {"ok": 1})

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(store.json, "dumps", boom)
    with pytest.raises(KeyboardInterrupt):
        store.atomic_write_json(target, {"ok": 2})
    assert json.loads(target.read_text()) == {"ok": 1}
    assert not list(tmp_path.glob(".*.tmp"))
