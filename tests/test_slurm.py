"""Checkpoint sweeps as a Slurm job array through submitit, on a real single-node Slurm.

The module fixture starts munged with a generated key and its own socket, then
slurmctld and one slurmd (proctrack/linuxproc, task/none, no accounting, no
cgroups, no GPUs) from a generated slurm.conf in a temporary folder, and stops
all three at the end. Without the Debian packages (slurm-wlm, munge) or root the
Slurm tests are skipped with the reason — unless EVALSUITE_REQUIRE_SLURM=1 (CI),
where they fail. submitit's local executor runs the same job code everywhere.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
from pathlib import Path

import pytest
from _slurm_cluster import SlurmUnavailable, check, single_node_slurm
from _sweep_helpers import STEPS, assert_same_numbers, base_config, require_env, result_pairs, wait_for
from typer.testing import CliRunner

from evalsuite.cli import app
from evalsuite.executors import SlurmOptions, get_executor
from evalsuite.executors.jobs import read_json, state_path
from evalsuite.executors.sweep import status, sweep
from evalsuite.series import Series, discover

ROOT = Path(__file__).resolve().parents[1]


def _unavailable(reason: str) -> None:
    if require_env("EVALSUITE_REQUIRE_SLURM"):
        pytest.fail(f"EVALSUITE_REQUIRE_SLURM=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A single-node Slurm cluster on 127.0.0.1, up for the module; yields its slurm.conf."""
    try:
        check()
        import submitit  # noqa: F401
    except SlurmUnavailable as e:
        _unavailable(str(e))
    except ImportError:
        _unavailable("submitit is not installed (pip install 'evalsuite[slurm]')")
    old = os.environ.get("PYTHONPATH")
    # the jobs import this checkout, as the tests do
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in (old or "").split(os.pathsep) if p])
    try:
        with single_node_slurm(tmp_path_factory.mktemp("slurm")) as conf:
            yield conf
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def _states(out: Path, s: Series) -> list[dict]:
    return [read_json(state_path(out.resolve(), s.name, c.path)) or {} for c in s.checkpoints]


def test_slurm_array_matches_local_max_parallel_honoured(slurm: Path, sweep_series: Path, sweep_reference: Path, tmp_path: Path):
    out = tmp_path / "results"
    s = discover(str(sweep_series))
    logs = out / "jobs" / s.name / "logs"
    ex = get_executor("slurm", logs, SlurmOptions(max_parallel=1, time="00:10:00", partition="debug", extra={"comment": "evalsuite-test"}))
    rep = sweep(s, base_config(out), ex)
    assert len(rep.submitted) == 3 and [o.state for o in rep.outcomes] == ["done"] * 3, rep.outcomes
    ids = list(rep.job_ids.values())
    assert len({i.split("_")[0] for i in ids}) == 1 and sorted(i.split("_")[1] for i in ids) == ["0", "1", "2"]  # one array
    script = "\n".join(f.read_text() for f in logs.rglob("*submission.sh"))
    for line in ("#SBATCH --array=0-2%1", "#SBATCH --partition=debug", "#SBATCH --time=10", "#SBATCH --comment=evalsuite-test"):
        assert line in script, script
    # --max-parallel 1: no two jobs overlap in time
    spans = sorted((st["started"], st["ended"]) for st in _states(out, s))
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans)), spans
    assert all(st["job_id"] in ids and st["host"] for st in _states(out, s))
    assert_same_numbers(out, sweep_reference)
    assert len(result_pairs(out)) == 2 * len(STEPS)
    assert list((out / "request-cache").rglob("*.sqlite"))
    assert not [f for f in (out / "request-cache").rglob("*") if f.name.endswith(("-wal", "-shm"))]
    again = sweep(s, base_config(out), get_executor("slurm", logs, SlurmOptions()))
    assert again.submitted == [] and again.outcomes == []
    r = CliRunner().invoke(app, ["track", str(sweep_series), "--status", "--tasks", "demo_lastword_ar,demo_sentiment_ar",
                                 "--limit", "3", "--device", "cpu", "-o", str(out)])
    assert "done 3, running 0, failed 0, missing 0" in r.output, r.output


