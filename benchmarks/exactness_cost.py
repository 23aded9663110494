"""What exact scoring costs on a sliding-window model, beside a Llama of the same size (issue 14).

Two models of one shape (hidden 256, 4 layers, 8 heads / 4 key-value heads, vocab 2k BPE trained
on the requests' own text, untrained weights with initializer_range 0.1): a Llama, and a Mistral
whose sliding window (default 16 tokens) is shorter than most XNLI-ar sequences, and one whose window (256)
is longer than all of them, as a 4,096-token window under usual prompts. All three score the
same requests (XNLI-ar ``lmeval`` prompt, ``--limit`` examples, from ``--data-dir``; the project's
demo suite without it) through the hf backend in each engine the models can get, in one process,
side by side: wall time of the scoring, seconds inside forward passes, tokens computed, the engine
that ran, and the largest difference from the same model's plain (no reuse) run.

    python benchmarks/exactness_cost.py --data-dir ../shared/data/alue --limit 300

Writes ``benchmarks/results/exactness-<UTC time>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def requests(data_dir: Path | None, limit: int) -> list:
    from evalsuite.core.records import RequestKind
    from evalsuite.runner import RunConfig, prepare

    cfg = (RunConfig(model="x", tasks="xnli_ar", data_dir=data_dir, prompts=["lmeval"], limit=limit) if data_dir
           else RunConfig(model="x", suite="demo"))
    unique = {}
    for p in prepare(cfg):
        for pe in p.prompted:
            for r in pe.requests:
                if r.kind is RequestKind.LOGLIKELIHOOD:
                    unique.setdefault(r.id, r)
    return list(unique.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=None, help="folder holding XNLI/arabic_dev.tsv (ALUE layout)")
    ap.add_argument("--limit", type=int, default=300)
    ap.add_argument("--window", type=int, default=16)
    ap.add_argument("--wide-window", type=int, default=256)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch
    import transformers as tf

    from evalsuite.backends.hf import HFBackend, HFOptions
    from evalsuite.runner import compute
    from evalsuite.tiny import build_tokenizer

    reqs = requests(args.data_dir, args.limit)
    tok = build_tokenizer(sorted({r.context + r.continuation for r in reqs}), vocab=2000, max_positions=1024)
    shape = dict(vocab_size=len(tok), hidden_size=256, intermediate_size=512, num_hidden_layers=4, num_attention_heads=8,
                 num_key_value_heads=4, max_position_embeddings=1024, initializer_range=0.1, tie_word_embeddings=False,
                 bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    models = {"llama": tf.LlamaConfig(**shape), f"mistral (sliding_window {args.window})":
              tf.MistralConfig(**shape, sliding_window=args.window),
              # a window longer than every sequence, as Mistral's or Gemma's 4,096 under usual prompts
              f"mistral (sliding_window {args.wide_window})": tf.MistralConfig(**shape, sliding_window=args.wide_window)}
    modes = {"default": {}, "--no-packing": {"packing": False}, "--no-prefix-sharing": {"share_prefixes": False}}
    rows = []
    for mname, cfg in models.items():
        torch.manual_seed(0)
        model = tf.AutoModelForCausalLM.from_config(cfg, dtype=torch.float32).eval()
        got = {}
        for mode, kw in modes.items():
            b = HFBackend("x", HFOptions(device="cpu", dtype="float32", **kw), model=model, tokenizer=tok)
            t0 = time.perf_counter()
            got[mode] = compute(b, reqs)
            wall = time.perf_counter() - t0
            rows.append({"model": mname, "mode": mode, "engine": b.engine_info["engine"],
                         "engine_reason": b.engine_info["engine_reason"], "wall_s": round(wall, 2),
                         "forward_s": round(b.forward_s, 2), "tokens_computed": b.tokens_computed, "calls": b.calls,
                         "requests": len(reqs)})
            print(json.dumps(rows[-1], ensure_ascii=False), flush=True)
        plain = got["--no-prefix-sharing"]
        for row in rows:
            if row["model"] == mname:
                row["max_abs_delta_vs_plain"] = max(abs(got[row["mode"]][r.id].loglikelihood - plain[r.id].loglikelihood)
                                                    for r in reqs)
    lens = sorted(len(tok(r.context + r.continuation, add_special_tokens=False)["input_ids"]) for r in reqs)
    meta = {"created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "command": "python benchmarks/exactness_cost.py" + (" --data-dir <ALUE folder>" if args.data_dir else "")
                       + f" --limit {args.limit} --window {args.window} --wide-window {args.wide_window}",
            "data": "xnli_ar lmeval prompt" if args.data_dir else "demo suite", "limit": args.limit,
            "window": args.window, "wide_window": args.wide_window, "sequence_tokens_median": lens[len(lens) // 2], "sequence_tokens_max": lens[-1],
            "cpu": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "transformers": tf.__version__}
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H-%M-%S")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"exactness-{stamp}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2, ensure_ascii=False)
                                                      + "\n", encoding="utf-8")
    base = {r["model"]: r for r in rows if r["mode"] == "default"}
    llama = base["llama"]
    md = [f"`{meta['command']}` ({meta['created']}; {len(reqs)} requests, sequences median "
          f"{meta['sequence_tokens_median']} / max {meta['sequence_tokens_max']} tokens; {meta['cpu']}, "
          f"{meta['torch_threads']} torch threads)", "",
          "| model | options | engine | wall s | forward s | tokens computed | × Llama default tokens | × Llama default wall "
          "| max \\|Δ\\| vs plain |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['model']} | {r['mode']} | {r['engine']} | {r['wall_s']} | {r['forward_s']} | {r['tokens_computed']} | "
                  f"{r['tokens_computed'] / llama['tokens_computed']:.2f} | {r['wall_s'] / llama['wall_s']:.2f} | "
                  f"{r['max_abs_delta_vs_plain']:.1e} |")
    (args.out / f"exactness-{stamp}.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    print("\n".join(md))


if __name__ == "__main__":
    main()
