"""Join responses to prompted examples and compute per-sample and per-prompt scores."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from evalsuite import __version__
from evalsuite.core.records import OutputType, Response
from evalsuite.metrics import (
    MetricValue,
    accuracy,
    bits_per_byte,
    bleu,
    chrf,
    exact_match,
    f1_macro,
    f1_macro_random_baseline,
    mc_predictions,
    perplexity,
)
from evalsuite.metrics.normalize import script_of
from evalsuite.prompts import PromptedExample
from evalsuite.spec.loader import LoadedTask


@dataclass(frozen=True)
class SampleScore:
    """One (example, prompt variant) with its requests' results and per-example metric values."""

    record: dict[str, Any]
    """JSON-ready line of the per-sample file."""


@dataclass(frozen=True)
class PromptScore:
    """Scores of one task × prompt variant."""

    task: str
    prompt_id: str
    n: int
    metrics: dict[str, MetricValue]
    random_baseline: dict[str, float | None]
    """Expected score of uniform random predictions, per metric (None: not normalizable)."""
    n_truncated: int = 0
    errors: list[str] = field(default_factory=list)


def _postprocess(text: str, how: str, script: str) -> str:
    match how:
        case "strip":
            return text.strip()
        case "first_line":
            return text.strip().split("\n", 1)[0].strip()
        case "first_word":
            parts = text.split()
            return parts[0] if parts else ""
        case "none":
            return text
    raise ValueError(how)  # pragma: no cover


