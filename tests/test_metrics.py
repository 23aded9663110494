"""Metrics against independent references (scikit-learn, scipy, sacrebleu, brute force) and golden cases."""

from __future__ import annotations

import json
import math
import random
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evalsuite.metrics.classification import f1_binary, f1_macro, jaccard_samples, mcc, multilabel_f1, pearson, per_class_f1, spearman
from evalsuite.metrics.normalize import first_word, normalize
from evalsuite.metrics.text import rouge, sacre
from evalsuite.metrics.uncertainty import Resampler
from evalsuite.scoring import _confusion, _macro, _mcc

CASES = json.loads((Path(__file__).parent / "golden" / "metrics" / "cases.json").read_text(encoding="utf-8"))
TOL = 1e-9


@pytest.mark.parametrize("case", CASES["normalize"], ids=lambda c: f"{c['level']}:{c['text']}")
def test_normalize_golden(case):
    assert normalize(case["text"], case["script"], case["level"]) == case["expected"]


@pytest.mark.parametrize("case", CASES["first_word"], ids=lambda c: c["text"])
def test_first_word_golden(case):
    assert first_word(case["text"], case["script"]) == case["expected"]


@pytest.mark.parametrize("case", CASES["exact_match"], ids=lambda c: f"{c['level']}:{c['pred']}")
def test_exact_match_golden(case):
    assert (normalize(case["pred"], "Arab", case["level"]) == normalize(case["ref"], "Arab", case["level"])) is case["expected"]


def test_f1_golden():
    c = CASES["f1"][0]
    assert f1_macro(c["gold"], c["pred"]) == pytest.approx(c["macro"], abs=TOL)
    assert f1_binary(c["gold"], c["pred"], "a") == pytest.approx(c["binary_a"], abs=TOL)
    j = CASES["jaccard"][0]
    assert jaccard_samples([frozenset(x) for x in j["gold"]], [frozenset(x) for x in j["pred"]]) == pytest.approx(j["samples"])


def _random_labels(n: int, k: int, seed: int) -> tuple[list[int], list[int]]:
    rng = random.Random(seed)
    return [rng.randrange(k) for _ in range(n)], [rng.randrange(k) for _ in range(n)]


@pytest.mark.parametrize("seed", range(5))
def test_classification_matches_sklearn(seed):
    from sklearn.metrics import f1_score, matthews_corrcoef

    g, p = _random_labels(300, 2 + seed, seed)
    assert abs(f1_macro(g, p) - f1_score(g, p, average="macro")) < TOL
    assert abs(f1_binary(g, p, 1) - f1_score(g, p, average=None, labels=[1])[0]) < TOL
    per = per_class_f1(g, p)
    ref = f1_score(g, p, average=None, labels=sorted(per))
    assert np.allclose(list(per.values()), ref, atol=TOL)
    assert abs(mcc(g, p) - matthews_corrcoef(g, p)) < TOL
    k = max(g + p) + 1
    c = _confusion(np.array(g), np.array(p), k)
    assert abs(_macro(c) - f1_score(g, p, average="macro")) < TOL
    assert abs(_mcc(c) - matthews_corrcoef(g, p)) < TOL


def test_binary_f1_matches_sklearn_on_real_osact(shared_data):
    from sklearn.metrics import f1_score

    rows = [line.split("\t") for line in (shared_data / "alue" / "OOLD" / "OSACT2020-sharedTask-dev.txt")
            .read_text(encoding="utf-8").splitlines() if line.strip()]
    gold = [r[1].strip() for r in rows]
    assert len(gold) == 1000 and gold.count("OFF") == 179
    constant = ["NOT_OFF"] * len(gold)
    assert abs(f1_macro(gold, constant) - f1_score(gold, constant, average="macro")) < TOL
    assert abs(f1_binary(gold, constant, "OFF") - f1_score(gold, constant, pos_label="OFF", average="binary")) < TOL
    hs = [r[2].strip() for r in rows]
    assert hs.count("HS") == 44


