"""Text-generation metrics: sacrebleu's BLEU, chrF, chrF++, TER, spBLEU (signatures kept),
and a ROUGE whose tokenizer keeps Arabic and every other script."""

from __future__ import annotations

from collections import Counter
from typing import Sequence

from evalsuite.core.errors import BackendError
from evalsuite.metrics.normalize import normalize


def sacre(name: str, preds: Sequence[str], refs: Sequence[str]) -> tuple[float, str]:
    """Corpus score and signature of a sacrebleu metric (bleu, spbleu, chrf, chrf++, ter)."""
    import sacrebleu

    try:
        match name:
            case "bleu":
                m = sacrebleu.metrics.BLEU()
            case "spbleu":
                m = sacrebleu.metrics.BLEU(tokenize="flores200")
            case "chrf":
                m = sacrebleu.metrics.CHRF()
            case "chrf++":
                m = sacrebleu.metrics.CHRF(word_order=2)
            case "ter":
                m = sacrebleu.metrics.TER()
            case _:  # pragma: no cover - guarded by the schema
                raise ValueError(name)
        s = m.corpus_score(list(preds), [list(refs)])
    except Exception as e:  # spBLEU needs sentencepiece and a SentencePiece model downloaded on first use
        if name == "spbleu":
            raise BackendError(
                "spBLEU needs the sentencepiece package and sacrebleu's flores200 SentencePiece model, which sacrebleu "
                f"downloads on first use; it could not get them ({type(e).__name__}: {str(e).strip()[:200]}). "
                "Offline: pip install sentencepiece and copy a sacrebleu cache that has the model into ~/.sacrebleu "
                "(or point $SACREBLEU at it), or drop spbleu from the task's metrics."
            ) from None
        raise
    return float(s.score), str(m.get_signature())


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
