"""Issue-8 measurement: a second `evalsuite track` over an evaluated series costs almost nothing.

    python benchmarks/series_incremental.py [--limit N]

Uses the ~30M-parameter Llama of benchmarks/run.py as a one-checkpoint series
(runs/exp/checkpoint-1000 → a symlink), tracks XNLI-ar (all 2,490 examples, `lmeval`
variant) twice, and prints both wall times, their ratio, and the second run's model loads
and backend calls (both must be 0).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data" / "alue")
    a = ap.parse_args()
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from run import build_model

    model = build_model(a.data_dir / "XNLI" / "arabic_dev.tsv")
    tmp = Path(tempfile.mkdtemp(prefix="evalsuite-series-"))
    series = tmp / "runs" / "exp"
    series.mkdir(parents=True)
    (series / "checkpoint-1000").symlink_to(model)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EVALSUITE_CACHE": str(tmp / "cache"), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "evalsuite", "track", str(series), "--tasks", "xnli_ar", "--prompts", "lmeval", "--data-dir",
           str(a.data_dir), "--device", "cpu", "-o", str(tmp / "results")] + (["--limit", str(a.limit)] if a.limit else [])
    walls, outs = [], []
    for _ in range(2):
        t = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
        walls.append(time.perf_counter() - t)
        outs.append(p.stdout.strip().splitlines()[-1])
    report = {"first_s": round(walls[0], 2), "second_s": round(walls[1], 2), "ratio": round(walls[1] / walls[0], 4),
              "first": outs[0], "second": outs[1]}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