def test_jaccard_on_real_semeval_ec(shared_data):
    from sklearn.metrics import f1_score, jaccard_score

    lines = (shared_data / "alue" / "SEC" / "2018-E-c-Ar-dev.txt").read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    emotions = header[2:]
    assert len(emotions) == 11 and len(lines) - 1 == 585
    Y = np.array([[int(x) for x in line.split("\t")[2:]] for line in lines[1:]])
    rng = np.random.default_rng(0)
    P = (rng.random(Y.shape) < 0.3).astype(int)
    sets = lambda M: [frozenset(emotions[j] for j in np.flatnonzero(r)) for r in M]  # noqa: E731
    got = jaccard_samples(sets(Y), sets(P))
    # SemEval's definition: |G∩P|/|G∪P| per tweet, 1 when both are empty; sklearn's samples average sets that case to 0 (zero_division)
    ref = np.mean([1.0 if not (y | p).any() else (y & p).sum() / (y | p).sum() for y, p in zip(Y.astype(bool), P.astype(bool))])
    assert abs(got - ref) < TOL
    assert abs(got - jaccard_score(Y, P, average="samples", zero_division=1.0)) < TOL
    for avg in ("micro", "macro"):
        assert abs(multilabel_f1(sets(Y), sets(P), emotions, avg) - f1_score(Y, P, average=avg, zero_division=0)) < TOL


@pytest.mark.parametrize("seed", range(3))
def test_correlations_match_scipy(seed):
    from scipy.stats import pearsonr, spearmanr

    rng = np.random.default_rng(seed)
    x = rng.normal(size=80)
    y = x + rng.normal(size=80)
    y[::7] = y[0]  # ties
    assert abs(pearson(x, y)[0] - pearsonr(x, y)[0]) < TOL
    assert abs(spearman(x, y)[0] - spearmanr(x, y)[0]) < TOL
    v, flag = pearson(np.ones(10), y[:10])
    assert v == 0.0 and "constant" in flag


def test_sacrebleu_metrics_match_its_api():
    import sacrebleu

    hyp = ["the cat sat on the mat", "ذهب الولد إلى المدرسة", "a b c"]
    ref = ["the cat is on the mat", "ذهب الولد الى المدرسة صباحا", "a b d"]
    assert abs(sacre("bleu", hyp, ref)[0] - sacrebleu.corpus_bleu(hyp, [ref]).score) < TOL
    assert abs(sacre("chrf", hyp, ref)[0] - sacrebleu.corpus_chrf(hyp, [ref]).score) < TOL
    assert abs(sacre("chrf++", hyp, ref)[0] - sacrebleu.corpus_chrf(hyp, [ref], word_order=2).score) < TOL
    assert abs(sacre("ter", hyp, ref)[0] - sacrebleu.corpus_ter(hyp, [ref]).score) < TOL
    assert "nrefs:1" in sacre("bleu", hyp, ref)[1]



@pytest.mark.parametrize("name", ["bleu", "chrf", "chrf++", "ter"])
def test_sacrebleu_bootstrap_from_statistics_equals_rescoring(name):
    """Resampling summed segment statistics gives, resample by resample, sacrebleu's score of that resample."""
    from evalsuite.metrics.text import sacre_stats

    rng = np.random.default_rng(3)
    words = "كتب الطالب الدرس في المدرسة صباحا ثم عاد إلى البيت مع أخيه الصغير".split()
    refs = [" ".join(rng.choice(words, size=rng.integers(3, 10))) for _ in range(40)]
    hyps = [" ".join(rng.choice(words, size=rng.integers(2, 10))) for _ in range(40)]
    val, _, stats, from_stats = sacre_stats(name, hyps, refs)
    assert stats is not None and stats.shape[0] == 40
    assert abs(from_stats(stats.sum(0)) - val) < 1e-9
    clusters = [f"c{i // 2}" for i in range(40)]  # pairs of examples move together
    rs = Resampler(clusters, n=25, seed=1)
    sums = rs.sums(stats)
    for d, row in zip(rs.draws, sums):
        idx = np.concatenate([rs.members[c] for c in d])
        want = sacre(name, [hyps[j] for j in idx], [refs[j] for j in idx])[0]
        assert abs(from_stats(row) - want) < 1e-9

