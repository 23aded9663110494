"""Text-generation metrics: sacrebleu's BLEU, chrF, chrF++, TER, spBLEU (signatures kept),
and a ROUGE whose tokenizer keeps Arabic and every other script."""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable, Sequence

from evalsuite.core.errors import BackendError
from evalsuite.metrics.normalize import normalize


def sacre(name: str, preds: Sequence[str], refs: Sequence[str]) -> tuple[float, str]:
    """Corpus score and signature of a sacrebleu metric (bleu, spbleu, chrf, chrf++, ter)."""
    score, sig, _, _ = sacre_stats(name, preds, refs)
    return score, sig


def sacre_stats(name: str, preds: Sequence[str], refs: Sequence[str]) -> tuple[float, str, Any, Callable[[Any], float] | None]:
    """Corpus score, signature, per-segment sufficient statistics and the score of summed statistics.

    sacrebleu's corpus scores are functions of per-segment statistics summed over the corpus
    (n-gram matches and lengths for BLEU, character/word n-gram counts for chrF, edits and
    reference lengths for TER): sacrebleu computes ``corpus_score`` and its own bootstrap that
    way. Returning them lets a bootstrap resample sums (one matrix product) instead of
    re-tokenizing the corpus for every resample. Statistics are None when this sacrebleu lacks
    the methods (then callers fall back to rescoring).
    """
    import numpy as np

    m = _sacre_metric(name)
    try:
        s = m.corpus_score(list(preds), [list(refs)])
        stats = None
        from_stats = None
        if hasattr(m, "_extract_corpus_statistics") and hasattr(m, "_compute_score_from_stats"):
            stats = np.asarray(m._extract_corpus_statistics(list(preds), [list(refs)]), dtype=float)

            def from_stats(total: Any, m: Any = m) -> float:
                return float(m._compute_score_from_stats([_exact(x) for x in total]).score)

            if stats.ndim != 2 or abs(from_stats(stats.sum(0)) - float(s.score)) > 1e-9:
                stats, from_stats = None, None  # a layout we do not know: rescore instead
    except Exception as e:  # spBLEU needs sentencepiece and a SentencePiece model downloaded on first use
        if name == "spbleu":
            raise _spbleu_error(e) from None
        raise
    return float(s.score), str(m.get_signature()), stats, from_stats


def _exact(x: float) -> float | int:
    """Summed counts back to ints (they are integers; TER's edit counts may be fractional)."""
    r = round(x)
    return int(r) if abs(x - r) < 1e-9 else x


def _spbleu_error(e: BaseException) -> BackendError:
    return BackendError(
        "spBLEU needs the sentencepiece package and sacrebleu's flores200 SentencePiece model, which sacrebleu "
        f"downloads on first use; it could not get them ({type(e).__name__}: {str(e).strip()[:200]}). "
        "Offline: pip install sentencepiece and copy a sacrebleu cache that has the model into ~/.sacrebleu "
        "(or point $SACREBLEU at it), or drop spbleu from the task's metrics.")


def _sacre_metric(name: str) -> Any:
    import sacrebleu

    try:
        match name:
            case "bleu":
                return sacrebleu.metrics.BLEU()
            case "spbleu":
                return sacrebleu.metrics.BLEU(tokenize="flores200")
            case "chrf":
                return sacrebleu.metrics.CHRF()
            case "chrf++":
                return sacrebleu.metrics.CHRF(word_order=2)
            case "ter":
                return sacrebleu.metrics.TER()
            case _:  # pragma: no cover - guarded by the schema
                raise ValueError(name)
    except Exception as e:  # spBLEU's tokenizer loads its SentencePiece model here on some versions
        if name == "spbleu":
            raise _spbleu_error(e) from None
        raise


def _tokens(text: str, script: str) -> list[str]:
    # normalize (no diacritics, unified letters, no punctuation), then split on whitespace: keeps any script
    return normalize(text, script, "strict").split()


def _ngrams(toks: list[str], n: int) -> Counter:
    return Counter(tuple(toks[i:i + n]) for i in range(len(toks) - n + 1))


def _f(overlap: int, p_total: int, r_total: int) -> float:
    if p_total == 0 or r_total == 0 or overlap == 0:
        return 0.0
    p, r = overlap / p_total, overlap / r_total
    return 2 * p * r / (p + r)


def _lcs(a: list[str], b: list[str]) -> int:
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, 1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def rouge(pred: str, ref: str, script: str) -> dict[str, float]:
    """ROUGE-1/2/L F-measures (0–1) on whitespace tokens after language-aware normalization."""
    p, r = _tokens(pred, script), _tokens(ref, script)
    out = {}
    for n in (1, 2):
        pn, rn = _ngrams(p, n), _ngrams(r, n)
        out[f"rouge{n}"] = _f(sum((pn & rn).values()), sum(pn.values()), sum(rn.values()))
    out["rougeL"] = _f(_lcs(p, r), len(p), len(r))
    return out
