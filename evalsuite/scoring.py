"""Join responses to prompted examples: per-sample records and per-prompt metric values.

Every metric value carries a signature, a seeded cluster-aware bootstrap standard error
and 95% interval (resamples shared by every prompt of a task), and the metric's trivial
baseline computed from the data (the family rules are in ``metrics/registry.py``). The
headline metric also keeps its bootstrap distribution and seeded draws of a chance-level
predictor, which ``aggregate.aggregate_task`` turns into intervals and chance.
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
from evalsuite.aggregate import PromptInput, TaskAggregate, aggregate_task
from evalsuite.core.records import OutputType, Response
from evalsuite.metrics import MetricValue, mc_predictions
from evalsuite.metrics import registry
from evalsuite.metrics.classification import (confusion, f1_from_confusion, macro_f1_from_confusion, mcc_from_confusion,
                                              multilabel_f1, pearson, spearman)
from evalsuite.metrics.normalize import first_word, gloria_equal, gloria_word, normalize, script_of
from evalsuite.metrics.text import rouge, sacre, sacre_stats
from evalsuite.metrics.uncertainty import Resampler, seed_of, summarize
from evalsuite.prompts import PromptedExample
from evalsuite.spec.loader import LoadedTask

N_BOOT = 1000
N_BOOT_SACRE = 200  # only when sacrebleu gives no segment statistics: rescoring the corpus per resample is slow
N_RANDOM = 1000  # chance-level draws per prompt (classification, correlation)
N_DERANGE = 40  # seeded derangements per prompt (text metrics: each one rescores the corpus)


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
    n_truncated: int = 0
    errors: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    """Extra breakdowns (per-class F1) and every baseline candidate per metric."""
    dists: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)
    """Bootstrap distribution per metric (not written to results)."""
    chance: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)
    """Seeded draws of a chance-level predictor's score per metric (not written to results)."""
    chance_exact: dict[str, tuple[int, float]] = field(default_factory=dict, repr=False, compare=False)
    """(n, p) where a chance-level score is exactly 100·Binomial(n, p)/n."""


def aggregate_prompts(metric: str, scores: list[PromptScore]) -> TaskAggregate:
    """The task's headline across its prompt variants (normalized, intervals, chance), from scoring's own numbers."""
    d = registry.get(metric)
    inputs = []
    for s in scores:
        mv = s.metrics.get(metric)
        inputs.append(PromptInput(s.prompt_id, mv.value if mv else None, mv.baseline if mv else None, s.n,
                                  s.dists.get(metric), s.chance.get(metric), s.chance_exact.get(metric)))
    return aggregate_task(d, inputs)


def _postprocess(text: str, how: str, script: str) -> str:
    match how:
        case "strip":
            return text.strip()
        case "first_line":
            return text.strip().split("\n", 1)[0].strip()
        case "first_word":
            return first_word(text, script)
        case "gloria":
            return gloria_word(text)
        case "none":
            return text
    raise ValueError(how)  # pragma: no cover


Baseline = tuple[float | None, str, dict[str, float]]
"""(value, which candidate it is, every candidate) on the metric's scale."""


def _best(cands: dict[str, float]) -> Baseline:
    """The trivial baseline: the best-scoring candidate (uniform guessing, label prior, each constant, ...)."""
    finite = {k: v for k, v in cands.items() if v is not None and math.isfinite(v)}
    if not finite:
        return None, "none", {}
    kind = max(sorted(finite), key=lambda k: finite[k])
    return finite[kind], kind, finite


def _fixed_or(fixed: float | None, make: Callable[[], Baseline]) -> Baseline:
    return (fixed, "fixed (task YAML random_baseline)", {}) if fixed is not None else make()


