"""A real run on the real XNLI-ar dev file, checked request by request against plain forward passes."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from typer.testing import CliRunner

from evalsuite.backends.base import PairEncoder
from evalsuite.cli import app


def test_xnli_ar_run_matches_reference_forward(tiny_model: Path, xnli_file: Path, tmp_path: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    res = CliRunner().invoke(app, ["run", "--model", str(tiny_model), "--tasks", "xnli_ar", "--data-dir",
                                   str(xnli_file.parent.parent), "--limit", "60", "--batch-tokens", "777",
                                   "--device", "cpu", "-o", str(tmp_path), "-q"])
    assert res.exit_code == 0, res.output
    path = Path(res.output.strip().splitlines()[-1])
    rec = json.loads(path.read_text(encoding="utf-8"))
    t = rec["tasks"]["xnli_ar"]
    assert set(t["prompts"]) == {"native", "native_qa", "lmeval", "en_instruct"}
    assert all(p["n"] == 60 for p in t["prompts"].values())
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(tiny_model)
    enc = PairEncoder(tok, model.config.max_position_embeddings)
    n = 0
    correct = {pid: 0 for pid in t["prompts"]}
    for line in (path.parent / t["samples_file"]).read_text(encoding="utf-8").splitlines():
        s = json.loads(line)
        lls = []
        for r in s["requests"]:
            (e,) = enc.pairs([(r["context"], r["continuation"])])
            with torch.no_grad():
                lp = torch.log_softmax(model(input_ids=torch.tensor([e.item.tokens[:-1]])).logits[0].float(), -1)
            tgt = torch.tensor(e.item.tokens[1:])
            ref = float(lp.gather(1, tgt[:, None])[e.item.start - 1:, 0].double().sum())
            assert abs(ref - r["loglikelihood"]) < 1e-4
            lls.append(r["loglikelihood"])
            n += 1
        pred = max(range(len(lls)), key=lambda i: lls[i])
        assert s["prediction"] == pred
        correct[s["prompt_id"]] += pred == s["gold"]
    assert n == 60 * 4 * 3
    for pid, p in t["prompts"].items():
        assert abs(p["metrics"]["acc"]["value"] - 100 * correct[pid] / 60) < 1e-9