def test_scancel_then_resubmit_failed_completes(slurm: Path, sweep_series: Path, sweep_reference: Path, tmp_path: Path):
    out = tmp_path / "results"
    s = discover(str(sweep_series))
    logs = out / "jobs" / s.name / "logs"
    base = base_config(out)
    ex = get_executor("slurm", logs, SlurmOptions(max_parallel=1))
    rep = sweep(s, base, ex, wait=False)
    first = rep.job_ids[str(s.checkpoints[0].path.resolve())]
    sp = state_path(out.resolve(), s.name, s.checkpoints[0].path)
    wait_for(lambda: (read_json(sp) or {}).get("state") == "running", 120, "the first job to start")
    subprocess.run(["scancel", first], check=True)
    outcomes = ex.wait()
    by_cp = {Path(o.checkpoint).name: o for o in outcomes}
    assert by_cp["checkpoint-0"].state == "failed"
    assert [by_cp[f"checkpoint-{k}"].state for k in STEPS[1:]] == ["done", "done"]
    rows = {r.step: r for r in status(s, base)}
    assert rows[0].state == "failed" and rows[30].state == "done" and rows[90].state == "done"
    plain = sweep(s, base, get_executor("slurm", logs, SlurmOptions()))
    assert plain.submitted == [] and "--resubmit-failed" in plain.skipped[str(s.checkpoints[0].path.resolve())]
    r = CliRunner().invoke(app, ["track", str(sweep_series), "--executor", "slurm", "--resubmit-failed", "--tasks",
                                 "demo_lastword_ar,demo_sentiment_ar", "--limit", "3", "--device", "cpu", "-o", str(out)])
    assert r.exit_code == 0 and "submitted 1 job(s)" in r.output and "failed 0" in r.output, r.output
    assert_same_numbers(out, sweep_reference)
    assert len(result_pairs(out)) == 2 * len(STEPS)  # no duplicates from the cancelled attempt
    assert all(r.state == "done" for r in status(s, base))


def test_slurm_dry_run_submits_nothing(slurm: Path, sweep_series: Path, tmp_path: Path):
    out = tmp_path / "results"

    def queued() -> set[str]:
        return set(subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, check=True).stdout.split())

    before = queued()  # a job of an earlier test may still be completing
    r = CliRunner().invoke(app, ["track", str(sweep_series), "--executor", "slurm", "--dry-run", "--max-parallel", "2",
                                 "--tasks", "demo_lastword_ar,demo_sentiment_ar", "--limit", "3", "--device", "cpu", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "3 job(s)" in r.output and "unique requests" in r.output and "tokens" in r.output and "nothing submitted" in r.output
    assert queued() <= before  # nothing new was submitted
    assert not (out / "jobs").exists()


def test_submitit_local_executor_runs_the_same_job(sweep_series: Path, sweep_reference: Path, tmp_path: Path):
    """Without Slurm, submitit's local executor runs the same job function (EVALSUITE_SUBMITIT_CLUSTER=local)."""
    pytest.importorskip("submitit", reason="submitit is not installed (pip install 'evalsuite[slurm]')")
    out = tmp_path / "results"
    s = discover(str(sweep_series))
    one = Series(s.name, s.checkpoints[:1])
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    ex = get_executor("slurm", out / "logs", SlurmOptions(cluster="local"))
    rep = sweep(one, base_config(out), ex)
    assert [o.state for o in rep.outcomes] == ["done"]
    st = json.loads(state_path(out.resolve(), s.name, one.checkpoints[0].path).read_text(encoding="utf-8"))
    assert st["executor"] == "slurm" and st["pid"] != os.getpid()
    assert len(result_pairs(out)) == 2


def test_requeued_job_completes_with_identical_results(slurm: Path, sweep_series: Path, sweep_reference: Path, tmp_path: Path):
    """A running job requeued by Slurm (as on preemption) runs again and adds no duplicate results."""
    out = tmp_path / "results"
    s = discover(str(sweep_series))
    one = Series(s.name, s.checkpoints[-1:])
    ex = get_executor("slurm", out / "jobs" / s.name / "logs", SlurmOptions())
    rep = sweep(one, base_config(out), ex, wait=False)
    jid = next(iter(rep.job_ids.values()))
    sp = state_path(out.resolve(), s.name, one.checkpoints[0].path)
    wait_for(lambda: (read_json(sp) or {}).get("state") == "running", 120, "the job to start")
    subprocess.run(["scontrol", "requeue", jid], check=True)
    outcomes = ex.wait()
    assert [o.state for o in outcomes] == ["done"], outcomes
    st = read_json(sp) or {}
    assert st["attempt"] >= 2 and st["state"] == "done"
    assert len(result_pairs(out)) == 2  # one (checkpoint, task) result each, whatever ran twice
    fp = st["fingerprint"]
    want = tmp_path / "want"
    for f in sweep_reference.glob("*/results_*.json"):
        if json.loads(f.read_text(encoding="utf-8"))["model"]["fingerprint"] == fp:
            (want / f.parent.name).mkdir(parents=True, exist_ok=True)
            (want / f.parent.name / f.name).write_bytes(f.read_bytes())
            for smp in f.parent.glob("samples_*.jsonl"):
                (want / f.parent.name / smp.name).write_bytes(smp.read_bytes())
    assert_same_numbers(out, want)
