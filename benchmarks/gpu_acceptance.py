"""GPU acceptance check for the vllm backend: run as is on a machine with CUDA GPUs and vllm.

    python benchmarks/gpu_acceptance.py --model PATH_OR_HUB_ID [--data-dir ALUE_DIR] [--limit 500]

1. parity: per-request log-likelihoods of `--backend vllm` against `--backend hf`, both bf16,
   on XNLI-ar (lmeval and native variants) — tolerance 0.05 nats per request (bf16 kernels
   differ between the two engines; fp32 agrees to ~1e-5), is_greedy agreement ≥ 99%,
   identical accuracy up to near-ties; greedy generations on calame_ar_gen compared too;
2. tensor parallel and data parallel: the same vllm run with --tensor-parallel-size 2 and with
   --data-parallel-size 2 when 2+ GPUs exist, log-likelihoods within the same tolerance;
3. throughput: requests/s and tokens/s (tokens the model computed) of each run, and the
   vllm run with --vllm-strategy naive (lm-eval's way: one prompt-logprobs request per
   sequence, no prefix cache) for the speed-up of the shared-context strategy.
Exit code 0 when every check passes; a JSON report is printed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

TOL = 0.05


def run(args: list[str]) -> Path:
    p = subprocess.run([sys.executable, "-m", "evalsuite", "run", *args, "-q", "--no-cache"], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"evalsuite failed: {' '.join(args)}\n{p.stderr[-3000:]}")
    return Path(p.stdout.strip().splitlines()[-1])


def samples(results: Path) -> dict:
    rec = json.loads(results.read_text(encoding="utf-8"))
    out = {}
    for name, t in rec["tasks"].items():
        for line in (results.parent / t["samples_file"]).read_text(encoding="utf-8").splitlines():
            s = json.loads(line)
            for i, r in enumerate(s["requests"]):
                out[(name, s["prompt_id"], s["example_id"], i)] = r
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--limit", type=int, default=500)
    a = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        sys.exit("no CUDA GPU: this script is for GPU machines")
    tmp = Path(tempfile.mkdtemp())
    common = ["--model", a.model, "--tasks", "xnli_ar,calame_ar_gen", "--prompts", "lmeval,native,raw", "--dtype", "bfloat16",
              "--limit", str(a.limit)] + (["--data-dir", a.data_dir] if a.data_dir else [])
    report: dict = {"tolerance_nats": TOL}
    hf = run(common + ["--backend", "hf", "--device", "cuda", "-o", str(tmp / "hf")])
    vl = run(common + ["--backend", "vllm", "-o", str(tmp / "vllm")])
    runs = {"hf": hf, "vllm": vl}
    runs["vllm_naive"] = run(common + ["--backend", "vllm", "--vllm-strategy", "naive", "-o", str(tmp / "naive")])
    if torch.cuda.device_count() >= 2:
        runs["vllm_tp2"] = run(common + ["--backend", "vllm", "--tensor-parallel-size", "2", "-o", str(tmp / "tp2")])
        runs["vllm_dp2"] = run(common + ["--backend", "vllm", "--data-parallel-size", "2", "-o", str(tmp / "dp2")])
    ref = samples(hf)
    ok = True
    for name, path in runs.items():
        rec = json.loads(path.read_text(encoding="utf-8"))
        t = rec["timings"]
        entry = {"compute_s": t["compute_s"], "requests_per_s": round(t["unique_requests"] / max(t["compute_s"], 1e-9), 1),
                 "tokens_per_s": round((t.get("tokens_computed") or 0) / max(t["compute_s"], 1e-9), 1)}
        if name != "hf":
            got = samples(path)
            lls = [(abs(got[k]["loglikelihood"] - r["loglikelihood"])) for k, r in ref.items() if r.get("loglikelihood") is not None]
            greedy = [got[k].get("is_greedy") == r.get("is_greedy") for k, r in ref.items() if r.get("is_greedy") is not None]
            gens = [got[k].get("generation") == r.get("generation") for k, r in ref.items() if "generation" in r]
            entry.update(max_ll_diff=max(lls), greedy_agreement=sum(greedy) / len(greedy),
                         generation_agreement=sum(gens) / max(1, len(gens)))
            ok = ok and entry["max_ll_diff"] < TOL and entry["greedy_agreement"] >= 0.99
        report[name] = entry
    report["pass"] = ok
    print(json.dumps(report, indent=2))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
