"""Speed benchmark, side by side in one run: raw forward, evalsuite hf, lm-eval hf (and vllm where installed).

    python benchmarks/run.py [--data ../shared/data/alue/XNLI/arabic_dev.tsv] [--limit N] [--skip-lmeval]

Builds (or reuses, under benchmarks/.cache) a ~30M-parameter Llama (hidden 512, 8 layers,
vocab 8k; tokenizer trained on the XNLI-ar text itself) and times, each as its own process
with wall time and peak RSS (getrusage of the child):

1. raw forward: plain batched forward (batch 16, length-sorted) over every request's full
   token sequence of the `lmeval` variant — what a harness without prefix reuse computes;
2. evalsuite hf, `lmeval` variant, with and without prefix reuse, and with all 4 variants;
3. evalsuite hf again on the same command: everything from the request cache;
4. lm-eval 0.4.13 `--model hf` on the same rows and template (a local-file copy of its
   xnli_ar task), installed in its own venv (`benchmarks/.cache/venv-lmeval`) by this script;
5. evalsuite vllm, when `--vllm-python` points at an interpreter with vllm(-cpu).

Results: benchmarks/results/<time>.json and .md, with the machine description.
Never a timed unit test: run it by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource  # noqa: F401  (used by the wrapper string)
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / ".cache"
RESULTS = ROOT / "benchmarks" / "results"


def build_model(data: Path) -> Path:
    out = CACHE / "llama30m"
    if (out / "config.json").exists():
        return out
    lines = []
    for line in data.read_text(encoding="utf-8").splitlines()[1:]:
        parts = line.split("\t")
        if len(parts) >= 3:
            lines += [parts[1], parts[2]]
    sys.path.insert(0, str(ROOT))
    from evalsuite.tiny import build_tiny_model, corpus

    build_tiny_model(out, steps=0, hidden=512, layers=8, vocab=8000, max_positions=1024, text=sorted(set(lines)) + corpus())
    return out


_WRAP = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:]); "
         "sys.stderr.write('\\nPEAK_RSS_KB=%d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(p.returncode)")


def timed(cmd: list[str], env: dict | None = None, cwd: Path | None = None) -> dict:
    """Run a command in a fresh wrapper process: wall seconds and that command's own peak RSS (MB)."""
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", _WRAP, *cmd], capture_output=True, text=True, env={**os.environ, **(env or {})}, cwd=cwd)
    wall = time.perf_counter() - t
    peak = 0
    for line in p.stderr.splitlines():
        if line.startswith("PEAK_RSS_KB="):
            peak = int(line.split("=")[1])
    return {"cmd": " ".join(cmd), "rc": p.returncode, "wall_s": round(wall, 2), "peak_rss_mb": round(peak / 1024, 1),
            "stdout_tail": p.stdout[-1500:], "stderr_tail": p.stderr[-1500:]}


RAW = r'''
import json, sys, time, torch
sys.path.insert(0, sys.argv[4])
from transformers import AutoModelForCausalLM, AutoTokenizer
from evalsuite.backends.base import PairEncoder
from evalsuite.runner import RunConfig, prepare
model = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32).eval()
tok = AutoTokenizer.from_pretrained(sys.argv[1])
enc = PairEncoder(tok, model.config.max_position_embeddings)
cfg = RunConfig(model="x", tasks="xnli_ar", data_dir=__import__("pathlib").Path(sys.argv[2]), prompts=["lmeval"],
                limit=int(sys.argv[3]) if sys.argv[3] != "0" else None)
reqs = {}
for p in prepare(cfg):
    for pe in p.prompted:
        for r in pe.requests: reqs.setdefault(r.id, r)
items = [e.item for e in enc.pairs([(r.context, r.continuation) for r in reqs.values()])]
items.sort(key=lambda it: len(it.tokens))
t = time.perf_counter(); tokens = 0
with torch.no_grad():
    for i in range(0, len(items), 16):
        b = items[i:i + 16]; L = max(len(x.tokens) - 1 for x in b)
        ids = torch.zeros((len(b), L), dtype=torch.long); m = torch.zeros((len(b), L), dtype=torch.long)
        for j, x in enumerate(b):
            ids[j, :len(x.tokens) - 1] = torch.tensor(x.tokens[:-1]); m[j, :len(x.tokens) - 1] = 1
        lp = torch.log_softmax(model(input_ids=ids, attention_mask=m).logits.float(), -1)
        tokens += int(m.sum())
print(json.dumps({"requests": len(items), "tokens": tokens, "forward_s": time.perf_counter() - t}))
'''