def _derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A permutation without fixed points: one random n-cycle (n ≥ 2)."""
    order = rng.permutation(n)
    d = np.empty(n, dtype=np.int64)
    d[order] = np.roll(order, -1)
    return d


class _Collector:
    """Accumulates metric values with their uncertainty and baselines for one prompt."""

    def __init__(self, task: str, prompt_id: str, clusters: list[str], sig_base: str):
        self.task, self.prompt_id, self.sig_base = task, prompt_id, sig_base
        self.clusters = clusters
        self._rs: dict[int, Resampler] = {}
        self.values: dict[str, MetricValue] = {}
        self.baselines: dict[str, dict[str, float]] = {}
        self.dists: dict[str, np.ndarray] = {}
        self.chance: dict[str, np.ndarray] = {}
        self.chance_exact: dict[str, tuple[int, float]] = {}

    def resampler(self, n: int) -> Resampler:
        # seeded by task only: every prompt of a task (same examples) sees the same resamples, so the
        # distributions of its prompts are joint (median/mean across prompts, paired comparisons)
        if n not in self._rs:
            self._rs[n] = Resampler(self.clusters, n, seed_of(self.task))
        return self._rs[n]

    def rng(self, purpose: str) -> np.random.Generator:
        """Seeded per (task, prompt, purpose): chance draws of different prompts are independent."""
        return np.random.default_rng(seed_of(self.task, self.prompt_id, purpose))

    def add(self, name: str, value: float | None, sig: str, dist: np.ndarray | None, baseline: Baseline,
            flag: str | None = None, chance: np.ndarray | None = None, exact: tuple[int, float] | None = None) -> None:
        se, ci = summarize(dist) if dist is not None and len(self.clusters) > 1 else (None, None)
        v = None if value is None or not math.isfinite(value) else float(value)
        d = registry.get(name)
        self.values[name] = MetricValue(name, v, d.higher_is_better, f"{sig}|{self.sig_base}",
                                        flag if v is not None else (flag or "undefined (no valid examples)"), se, ci,
                                        baseline[0], baseline[1])
        if baseline[2]:
            self.baselines[name] = baseline[2]
        if dist is not None and len(self.clusters) > 1:
            self.dists[name] = dist
        if chance is not None:
            self.chance[name] = chance
        if exact is not None:
            self.chance_exact[name] = exact


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

        def mean_metric(name: str, vals: list[float], sig: str, baseline: Baseline, chance: np.ndarray | None = None,
                        exact: tuple[int, float] | None = None) -> None:
            arr = np.asarray(vals, dtype=float)
            for k, i in enumerate(keep):
                per_ex[i][name] = float(arr[k])
            col.add(name, float(arr.mean()) if len(arr) else math.nan, sig, rs.mean(arr) if len(arr) else None, baseline,
                    chance=chance, exact=exact)

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
                perms = [col.rng("chance").permutation(len(p_arr)) for _ in range(N_RANDOM)] if len(p_arr) > 2 else []
                for m in spec.metrics:
                    fn = pearson if m.name == "pearson" else spearman
                    v, flag = fn(p_arr, g_arr)
                    dist = rs.stat(lambda idx, fn=fn: 100 * fn(p_arr[idx], g_arr[idx])[0]) if len(keep) > 2 else None
                    # chance: the same predictions shuffled across examples (no relation to the gold values)
                    chance = np.array([100 * fn(p_arr[q], g_arr)[0] for q in perms]) if perms else None
                    col.add(m.name, 100 * v, f"{m.name}|pred:expected_value_over_bins", dist,
                            _fixed_or(fixed, lambda: (0.0, "zero (correlation)", {})), flag, chance)
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
                        # no choices to guess among: the trivial predictor never produces the target
                        mean_metric("acc", [100.0 * bool(resp[i][0].is_greedy) for i in keep], "acc|greedy_match",
                                    _fixed_or(fixed, lambda: (0.0, "zero (no choices)", {})),
                                    np.zeros(N_RANDOM) if keep else None, (len(keep), 0.0) if keep else None)
                    else:
                        fn, unit = ratio[m.name]
                        col.add(m.name, fn(allidx) if len(keep) else math.nan, f"{m.name}|{unit}",
                                rs.stat(fn) if len(keep) > 1 else None, (None, "none (not normalized)", {}))
            case OutputType.GENERATE:
                variant = next((v for v in spec.prompts if v.id == prompt_id), None)
                post = (variant.postprocess if variant is not None and variant.postprocess else spec.generation.postprocess)
                preds = [_postprocess(resp[i][0].text or "", post, script) for i in keep]
                refs = [pes[i].target for i in keep]
                for k, i in enumerate(keep):
                    preds_out[i] = preds[k]
                _score_generate(spec, preds, refs, keep, per_ex, col, rs, mean_metric, fixed, script, post)
        if col.baselines:
            details["baselines"] = col.baselines
        prompt_scores.append(PromptScore(spec.task, prompt_id, len(keep), col.values, n_trunc, errors, details,
                                         col.dists, col.chance, col.chance_exact))
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
                if pe.gold is not None and isinstance(preds_out[i], int):
                    rec["correct"] = preds_out[i] == pe.gold
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
    n = len(golds)
    n_ch_arr = np.asarray(n_ch, dtype=float)
    prior = np.bincount(golds, minlength=k) / max(1, n)
    rng = col.rng("chance")
    # uniform guessing among each example's choices, and guessing with the gold label prior
    uniform = (rng.random((N_RANDOM, n)) * n_ch_arr).astype(np.int64) if n else np.zeros((0, 0), np.int64)
    prior_draws = rng.choice(k, size=(N_RANDOM, n), p=prior) if n and k else np.zeros((0, 0), np.int64)

    def confusions(P: np.ndarray) -> np.ndarray:
        """Confusion matrices of many prediction rows at once (R × k × k)."""
        R = P.shape[0]
        flat = (np.arange(R)[:, None] * k * k + golds[None, :] * k + P).ravel()
        return np.bincount(flat, minlength=R * k * k).reshape(R, k, k).astype(float)

    def candidates(fn: Callable[[np.ndarray], float]) -> tuple[Baseline, np.ndarray | None]:
        if not n:
            return (None, "none", {}), None
        chance = np.array([100.0 * fn(c) for c in confusions(uniform)])
        cands = {"uniform random": float(chance.mean()),
                 "label-prior random": 100.0 * float(np.mean([fn(c) for c in confusions(prior_draws)]))}
        for j in range(k):
            cands[f"constant:{labels[j]}"] = 100.0 * fn(confusion(golds, np.full(n, j), k))
        return _best(cands), chance

    # accuracy: every candidate is exact (uniform: mean 1/choices; prior: Σ p²; constant j: p_j)
    acc_cands = {"uniform random": 100.0 * float(np.mean(1 / n_ch_arr)), "label-prior random": 100.0 * float(prior @ prior)}
    acc_cands.update({f"constant:{labels[j]}": 100.0 * float(prior[j]) for j in range(k)}) if n else None
    acc_base = _fixed_or(fixed, lambda: _best(acc_cands) if n else (None, "none", {}))
    acc_chance = (uniform == golds[None, :]).mean(1) * 100.0 if n else None
    acc_exact = (n, 1.0 / n_ch[0]) if n and len(set(n_ch)) == 1 else None

    for m in spec.metrics:
        match m.name:
            case "acc" | "acc_norm" | "acc_bytes":
                preds = np.array(mc_predictions(lls, chs, m.name), dtype=np.int64)
                how = {"acc": "raw", "acc_norm": "by:chars", "acc_bytes": "by:bytes"}[m.name]
                mean_metric(m.name, list(100.0 * (preds == golds)), f"{m.name}|{how}", acc_base, acc_chance, acc_exact)
            case "acc_pmi":
                uncond = [[r.loglikelihood or 0.0 for r in resp[i][n_ch[j]: 2 * n_ch[j]]] for j, i in enumerate(keep)]
                preds = np.array([int(np.argmax(np.array(a) - np.array(b))) for a, b in zip(lls, uncond)], dtype=np.int64)
                mean_metric(m.name, list(100.0 * (preds == golds)), "acc_pmi|uncond:prefix_token", acc_base, acc_chance,
                            acc_exact)
            case "f1_macro":
                c = confusion(golds, pred_acc, k)
                base, chance = candidates(macro_f1_from_confusion)
                col.add(m.name, 100.0 * macro_f1_from_confusion(c), "f1_macro|labels:present|pred:argmax_ll",
                        rs.stat(lambda idx: 100.0 * macro_f1_from_confusion(confusion(golds[idx], pred_acc[idx], k))),
                        _fixed_or(fixed, lambda: base), chance=chance)
                f1, _ = f1_from_confusion(c)
                details["per_class_f1"] = {labels[j]: 100.0 * float(f1[j]) for j in range(k)}
            case "f1_binary":
                pos = labels.index(m.positive)

                def fb(c: np.ndarray, pos: int = pos) -> float:
                    return float(f1_from_confusion(c)[0][pos])

                base, chance = candidates(fb)
                col.add(m.name, 100.0 * fb(confusion(golds, pred_acc, k)), f"f1_binary|positive:{m.positive}",
                        rs.stat(lambda idx: 100.0 * fb(confusion(golds[idx], pred_acc[idx], k))),
                        _fixed_or(fixed, lambda: base), chance=chance)
            case "mcc":
                chance = np.array([100.0 * mcc_from_confusion(c) for c in confusions(uniform)]) if n else None
                col.add(m.name, 100.0 * mcc_from_confusion(confusion(golds, pred_acc, k)), "mcc|R_K",
                        rs.stat(lambda idx: 100.0 * mcc_from_confusion(confusion(golds[idx], pred_acc[idx], k))),
                        _fixed_or(fixed, lambda: (0.0, "zero (correlation)", {})), chance=chance)
    if spec.breakdown:
        # each category scored on its own examples (GLUE-style diagnostics: F1, R3 = MCC, accuracy)
        cats = [pes[i].categories for i in keep]
        details["breakdown"] = {}
        for cat in spec.breakdown:
            idx = np.array([j for j, cs in enumerate(cats) if cat in cs], dtype=np.int64)
            if len(idx) == 0:
                continue
            c = confusion(golds[idx], pred_acc[idx], k)
            details["breakdown"][cat] = {"n": int(len(idx)), "f1_macro": 100.0 * macro_f1_from_confusion(c), "mcc": 100.0 * mcc_from_confusion(c),
                                         "acc": 100.0 * float(np.mean(golds[idx] == pred_acc[idx]))}


def _ml_values(G: np.ndarray, P: np.ndarray, name: str) -> np.ndarray:
    """Multi-label metric (0–1) of many prediction matrices at once: P is R × n × L (or n × L)."""
    P = P if P.ndim == 3 else P[None]
    g = G[None]
    tp = (g & P).sum(1).astype(float)  # R × L
    fp = (~g & P).sum(1).astype(float)
    fn = (g & ~P).sum(1).astype(float)
    match name:
        case "jaccard":
            inter = (g & P).sum(2).astype(float)
            union = (g | P).sum(2).astype(float)
            return np.where(union == 0, 1.0, inter / np.maximum(union, 1)).mean(1)
        case "f1_micro":
            T, F, N = tp.sum(1), fp.sum(1), fn.sum(1)
            d = 2 * T + F + N
            return np.where(d > 0, 2 * T / np.maximum(d, 1e-300), 0.0)
        case _:
            d = 2 * tp + fp + fn
            return np.where(d > 0, 2 * tp / np.maximum(d, 1e-300), 0.0).mean(1)


def _score_multilabel(spec: Any, G: np.ndarray, P: np.ndarray, labels: list[str], keep: list[int],
                      per_ex: list[dict[str, float]], col: _Collector, rs: Resampler, fixed: float | None) -> None:
    gs = [frozenset(labels[j] for j in np.flatnonzero(row)) for row in G]
    ps = [frozenset(labels[j] for j in np.flatnonzero(row)) for row in P]
    n, L = G.shape
    rng = col.rng("chance")
    uniform = rng.random((N_RANDOM, n, L)) < 0.5 if n else None
    freq = G.mean(0) if n else np.zeros(L)
    prior = rng.random((N_RANDOM, n, L)) < freq[None, None, :] if n else None
    constants = {"constant:empty set": np.zeros((n, L), bool), "constant:all labels": np.ones((n, L), bool)}
    for j, lab in enumerate(labels):
        one = np.zeros((n, L), bool)
        one[:, j] = True
        constants[f"constant:{lab}"] = one

    def baseline(name: str) -> tuple[Baseline, np.ndarray | None]:
        if not n:
            return (None, "none", {}), None
        chance = 100.0 * _ml_values(G, uniform, name)  # type: ignore[arg-type]
        cands = {"uniform random": float(chance.mean()),
                 "label-prior random": 100.0 * float(_ml_values(G, prior, name).mean())}  # type: ignore[arg-type]
        cands.update({k: 100.0 * float(_ml_values(G, M, name)[0]) for k, M in constants.items()})
        return _best(cands), chance

    for m in spec.metrics:
        base, chance = baseline(m.name)
        if m.name == "jaccard":
            vals = [100.0 * (1.0 if not (g | p) else len(g & p) / len(g | p)) for g, p in zip(gs, ps)]
            for k, i in enumerate(keep):
                per_ex[i]["jaccard"] = vals[k]
            col.add("jaccard", float(np.mean(vals)) if vals else math.nan, "jaccard|average:samples|pred:yes>no",
                    rs.mean(np.asarray(vals)) if vals else None, _fixed_or(fixed, lambda: base), chance=chance)
        else:
            avg = "micro" if m.name == "f1_micro" else "macro"
            col.add(m.name, 100.0 * multilabel_f1(gs, ps, labels, avg) if gs else math.nan, f"{m.name}|multi_label",
                    rs.stat(lambda idx, a=avg: 100.0 * multilabel_f1([gs[j] for j in idx], [ps[j] for j in idx], labels, a)),
                    _fixed_or(fixed, lambda: base), chance=chance)


def _score_generate(spec: Any, preds: list[str], refs: list[str], keep: list[int], per_ex: list[dict[str, float]],
                    col: _Collector, rs: Resampler, mean_metric: Callable[..., None], fixed: float | None, script: str,
                    post: str) -> None:
    """Text metrics; the trivial baseline is the mean score of seeded derangements of the references."""
    rng = col.rng("derangement")
    derange = [_derangement(len(refs), rng) for _ in range(N_DERANGE)] if len(refs) >= 2 else []
    for m in spec.metrics:
        name = m.name
        if name == "exact_match":
            level = m.normalize or "strict"
            if post == "gloria":
                def same(p: str, r: str) -> bool:
                    return gloria_equal(p, r)
                sig = "exact_match|norm:gloria(unidecode-equivalent,lower)"
            else:
                def same(p: str, r: str, level: str = level) -> bool:
                    return normalize(p, script, level) == normalize(r, script, level)
                sig = f"exact_match|norm:{level}|script:{script}"
            vals = [100.0 * same(p, r) for p, r in zip(preds, refs)]
            draws = np.array([100.0 * np.mean([same(refs[d[j]], refs[j]) for j in range(len(refs))]) for d in derange])
            mean_metric("exact_match", vals, sig, _fixed_or(fixed, lambda: _derange_base(draws)), draws if len(draws) else None)
        elif name in ("rouge1", "rouge2", "rougeL"):
            vals = [100.0 * rouge(p, r, script)[name] for p, r in zip(preds, refs)]
            draws = np.array([100.0 * np.mean([rouge(refs[d[j]], refs[j], script)[name] for j in range(len(refs))])
                              for d in derange])
            mean_metric(name, vals, f"{name}|tok:whitespace+norm:strict|script:{script}",
                        _fixed_or(fixed, lambda: _derange_base(draws)), draws if len(draws) else None)
        else:
            sname = {"chrfpp": "chrf++"}.get(name, name)
            if not preds:
                col.add(name, math.nan, name, None, (None, "none", {}))
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
            draws = np.array([sacre(sname, [refs[j] for j in d], refs)[0] for d in derange])
            base = _fixed_or(fixed, lambda: _derange_base(draws))
            col.add(name, val, sig, dist, base, chance=draws if len(draws) else None)


def _derange_base(draws: np.ndarray) -> Baseline:
    if not len(draws):
        return None, "none (fewer than 2 references)", {}
    v = float(draws.mean())
    return v, f"derangement of references (mean of {len(draws)} seeded)", {"derangement": v}
