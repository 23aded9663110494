"""Join responses to prompted examples: per-sample records and per-prompt metric values.

Every metric value carries a signature, a seeded cluster-aware bootstrap standard error
and 95% interval, the expected score of uniform random answers computed from the data
(exactly, or by 1,000 seeded Monte Carlo draws), and the majority-class baseline.
Scales: 0–100 for accuracy/F1/correlation(×100)/text metrics; raw for lower-is-better
metrics (perplexity, bits per byte/char, TER).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from evalsuite import __version__
from evalsuite.core.records import OutputType, Response
from evalsuite.metrics import LOWER_IS_BETTER, MetricValue, mc_predictions
from evalsuite.metrics.classification import jaccard_samples, multilabel_f1, pearson, spearman
from evalsuite.metrics.normalize import normalize, script_of
from evalsuite.metrics.text import rouge, sacre, sacre_stats
from evalsuite.metrics.uncertainty import Resampler, seed_of, summarize
from evalsuite.prompts import PromptedExample
from evalsuite.spec.loader import LoadedTask

N_BOOT = 1000
N_BOOT_SACRE = 200  # only when sacrebleu gives no segment statistics: rescoring the corpus per resample is slow
N_RANDOM = 1000


@dataclass(frozen=True)
class SampleScore:
    """One (example, prompt variant) with its requests' results and per-example metric values."""

    record: dict[str, Any]


@dataclass(frozen=True)
class PromptScore:
    """Scores of one task × prompt variant."""

    task: str
    prompt_id: str
    n: int
    metrics: dict[str, MetricValue]
    random_baseline: dict[str, float | None]
    """Expected score of uniform random predictions, per metric (None: not normalizable)."""
    majority_baseline: dict[str, float | None] = field(default_factory=dict)
    n_truncated: int = 0
    errors: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    """Extra breakdowns (per-class F1)."""


def _postprocess(text: str, how: str) -> str:
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


# ---- vectorised classification statistics (used by the bootstrap and the random baselines)