def lmeval_task(tmp: Path, data: Path, limit: int) -> Path:
    """A local-file copy of lm-eval 0.4.13's xnli_ar task (same template and words)."""
    rows = []
    lab = {"entailment": 0, "neutral": 1, "contradiction": 2}
    for line in data.read_text(encoding="utf-8").splitlines()[1:]:
        p = line.split("\t")
        if len(p) >= 4:
            rows.append({"premise": p[1], "hypothesis": p[2], "label": lab[p[3].strip()]})
    if limit:
        rows = rows[:limit]
    (tmp / "xnli_ar_local.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    (tmp / "xnli_ar_local.yaml").write_text(f"""task: xnli_ar_local
dataset_path: json
dataset_kwargs:
  data_files:
    validation: {tmp / 'xnli_ar_local.jsonl'}
validation_split: validation
output_type: multiple_choice
doc_to_text: ''
doc_to_choice: '{{{{[premise+", صحيح? نعم, "+hypothesis, premise+", صحيح? لذا, "+hypothesis, premise+", صحيح? رقم, "+hypothesis]}}}}'
doc_to_target: label
target_delimiter: ' '
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
""", encoding="utf-8")
    return tmp


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "alue" / "XNLI" / "arabic_dev.tsv")
    ap.add_argument("--limit", type=int, default=0, help="first N examples (0 = all 2,490)")
    ap.add_argument("--skip-lmeval", action="store_true")
    ap.add_argument("--vllm-python", default=None)
    args = ap.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    model = build_model(args.data)
    data_dir = args.data.parent.parent
    tmp = Path(tempfile.mkdtemp(prefix="evalsuite-bench-"))
    env = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT),
           "EVALSUITE_CACHE": str(tmp / "cache")}
    lim = ["--limit", str(args.limit)] if args.limit else []
    es = [sys.executable, "-m", "evalsuite", "run", "--model", str(model), "--tasks", "xnli_ar", "--data-dir", str(data_dir),
          "--backend", "hf", "--device", "cpu", "--dtype", "float32", "-q", *lim]
    out: dict = {"machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()},
                 "model": str(model.relative_to(ROOT)), "limit": args.limit or 2490, "runs": {}}
    r = timed([sys.executable, "-c", RAW, str(model), str(data_dir), str(args.limit), str(ROOT)], env)
    out["runs"]["raw_forward"] = r
    out["raw"] = json.loads(r["stdout_tail"].strip().splitlines()[-1]) if r["rc"] == 0 else None
    out["runs"]["evalsuite_hf_lmeval"] = timed(es + ["--prompts", "lmeval", "-o", str(tmp / "o1")], env)
    out["runs"]["evalsuite_hf_lmeval_cached"] = timed(es + ["--prompts", "lmeval", "-o", str(tmp / "o1")], env)
    out["runs"]["evalsuite_hf_lmeval_no_prefix_reuse"] = timed(es + ["--prompts", "lmeval", "--no-prefix-sharing", "--no-cache",
                                                                     "-o", str(tmp / "o2")], env)
    out["runs"]["evalsuite_hf_all_variants"] = timed(es + ["--no-cache", "-o", str(tmp / "o3")], env)
    if args.vllm_python:
        vl = [args.vllm_python, "-m", "evalsuite", "run", "--model", str(model), "--tasks", "xnli_ar", "--data-dir", str(data_dir),
              "--backend", "vllm", "--dtype", "float32", "--enforce-eager", "--no-cache", "-q", "--prompts", "lmeval", *lim]
        out["runs"]["evalsuite_vllm_lmeval"] = timed(vl + ["-o", str(tmp / "o4")], {**env, "VLLM_CPU_OMP_THREADS_BIND": "0-1",
                                                                                   "VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "VLLM_CPU_KVCACHE_SPACE": "2"})
    if not args.skip_lmeval:
        venv = CACHE / "venv-lmeval"
        if not (venv / "bin" / "lm_eval").exists():
            subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
            subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "lm-eval[hf]==0.4.13"], check=True)
        task_dir = lmeval_task(tmp, args.data, args.limit)
        out["runs"]["lmeval_hf"] = timed([str(venv / "bin" / "lm_eval"), "--model", "hf", "--model_args",
                                          f"pretrained={model},dtype=float32", "--tasks", "xnli_ar_local", "--include_path", str(task_dir),
                                          "--device", "cpu", "--batch_size", "16", "--output_path", str(tmp / "lmeval"),
                                          "--log_samples"], env)
    for k, v in out["runs"].items():
        if k.startswith("evalsuite") and v["rc"] == 0:
            try:
                rec = json.loads(Path(v["stdout_tail"].strip().splitlines()[-1]).read_text(encoding="utf-8"))
                v["timings"] = rec["timings"]
                v["acc"] = {p: m["metrics"]["acc"]["value"] for p, m in rec["tasks"]["xnli_ar"]["prompts"].items()}
            except (OSError, ValueError, KeyError, IndexError):
                pass
    for v in out["runs"].values():  # keep the output of failed runs only
        if v.get("rc") == 0:
            v.pop("stdout_tail", None)
            v.pop("stderr_tail", None)
    # no machine paths in the saved results
    text = json.dumps(out, ensure_ascii=False, indent=2)
    for path, shown in ((str(tmp), "<tmp>"), (str(ROOT.parent / "shared"), "../shared"), (str(ROOT) + "/", ""),
                        (str(ROOT), "."), (sys.executable, "python")):
        text = text.replace(path, shown)
    out = json.loads(text)
    stamp = time.strftime("%Y-%m-%dT%H-%M-%S", time.gmtime())
    (RESULTS / f"{stamp}.json").write_text(json.dumps(out, ensure_ascii=False, indent=2), encoding="utf-8")
    (RESULTS / f"{stamp}.md").write_text(markdown(out), encoding="utf-8")
    print(markdown(out))


def markdown(out: dict) -> str:
    runs = out["runs"]
    base = runs.get("lmeval_hf", {}).get("wall_s")
    raw = runs.get("raw_forward", {}).get("wall_s")
    lines = [f"# Benchmark ({out['limit']} XNLI-ar examples, {out['model']})", "",
             f"machine: {out['machine']}", "",
             "| run | wall s | ratio to raw forward | ratio to lm-eval | peak RSS MB | requests | tokens computed | acc (lmeval) |",
             "|---|---|---|---|---|---|---|---|"]
    for k, v in runs.items():
        t = v.get("timings") or {}
        is_raw = k == "raw_forward"
        tokens = (out.get("raw") or {}).get("tokens") if is_raw else t.get("tokens_computed")
        reqs = (out.get("raw") or {}).get("requests") if is_raw else t.get("unique_requests")
        acc = (v.get("acc") or {}).get("lmeval")
        to_raw = f"{v['wall_s'] / raw:.2f}" if raw else ""
        to_lm = f"{v['wall_s'] / base:.2f}" if base else ""
        acc_s = "" if acc is None else f"{acc:.2f}"
        lines.append(f"| {k} | {v['wall_s']} | {to_raw} | {to_lm} | {v['peak_rss_mb']} | {reqs or ''} | {tokens or ''} | {acc_s} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
