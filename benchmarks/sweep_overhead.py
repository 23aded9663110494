"""Per-job overhead of each executor against the same work run locally, in one run.

    PYTHONPATH=. python benchmarks/sweep_overhead.py [--checkpoints 3] [--limit 4] [--out benchmarks/results/sweep_overhead.json]

Builds a series of tiny checkpoints (hidden 32, 2 layers), then evaluates it:

1. locally, in this process (``track``): the work itself;
2. with ``--executor local`` (the job code path, in this process);
3. as Ray tasks on a local Ray cluster (1 CPU, so jobs run one at a time like the local run);
4. as a Slurm job array through submitit on a throw-away single-node Slurm
   (``--max-parallel 1``; needs root and the slurm-wlm/munge packages, else skipped);
5. with submitit's local executor (the Slurm code path without Slurm).

Every executor starts from an empty results folder and request cache, so it does the same
work; the difference to (1) divided by the number of jobs is the per-job overhead (process
start-up, imports, scheduling, result collection). Finally each executor sweeps the
evaluated series again: the number of jobs submitted must be 0.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoints", type=int, default=3)
    ap.add_argument("--limit", type=int, default=4)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "sweep_overhead.json")
    args = ap.parse_args()
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    tmp = Path(tempfile.mkdtemp(prefix="sweep-bench-"))
    os.environ["EVALSUITE_CACHE"] = str(tmp / "user-cache")

    from dataclasses import replace

    from evalsuite.executors import RayOptions, SlurmOptions, get_executor
    from evalsuite.executors.sweep import sweep
    from evalsuite.runner import RunConfig
    from evalsuite.series import discover
    from evalsuite.tiny import build_tiny_model
    from evalsuite.track import track

    runs = tmp / "runs" / "exp"
    for k in range(args.checkpoints):
        build_tiny_model(runs / f"checkpoint-{k * 50}", steps=k * 50, hidden=32, layers=2)
    s = discover(str(runs))
    n = len(s.checkpoints)

    def cfg(name: str) -> RunConfig:
        return RunConfig(model="-", tasks="demo_lastword_ar,demo_sentiment_ar,demo_bpb_ar", output=tmp / name, device="cpu",
                         limit=args.limit, cache_dir=tmp / name / "request-cache")

    rows: list[dict] = []
    # warm the OS file cache and Python imports once, so the local baseline is not charged for them
    track(s, replace(cfg("warmup"), limit=1))
    t0 = time.perf_counter()
    rep = track(s, cfg("plain"))
    base_s = time.perf_counter() - t0
    assert len(rep.evaluated) == n, rep.failed
    rows.append({"executor": "track (in process, the work)", "jobs": n, "wall_s": round(base_s, 2), "ratio": 1.0,
                 "overhead_per_job_s": 0.0})

    def measure(label: str, make, setup_s: float = 0.0) -> None:  # type: ignore[no-untyped-def]
        name = label.split()[0].replace("/", "-")
        t0 = time.perf_counter()
        r = sweep(s, cfg(name), make())
        wall = time.perf_counter() - t0
        bad = [o for o in r.outcomes if o.state != "done"]
        assert not bad and len(r.submitted) == n, (label, bad)
        t1 = time.perf_counter()
        again = sweep(s, cfg(name), make())
        second = time.perf_counter() - t1
        rows.append({"executor": label, "jobs": n, "wall_s": round(wall, 2), "ratio": round(wall / base_s, 2),
                     "overhead_per_job_s": round((wall - base_s) / n, 2), "cluster_start_s": round(setup_s, 2),
                     "second_sweep_jobs_submitted": len(again.submitted), "second_sweep_s": round(second, 2)})
        print(json.dumps(rows[-1]), flush=True)

    measure("local", lambda: get_executor("local", tmp / "logs"))
    try:
        import ray

        t0 = time.perf_counter()
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, _temp_dir=str(tmp / "ray"),
                 object_store_memory=100 * 1024 * 1024)
        start = time.perf_counter() - t0
        try:
            measure("ray (local cluster, 1 CPU)", lambda: get_executor("ray", tmp / "logs", ray=RayOptions()), start)
        finally:
            ray.shutdown()
    except ImportError:
        rows.append({"executor": "ray", "skipped": "ray not installed"})
    try:
        from _slurm_cluster import SlurmUnavailable, single_node_slurm

        t0 = time.perf_counter()
        try:
            with single_node_slurm(tmp / "slurm"):
                start = time.perf_counter() - t0
                measure("slurm (job array, --max-parallel 1)",
                        lambda: get_executor("slurm", tmp / "slurm-logs", SlurmOptions(max_parallel=1)), start)
        except SlurmUnavailable as e:
            rows.append({"executor": "slurm", "skipped": str(e)})
        measure("submitit-local (slurm code path, no Slurm)",
                lambda: get_executor("slurm", tmp / "submitit-logs", SlurmOptions(cluster="local")))
    except ImportError:
        rows.append({"executor": "slurm", "skipped": "submitit not installed"})

    import torch

    result = {
        "command": "PYTHONPATH=. python benchmarks/sweep_overhead.py " + " ".join(sys.argv[1:]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__},
        "work": {"checkpoints": n, "tasks": 3, "limit": args.limit, "model": "tiny llama, hidden 32, 2 layers"},
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"{'executor':<45} {'wall s':>7} {'ratio':>6} {'overhead/job s':>15} {'2nd sweep jobs':>15}")
    for r in rows:
        if "skipped" in r:
            print(f"{r['executor']:<45} skipped: {r['skipped']}")
            continue
        print(f"{r['executor']:<45} {r['wall_s']:>7} {r['ratio']:>6} {r['overhead_per_job_s']:>15} "
              f"{r.get('second_sweep_jobs_submitted', '-'):>15}")
    print(args.out)


if __name__ == "__main__":
    main()