def test_spbleu_offline_fails_clearly(monkeypatch, tmp_path):
    from evalsuite.core.errors import BackendError

    monkeypatch.setenv("SACREBLEU", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    try:
        sacre("spbleu", ["a b"], ["a b"])
    except BackendError as e:
        assert "flores200" in str(e) and "offline" in str(e).lower()
    # (where the SentencePiece model is already cached, it simply works)


def test_rouge_keeps_arabic():
    s = "ذهب الولد إلى المدرسة في الصباح"
    assert rouge(s, s, "Arab") == {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0}
    assert rouge("ذَهَبَ الوَلَدُ إلى المدرسةِ في الصباحِ", s, "Arab")["rougeL"] == 1.0
    assert rouge("الولد ذهب", s, "Arab")["rouge1"] == pytest.approx(2 * (1 * 2 / 6) / (1 + 2 / 6))


def test_rouge_matches_brute_force_lcs():
    rng = random.Random(0)
    words = "ا ب ت ث ج ح".split()
    for _ in range(50):
        a = [rng.choice(words) for _ in range(rng.randrange(1, 9))]
        b = [rng.choice(words) for _ in range(rng.randrange(1, 9))]
        best = 0
        for r in range(min(len(a), len(b)), 0, -1):
            if any(_is_subseq(c, b) for c in combinations(a, r)):
                best = r
                break
        f = 0.0 if best == 0 else 2 * (best / len(a)) * (best / len(b)) / (best / len(a) + best / len(b))
        assert abs(rouge(" ".join(a), " ".join(b), "Arab")["rougeL"] - f) < TOL


def _is_subseq(c, b) -> bool:
    it = iter(b)
    return all(x in it for x in c)


def test_bootstrap_mean_matches_brute_force():
    rng = np.random.default_rng(0)
    vals = rng.random(40)
    clusters = [str(i // 4) for i in range(40)]
    rs = Resampler(clusters, n=50, seed=7)
    fast = rs.mean(vals)
    slow = rs.stat(lambda idx: float(vals[idx].mean()))
    assert np.allclose(fast, slow, atol=1e-12)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=60))
def test_properties_bounds_and_permutation(pairs):
    g = [a for a, _ in pairs]
    p = [b for _, b in pairs]
    for v in (f1_macro(g, p), f1_binary(g, p, 0)):
        assert 0.0 <= v <= 1.0
    assert -1.0 - 1e-12 <= mcc(g, p) <= 1.0 + 1e-12
    perm = list(range(len(g)))
    random.Random(1).shuffle(perm)
    assert abs(f1_macro(g, p) - f1_macro([g[i] for i in perm], [p[i] for i in perm])) < TOL
    assert abs(mcc(g, p) - mcc([g[i] for i in perm], [p[i] for i in perm])) < TOL


@settings(max_examples=50, deadline=None)
@given(st.lists(st.booleans(), min_size=2, max_size=40), st.integers(1, 39))
def test_merging_mean_statistics_equals_concatenation(flags, cut):
    cut = min(cut, len(flags) - 1)
    a, b = flags[:cut], flags[cut:]
    merged = (sum(a) + sum(b)) / (len(a) + len(b))
    assert math.isclose(merged, sum(flags) / len(flags))


def test_acc_pmi_and_lm_metrics_from_a_real_run(tmp_path):
    """PMI accuracy = argmax of ll(choice | context) − ll(choice | prefix token); bits/char and word perplexity."""
    from evalsuite.runner import RunConfig, run

    r = run(RunConfig(model="m", tasks="demo_sentiment_ar,demo_bpb_ar", backend="fake", output=tmp_path, use_cache=False),
            progress=False)
    t = r.record.tasks["demo_sentiment_ar"]
    for pid, p in t.prompts.items():
        lines = [json.loads(x) for x in (r.results_path.parent / t.samples_file).read_text(encoding="utf-8").splitlines()]
        hits = []
        for s in lines:
            if s["prompt_id"] != pid:
                continue
            k = len(s["choices"])
            cond = [q["loglikelihood"] for q in s["requests"][:k]]
            uncond = [q["loglikelihood"] for q in s["requests"][k:2 * k]]
            assert all(q["context"] == "" for q in s["requests"][k:2 * k])
            pred = max(range(k), key=lambda i: cond[i] - uncond[i])
            hits.append(100.0 * (pred == s["gold"]))
        assert abs(p.metrics["acc_pmi"].value - sum(hits) / len(hits)) < TOL
    b = r.record.tasks["demo_bpb_ar"].prompts["plain"].metrics
    lines = [json.loads(x) for x in (r.results_path.parent / r.record.tasks["demo_bpb_ar"].samples_file).read_text(encoding="utf-8").splitlines()]
    ll = sum(s["requests"][0]["loglikelihood"] for s in lines)
    chars = sum(len(s["requests"][0]["context"]) for s in lines)
    words = sum(len(s["requests"][0]["context"].split()) for s in lines)
    assert abs(b["bits_per_char"].value - (-ll / (math.log(2) * chars))) < 1e-9
    assert abs(b["word_perplexity"].value - math.exp(-ll / words)) < 1e-6 * b["word_perplexity"].value
