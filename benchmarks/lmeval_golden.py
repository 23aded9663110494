"""Make tests/golden/lmeval_xnli_ar.json: lm-eval 0.4.13's own per-request log-likelihoods.

    python benchmarks/lmeval_golden.py --lm-eval PATH/TO/venv/bin/lm_eval

Builds a tiny model (evalsuite.tiny.build_tiny_model(steps=300)) into tests/golden/lmeval_model/
(committed: training is bit-reproducible on one machine, not across CPUs, so the golden keeps
the weights its log-likelihoods were made with), runs `lm_eval --model hf --log_samples` with
lm-eval's xnli_ar template (empty context, each choice the whole sentence
"premise, صحيح? WORD, hypothesis") over a local copy of the first N rows of ALUE's XNLI-ar dev file, and stores the model fingerprint, the command and every
request's log-likelihood and is_greedy. tests/test_lmeval_parity.py compares evalsuite to it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lm-eval", required=True, help="the lm_eval executable (0.4.13)")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "alue" / "XNLI" / "arabic_dev.tsv")
    ap.add_argument("--rows", type=int, default=12)
    args = ap.parse_args()
    from evalsuite.fingerprint import fingerprint
    from evalsuite.tiny import build_tiny_model, weights_digest
    from run import lmeval_task

    tmp = Path(tempfile.mkdtemp(prefix="lmeval-golden-"))
    model = ROOT / "tests" / "golden" / "lmeval_model"
    shutil.rmtree(model, ignore_errors=True)
    build_tiny_model(model, steps=300)
    (model / "generation_config.json").unlink(missing_ok=True)  # not needed to score; one file fewer
    task_dir = lmeval_task(tmp, args.data, args.rows)
    cmd = [args.lm_eval, "--model", "hf", "--model_args", f"pretrained={model},dtype=float32", "--tasks", "xnli_ar_local",
           "--include_path", str(task_dir), "--device", "cpu", "--batch_size", "1", "--output_path", str(tmp / "out"), "--log_samples"]
    subprocess.run(cmd, check=True, env={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    (samples,) = list((tmp / "out").rglob("samples_xnli_ar_local_*.jsonl"))
    requests = []
    for line in samples.read_text(encoding="utf-8").splitlines():
        s = json.loads(line)
        args_ = s["arguments"]
        args_ = [args_[k] for k in sorted(args_, key=lambda k: int(k.rsplit("_", 1)[1]))] if isinstance(args_, dict) else args_
        for arg, resp in zip(args_, s["resps"]):
            ctx, cont = (arg["arg_0"], arg["arg_1"]) if isinstance(arg, dict) else arg
            ll, greedy = resp[0]
            requests.append({"doc_id": s["doc_id"], "context": ctx, "continuation": cont, "loglikelihood": float(ll),
                             "is_greedy": str(greedy) == "True"})
    out = {"lm_eval_version": "0.4.13", "model": "tests/golden/lmeval_model (evalsuite.tiny.build_tiny_model(steps=300))",
           "fingerprint": fingerprint(str(model)),
           "weights_sha256": weights_digest(model),
           "rows": args.rows, "command": " ".join(["lm_eval"] + cmd[1:]).replace(str(tmp), "<tmp>").replace(str(model), "tests/golden/lmeval_model"),
           "requests": requests}
    dest = ROOT / "tests" / "golden" / "lmeval_xnli_ar.json"
    dest.write_text(json.dumps(out, ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"{len(requests)} requests -> {dest}")


if __name__ == "__main__":
    main()