def score_task(task: LoadedTask, prompted: list[PromptedExample], responses: dict[str, Response],
               backend_name: str) -> tuple[list[PromptScore], list[SampleScore]]:
    """Per prompt variant: metric values, random baselines, and the per-sample records."""
    spec = task.spec
    script = script_of(spec.languages[0])
    by_prompt: dict[str, list[PromptedExample]] = defaultdict(list)
    for pe in prompted:
        by_prompt[pe.prompt_id].append(pe)
    prompt_scores: list[PromptScore] = []
    samples: list[SampleScore] = []
    for prompt_id, pes in by_prompt.items():
        per_ex: list[dict[str, float]] = [dict() for _ in pes]
        errors: list[str] = []
        n_trunc = 0
        resp = [[responses[r.id] for r in pe.requests] for pe in pes]
        bad = [i for i, rs in enumerate(resp) if any(r.error for r in rs)]
        for i in bad:
            errors.append(f"{pes[i].example_id}: {next(r.error for r in resp[i] if r.error)}")
        n_trunc = sum(any(r.truncated for r in rs) for rs in resp)
        keep = [i for i in range(len(pes)) if i not in set(bad)]
        values: dict[str, MetricValue] = {}
        baselines: dict[str, float | None] = {}
        preds_out: dict[int, Any] = {}
        sig_base = f"prompt:{prompt_id}|backend:{backend_name}|version:{__version__}"
        match spec.output_type:
            case OutputType.MULTIPLE_CHOICE:
                lls = [[r.loglikelihood or 0.0 for r in resp[i]] for i in keep]
                chs = [pes[i].choices for i in keep]
                golds = [pes[i].gold for i in keep]
                n_choices = [len(pes[i].choices) for i in keep]
                pred_acc = mc_predictions(lls, chs, "acc")
                for k, i in enumerate(keep):
                    preds_out[i] = pred_acc[k]
                for m in spec.metrics:
                    if m.name in ("acc", "acc_norm", "acc_bytes"):
                        preds = mc_predictions(lls, chs, m.name)
                        for k, i in enumerate(keep):
                            per_ex[i][m.name] = 100.0 * (preds[k] == golds[k])
                        val = accuracy(preds, golds)
                        base = 100.0 * sum(1 / n for n in n_choices) / max(1, len(n_choices))
                        sig = f"{m.name}|{'by:chars' if m.name == 'acc_norm' else 'by:bytes' if m.name == 'acc_bytes' else 'raw'}"
                    else:  # f1_macro
                        val = f1_macro(pred_acc, golds)
                        base = f1_macro_random_baseline([g or 0 for g in golds], len(spec.labels or []))
                        sig = "f1_macro|labels:present|pred:argmax_ll"
                    values[m.name] = MetricValue(m.name, _finite(val), True, f"{sig}|{sig_base}")
                    baselines[m.name] = base if spec.random_baseline == "auto" else float(spec.random_baseline)
            case OutputType.TARGET_LOGLIKELIHOOD | OutputType.ROLLING_LOGLIKELIHOOD:
                lls = [resp[i][0].loglikelihood or 0.0 for i in keep]
                ntok = [resp[i][0].n_tokens for i in keep]
                if spec.output_type is OutputType.TARGET_LOGLIKELIHOOD:
                    texts = [pes[i].requests[0].continuation for i in keep]
                else:
                    texts = [pes[i].requests[0].context for i in keep]
                nbytes = [len(t.encode("utf-8")) for t in texts]
                for k, i in enumerate(keep):
                    per_ex[i]["loglikelihood"] = lls[k]
                    if spec.output_type is OutputType.TARGET_LOGLIKELIHOOD:
                        preds_out[i] = bool(resp[i][0].is_greedy)
                for m in spec.metrics:
                    if m.name == "acc":
                        flags = [bool(resp[i][0].is_greedy) for i in keep]
                        for k, i in enumerate(keep):
                            per_ex[i]["acc"] = 100.0 * flags[k]
                        val = 100.0 * sum(flags) / max(1, len(flags))
                        values["acc"] = MetricValue("acc", _finite(val), True, f"acc|greedy_match|{sig_base}")
                        baselines["acc"] = 0.0 if spec.random_baseline == "auto" else float(spec.random_baseline)
                    elif m.name == "bits_per_byte":
                        values[m.name] = MetricValue(m.name, _finite(bits_per_byte(lls, nbytes)), False, f"bits_per_byte|bytes:utf8|{sig_base}")
                        baselines[m.name] = None
                    elif m.name == "perplexity":
                        values[m.name] = MetricValue(m.name, _finite(perplexity(lls, ntok)), False, f"perplexity|unit:token|{sig_base}")
                        baselines[m.name] = None
            case OutputType.GENERATE:
                how = spec.generation.postprocess
                preds = [_postprocess(resp[i][0].text or "", how, script) for i in keep]
                refs = [pes[i].target for i in keep]
                for k, i in enumerate(keep):
                    preds_out[i] = preds[k]
                for m in spec.metrics:
                    if m.name == "exact_match":
                        level = m.normalize or "strict"
                        ems = exact_match(preds, refs, script, level)
                        for k, i in enumerate(keep):
                            per_ex[i]["exact_match"] = ems[k]
                        val = sum(ems) / max(1, len(ems))
                        values[m.name] = MetricValue(m.name, _finite(val), True, f"exact_match|norm:{level}|script:{script}|{sig_base}")
                    elif m.name == "bleu":
                        val, sig = bleu(preds, refs) if preds else (float("nan"), "bleu")
                        values[m.name] = MetricValue(m.name, _finite(val), True, f"{sig}|{sig_base}")
                    elif m.name == "chrf":
                        val, sig = chrf(preds, refs) if preds else (float("nan"), "chrf")
                        values[m.name] = MetricValue(m.name, _finite(val), True, f"{sig}|{sig_base}")
                    baselines[m.name] = 0.0 if spec.random_baseline == "auto" else float(spec.random_baseline)
        for name, mv in list(values.items()):
            if mv.value is None:
                values[name] = MetricValue(mv.name, None, mv.higher_is_better, mv.signature, "undefined (no valid examples)")
        prompt_scores.append(PromptScore(spec.task, prompt_id, len(keep), values, baselines, n_trunc, errors))
        for i, pe in enumerate(pes):
            reqs = []
            for rq, rs in zip(pe.requests, resp[i]):
                entry: dict[str, Any] = {"request_id": rq.id, "context": rq.context}
                if rq.kind.value != "generate":
                    entry.update(continuation=rq.continuation, loglikelihood=rs.loglikelihood,
                                 is_greedy=rs.is_greedy, n_tokens=rs.n_tokens)
                else:
                    entry.update(generation=rs.text)
                if rs.truncated:
                    entry["truncated"] = True
                if rs.error:
                    entry["error"] = rs.error
                reqs.append(entry)
            rec: dict[str, Any] = {
                "task": spec.task, "prompt_id": prompt_id, "example_id": pe.example_id,
                "target": pe.target, "cluster": pe.cluster,
            }
            if pe.gold is not None:
                rec["gold"] = pe.gold
                rec["choices"] = list(pe.choices)
            if i in preds_out:
                rec["prediction"] = preds_out[i]
            rec["requests"] = reqs
            rec["metrics"] = per_ex[i]
            samples.append(SampleScore(rec))
    return prompt_scores, samples


def _finite(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)
