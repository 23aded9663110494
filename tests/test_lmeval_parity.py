"""Per-request parity with real lm-eval 0.4.13 on identical prompts (golden made by benchmarks/lmeval_golden.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from evalsuite.backends.hf import HFBackend, HFOptions
from evalsuite.tiny import weights_digest
from evalsuite.runner import RunConfig, compute, prepare

GOLDEN = Path(__file__).parent / "golden" / "lmeval_xnli_ar.json"
# the model the golden was made with, kept beside it (a model trained on another CPU differs in its last bits)
GOLDEN_MODEL = Path(__file__).parent / "golden" / "lmeval_model"


def test_xnli_ar_lmeval_variant_reproduces_lm_eval_log_likelihoods(xnli_file: Path):
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert weights_digest(GOLDEN_MODEL) == golden["weights_sha256"], (
        f"{GOLDEN_MODEL} is not the model the lm-eval golden was made with: regenerate both with benchmarks/lmeval_golden.py")
    (p,) = prepare(RunConfig(model="x", tasks="xnli_ar", prompts=["lmeval"], limit=golden["rows"], data_dir=xnli_file.parent.parent))
    reqs = {r.continuation: r for pe in p.prompted for r in pe.requests}
    assert all(r.context == "" for r in reqs.values())  # lm-eval's formulation: empty context
    backend = HFBackend(str(GOLDEN_MODEL), HFOptions(device="cpu", dtype="float32"))
    got = compute(backend, list(reqs.values()))
    assert len(golden["requests"]) == 3 * golden["rows"]
    for g in golden["requests"]:
        r = reqs[g["continuation"]]  # the same prompt text, byte for byte
        # lm-eval sums float32 log-probs: past |ll| ≈ 800 one float32 step of its answer exceeds 1e-4
        tol = 1e-4 + 2 * float(np.spacing(np.float32(abs(g["loglikelihood"]))))
        assert abs(got[r.id].loglikelihood - g["loglikelihood"]) < tol, g["continuation"]
        assert got[r.id].is_greedy == g["is_greedy"]
