"""Per-request parity with real lm-eval 0.4.13 on identical prompts (golden made by benchmarks/lmeval_golden.py)."""

from __future__ import annotations

import json
from pathlib import Path

from evalsuite.backends.hf import HFBackend, HFOptions
from evalsuite.tiny import weights_digest
from evalsuite.runner import RunConfig, compute, prepare

GOLDEN = Path(__file__).parent / "golden" / "lmeval_xnli_ar.json"


def test_xnli_ar_lmeval_variant_reproduces_lm_eval_log_likelihoods(tiny_model: Path, xnli_file: Path):
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert weights_digest(tiny_model) == golden["weights_sha256"], (
        "the test fixture model is no longer bit-identical to the one the lm-eval golden was made with "
        "(evalsuite.tiny changed?): regenerate it with benchmarks/lmeval_golden.py")
    (p,) = prepare(RunConfig(model="x", tasks="xnli_ar", prompts=["lmeval"], limit=golden["rows"], data_dir=xnli_file.parent.parent))
    reqs = {r.continuation: r for pe in p.prompted for r in pe.requests}
    assert all(r.context == "" for r in reqs.values())  # lm-eval's formulation: empty context
    backend = HFBackend(str(tiny_model), HFOptions(device="cpu", dtype="float32"))
    got = compute(backend, list(reqs.values()))
    assert len(golden["requests"]) == 3 * golden["rows"]
    for g in golden["requests"]:
        r = reqs[g["continuation"]]  # the same prompt text, byte for byte
        assert abs(got[r.id].loglikelihood - g["loglikelihood"]) < 1e-4, g["continuation"]
        assert got[r.id].is_greedy == g["is_greedy"]