def _confusion(g: np.ndarray, p: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(g * k + p, minlength=k * k).reshape(k, k).astype(float)


def _f1s(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    tp = np.diag(c)
    fp = c.sum(0) - tp
    fn = c.sum(1) - tp
    d = 2 * tp + fp + fn
    f1 = np.where(d > 0, 2 * tp / np.maximum(d, 1e-300), 0.0)
    present = (c.sum(0) + c.sum(1)) > 0
    return f1, present


def _macro(c: np.ndarray) -> float:
    f1, present = _f1s(c)
    return float(f1[present].mean()) if present.any() else math.nan


def _mcc(c: np.ndarray) -> float:
    t, pr, s = c.sum(1), c.sum(0), c.sum()
    den = math.sqrt(max(0.0, (s * s - pr @ pr) * (s * s - t @ t)))
    return 0.0 if den == 0 else float((np.trace(c) * s - t @ pr) / den)


class _Collector:
    """Accumulates metric values with their uncertainty and baselines for one prompt."""

    def __init__(self, task: str, prompt_id: str, clusters: list[str], sig_base: str):
        self.task, self.prompt_id, self.sig_base = task, prompt_id, sig_base
        self.clusters = clusters
        self._rs: dict[int, Resampler] = {}
        self.values: dict[str, MetricValue] = {}
        self.random: dict[str, float | None] = {}
        self.majority: dict[str, float | None] = {}

    def resampler(self, n: int) -> Resampler:
        if n not in self._rs:
            self._rs[n] = Resampler(self.clusters, n, seed_of(self.task, self.prompt_id))
        return self._rs[n]

    def add(self, name: str, value: float | None, sig: str, dist: np.ndarray | None, random: float | None,
            majority: float | None = None, flag: str | None = None) -> None:
        se, ci = summarize(dist) if dist is not None and len(self.clusters) > 1 else (None, None)
        v = None if value is None or not math.isfinite(value) else float(value)
        self.values[name] = MetricValue(name, v, name not in LOWER_IS_BETTER, f"{sig}|{self.sig_base}",
                                        flag if v is not None else (flag or "undefined (no valid examples)"), se, ci)
        self.random[name] = random
        self.majority[name] = majority


def score_task(task: LoadedTask, prompted: list[PromptedExample], responses: dict[str, Response],
               backend_name: str) -> tuple[list[PromptScore], list[SampleScore]]:
    """Per prompt variant: metric values, baselines and uncertainty, plus the per-sample records."""
    spec = task.spec
    script = script_of(spec.languages[0])
    by_prompt: dict[str, list[PromptedExample]] = defaultdict(list)
    for pe in prompted:
        by_prompt[pe.prompt_id].append(pe)
    prompt_scores: list[PromptScore] = []
    samples: list[SampleScore] = []
    fixed = None if spec.random_baseline == "auto" else float(spec.random_baseline)
    for prompt_id, pes in by_prompt.items():
        resp = [[responses[r.id] for r in pe.requests] for pe in pes]
        bad = {i for i, rs in enumerate(resp) if any(r.error for r in rs)}
        errors = [f"{pes[i].example_id}: {next(r.error for r in resp[i] if r.error)}" for i in sorted(bad)]
        n_trunc = sum(any(r.truncated for r in rs) for rs in resp)
        keep = [i for i in range(len(pes)) if i not in bad]
        per_ex: list[dict[str, float]] = [dict() for _ in pes]
        preds_out: dict[int, Any] = {}
        details: dict[str, Any] = {}
        col = _Collector(spec.task, prompt_id, [pes[i].cluster for i in keep],
                         f"prompt:{prompt_id}|backend:{backend_name}|version:{__version__}")
        rs = col.resampler(N_BOOT)

        def mean_metric(name: str, vals: list[float], sig: str, random: float | None, majority: float | None = None) -> None:
            arr = np.asarray(vals, dtype=float)
            for k, i in enumerate(keep):
                per_ex[i][name] = float(arr[k])
            col.add(name, float(arr.mean()) if len(arr) else math.nan, sig, rs.mean(arr) if len(arr) else None, random, majority)

        match spec.output_type:
            case OutputType.MULTIPLE_CHOICE:
                _score_mc(spec, pes, resp, keep, per_ex, preds_out, details, col, rs, mean_metric, fixed)
            case OutputType.REGRESSION:
                values = np.asarray(spec.label_values or [], dtype=float)
                preds, golds = [], []
                for i in keep:
                    ll = np.array([r.loglikelihood or 0.0 for r in resp[i]])
                    w = np.exp(ll - ll.max())
                    w /= w.sum()
                    preds.append(float(w @ values))
                    golds.append(float(pes[i].target))
                    preds_out[i] = preds[-1]
                p_arr, g_arr = np.asarray(preds), np.asarray(golds)
                for m in spec.metrics:
                    fn = pearson if m.name == "pearson" else spearman
                    v, flag = fn(p_arr, g_arr)
                    dist = rs.stat(lambda idx, fn=fn: 100 * fn(p_arr[idx], g_arr[idx])[0]) if len(keep) > 2 else None
                    col.add(m.name, 100 * v, f"{m.name}|pred:expected_value_over_bins", dist, fixed if fixed is not None else 0.0,
                            None, flag)
            case OutputType.MULTI_LABEL:
                labels = spec.labels or []
                L = len(labels)
                G = np.zeros((len(keep), L), dtype=bool)
                P = np.zeros((len(keep), L), dtype=bool)
                for k, i in enumerate(keep):
                    lls = [r.loglikelihood or 0.0 for r in resp[i]]
                    P[k] = [lls[2 * j] > lls[2 * j + 1] for j in range(L)]
                    G[k] = [lab in pes[i].gold_labels for lab in labels]
                    preds_out[i] = [labels[j] for j in range(L) if P[k, j]]
                _score_multilabel(spec, G, P, labels, keep, per_ex, col, rs, fixed)
            case OutputType.TARGET_LOGLIKELIHOOD | OutputType.ROLLING_LOGLIKELIHOOD:
                target = spec.output_type is OutputType.TARGET_LOGLIKELIHOOD
                lls = np.array([resp[i][0].loglikelihood or 0.0 for i in keep])
                ntok = np.array([resp[i][0].n_tokens for i in keep], dtype=float)
                texts = [pes[i].requests[0].continuation if target else pes[i].requests[0].context for i in keep]
                nbytes = np.array([len(t.encode("utf-8")) for t in texts], dtype=float)
                nchars = np.array([len(t) for t in texts], dtype=float)
                nwords = np.array([max(1, len(t.split())) for t in texts], dtype=float)
                for k, i in enumerate(keep):
                    per_ex[i]["loglikelihood"] = float(lls[k])
                    if target:
                        preds_out[i] = bool(resp[i][0].is_greedy)
                ratio = {
                    "bits_per_byte": (lambda idx: -lls[idx].sum() / (math.log(2) * max(1.0, nbytes[idx].sum())), "bytes:utf8"),
                    "bits_per_char": (lambda idx: -lls[idx].sum() / (math.log(2) * max(1.0, nchars[idx].sum())), "chars:unicode"),
                    "perplexity": (lambda idx: math.exp(min(700.0, -lls[idx].sum() / max(1.0, ntok[idx].sum()))), "unit:token"),
                    "word_perplexity": (lambda idx: math.exp(min(700.0, -lls[idx].sum() / max(1.0, nwords[idx].sum()))), "unit:whitespace_word"),
                }
                allidx = np.arange(len(keep))
                for m in spec.metrics:
                    if m.name == "acc":
                        mean_metric("acc", [100.0 * bool(resp[i][0].is_greedy) for i in keep], "acc|greedy_match",
                                    fixed if fixed is not None else 0.0)
                    else:
                        fn, unit = ratio[m.name]
                        col.add(m.name, fn(allidx) if len(keep) else math.nan, f"{m.name}|{unit}",
                                rs.stat(fn) if len(keep) > 1 else None, None)
            case OutputType.GENERATE:
                preds = [_postprocess(resp[i][0].text or "", spec.generation.postprocess) for i in keep]
                refs = [pes[i].target for i in keep]
                for k, i in enumerate(keep):
                    preds_out[i] = preds[k]
                base = fixed if fixed is not None else 0.0
                for m in spec.metrics:
                    if m.name == "exact_match":
                        level = m.normalize or "strict"
                        vals = [100.0 * (normalize(p, script, level) == normalize(r, script, level)) for p, r in zip(preds, refs)]
                        mean_metric("exact_match", vals, f"exact_match|norm:{level}|script:{script}", base)
                    elif m.name in ("rouge1", "rouge2", "rougeL"):
                        vals = [100.0 * rouge(p, r, script)[m.name] for p, r in zip(preds, refs)]
                        mean_metric(m.name, vals, f"{m.name}|tok:whitespace+norm:strict|script:{script}", base)
                    else:
                        sname = {"chrfpp": "chrf++"}.get(m.name, m.name)
                        if not preds:
                            col.add(m.name, math.nan, m.name, None, None)
                            continue
                        val, sig, stats, from_stats = sacre_stats(sname, preds, refs)
                        if len(preds) <= 1:
                            dist = None
                        elif stats is not None and from_stats is not None:
                            # resampled corpus statistics: every resample, exactly as sacrebleu scores a corpus
                            dist = np.array([from_stats(row) for row in rs.sums(stats)])
                        else:
                            dist = rs.stat(lambda idx, s=sname: sacre(s, [preds[j] for j in idx], [refs[j] for j in idx])[0],
                                           N_BOOT_SACRE)
                        col.add(m.name, val, sig, dist, None if m.name == "ter" else base)
        prompt_scores.append(PromptScore(spec.task, prompt_id, len(keep), col.values, col.random, col.majority, n_trunc,
                                         errors, details))
        for i, pe in enumerate(pes):
            reqs = []
            for rq, r in zip(pe.requests, resp[i]):
                entry: dict[str, Any] = {"request_id": rq.id, "context": rq.context}
                if rq.kind.value != "generate":
                    entry.update(continuation=rq.continuation, loglikelihood=r.loglikelihood, is_greedy=r.is_greedy,
                                 n_tokens=r.n_tokens)
                else:
                    entry.update(generation=r.text)
                if r.truncated:
                    entry["truncated"] = True
                if r.error:
                    entry["error"] = r.error
                reqs.append(entry)
            rec: dict[str, Any] = {"task": spec.task, "prompt_id": prompt_id, "example_id": pe.example_id,
                                   "target": pe.target, "cluster": pe.cluster}
            if pe.gold is not None:
                rec["gold"] = pe.gold
                rec["choices"] = list(pe.choices)
            if pe.gold_labels or spec.output_type is OutputType.MULTI_LABEL:
                rec["gold_labels"] = list(pe.gold_labels)
            if i in preds_out:
                rec["prediction"] = preds_out[i]
            rec["requests"] = reqs
            rec["metrics"] = per_ex[i]
            samples.append(SampleScore(rec))
    return prompt_scores, samples


def _score_mc(spec: Any, pes: list[PromptedExample], resp: list[list[Response]], keep: list[int], per_ex: list[dict[str, float]],
              preds_out: dict[int, Any], details: dict[str, Any], col: _Collector, rs: Resampler,
              mean_metric: Callable[..., None], fixed: float | None) -> None:
    labels = spec.labels or []
    k = len(labels)
    n_ch = [len(pes[i].choices) for i in keep]
    lls = [[r.loglikelihood or 0.0 for r in resp[i][: n_ch[j]]] for j, i in enumerate(keep)]
    chs = [pes[i].choices for i in keep]
    golds = np.array([pes[i].gold for i in keep], dtype=np.int64)
    pred_acc = np.array(mc_predictions(lls, chs, "acc"), dtype=np.int64)
    for j, i in enumerate(keep):
        preds_out[i] = int(pred_acc[j])
    chance = 100.0 * float(np.mean([1 / n for n in n_ch])) if n_ch else None
    acc_base = fixed if fixed is not None else chance
    majority_label = int(np.bincount(golds, minlength=k).argmax()) if len(golds) else 0
    maj_pred = np.full(len(golds), majority_label)
    rng = np.random.default_rng(0)
    random_preds = rng.integers(0, k, size=(N_RANDOM, len(golds))) if len(golds) and k else None

    def random_mean(fn: Callable[[np.ndarray], float]) -> float | None:
        if random_preds is None:
            return None
        return 100.0 * float(np.mean([fn(_confusion(golds, p, k)) for p in random_preds]))

    for m in spec.metrics:
        match m.name:
            case "acc" | "acc_norm" | "acc_bytes":
                preds = np.array(mc_predictions(lls, chs, m.name), dtype=np.int64)
                how = {"acc": "raw", "acc_norm": "by:chars", "acc_bytes": "by:bytes"}[m.name]
                mean_metric(m.name, list(100.0 * (preds == golds)), f"{m.name}|{how}", acc_base,
                            100.0 * float(np.mean(maj_pred == golds)) if len(golds) else None)
            case "acc_pmi":
                uncond = [[r.loglikelihood or 0.0 for r in resp[i][n_ch[j]: 2 * n_ch[j]]] for j, i in enumerate(keep)]
                preds = np.array([int(np.argmax(np.array(a) - np.array(b))) for a, b in zip(lls, uncond)], dtype=np.int64)
                mean_metric(m.name, list(100.0 * (preds == golds)), "acc_pmi|uncond:prefix_token", acc_base,
                            100.0 * float(np.mean(maj_pred == golds)) if len(golds) else None)
            case "f1_macro":
                c = _confusion(golds, pred_acc, k)
                col.add(m.name, 100.0 * _macro(c), "f1_macro|labels:present|pred:argmax_ll",
                        rs.stat(lambda idx: 100.0 * _macro(_confusion(golds[idx], pred_acc[idx], k))),
                        fixed if fixed is not None else random_mean(_macro), 100.0 * _macro(_confusion(golds, maj_pred, k)))
                f1, _ = _f1s(c)
                details["per_class_f1"] = {labels[j]: 100.0 * float(f1[j]) for j in range(k)}
            case "f1_binary":
                pos = labels.index(m.positive)

                def fb(c: np.ndarray, pos: int = pos) -> float:
                    return float(_f1s(c)[0][pos])

                col.add(m.name, 100.0 * fb(_confusion(golds, pred_acc, k)), f"f1_binary|positive:{m.positive}",
                        rs.stat(lambda idx: 100.0 * fb(_confusion(golds[idx], pred_acc[idx], k))),
                        fixed if fixed is not None else random_mean(fb), 100.0 * fb(_confusion(golds, maj_pred, k)))
            case "mcc":
                col.add(m.name, 100.0 * _mcc(_confusion(golds, pred_acc, k)), "mcc|R_K",
                        rs.stat(lambda idx: 100.0 * _mcc(_confusion(golds[idx], pred_acc[idx], k))),
                        fixed if fixed is not None else 0.0, 0.0)
    if spec.breakdown:
        # each category scored on its own examples (GLUE-style diagnostics: F1, R3 = MCC, accuracy)
        cats = [pes[i].categories for i in keep]
        details["breakdown"] = {}
        for cat in spec.breakdown:
            idx = np.array([j for j, cs in enumerate(cats) if cat in cs], dtype=np.int64)
            if len(idx) == 0:
                continue
            c = _confusion(golds[idx], pred_acc[idx], k)
            details["breakdown"][cat] = {"n": int(len(idx)), "f1_macro": 100.0 * _macro(c), "mcc": 100.0 * _mcc(c),
                                         "acc": 100.0 * float(np.mean(golds[idx] == pred_acc[idx]))}


def _score_multilabel(spec: Any, G: np.ndarray, P: np.ndarray, labels: list[str], keep: list[int],
                      per_ex: list[dict[str, float]], col: _Collector, rs: Resampler, fixed: float | None) -> None:
    gs = [frozenset(labels[j] for j in np.flatnonzero(row)) for row in G]
    ps = [frozenset(labels[j] for j in np.flatnonzero(row)) for row in P]
    rng = np.random.default_rng(0)
    sims = [rng.random(G.shape) < 0.5 for _ in range(200 if len(G) else 0)]
    maj = np.tile(G.mean(0) > 0.5, (len(G), 1)) if len(G) else G

    def sets(M: np.ndarray) -> list[frozenset]:
        return [frozenset(labels[j] for j in np.flatnonzero(row)) for row in M]

    for m in spec.metrics:
        if m.name == "jaccard":
            vals = [100.0 * (1.0 if not (g | p) else len(g & p) / len(g | p)) for g, p in zip(gs, ps)]
            for k, i in enumerate(keep):
                per_ex[i]["jaccard"] = vals[k]
            rand = 100.0 * float(np.mean([jaccard_samples(gs, sets(S)) for S in sims])) if sims else None
            col.add("jaccard", float(np.mean(vals)) if vals else math.nan, "jaccard|average:samples|pred:yes>no",
                    rs.mean(np.asarray(vals)) if vals else None, fixed if fixed is not None else rand,
                    100.0 * jaccard_samples(gs, sets(maj)) if len(G) else None)
        else:
            avg = "micro" if m.name == "f1_micro" else "macro"
            rand = 100.0 * float(np.mean([multilabel_f1(gs, sets(S), labels, avg) for S in sims])) if sims else None
            col.add(m.name, 100.0 * multilabel_f1(gs, ps, labels, avg) if gs else math.nan, f"{m.name}|multi_label",
                    rs.stat(lambda idx, a=avg: 100.0 * multilabel_f1([gs[j] for j in idx], [ps[j] for j in idx], labels, a)),
                    fixed if fixed is not None else rand, 100.0 * multilabel_f1(gs, sets(maj), labels, avg) if len(G) else None)
