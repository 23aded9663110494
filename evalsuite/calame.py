"""CALAME-style item builder for any language: raw text → last-word prediction items.

Rules (shared/BENCHMARKS.md §5.3): the target is the last whitespace token of a
sentence with trailing punctuation stripped; it must have at least 3 letters after
normalization, be written in the language's script, hold no digit, and not be a
stopword. Formulaic completions (one continuation dominates the corpus after the same
two words) are dropped. With a reference model, items it already predicts from the
last sentence alone are dropped too (the LAMBADA-style context-necessity filter).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from evalsuite.metrics.normalize import normalize, script_of

STOPWORDS = {
    "Arab": set("في من على إلى الى أن ان عن مع ثم قد لا ما هذا هذه ذلك تلك التي الذي الذين هو هي هم كان كانت "
                "كل بعد قبل عند حتى لكن لم لن إذا اذا أو او بين كما غير أي اي وهو وهي فيه فيها منه منها عليه عليها "
                "إليه اليه له لها لهم به بها يا أنا انا نحن أنت انت".split()),
    "Latn": set("a o as os e de do da dos das em no na nos nas um uma por para com que se não nao é the of and to in "
                "is it that for on with as was at by".split()),
}
_SENT = re.compile(r"(?<=[.!?؟…])\s+|\n+")
_TRAIL = ".,;:!?؟،؛…»«\"')(]}[{-—–"


@dataclass(frozen=True)
class Item:
    id: str
    context: str
    last_word: str
    last_sentence: str
    """The sentence without its last word (what the context-necessity filter sees)."""


def _in_script(word: str, script: str) -> bool:
    for ch in word:
        if not ch.isalpha():
            return False
        name = unicodedata.name(ch, "")
        if script == "Arab" and "ARABIC" not in name:
            return False
        if script == "Latn" and "LATIN" not in name:
            return False
    return True


def target_ok(word: str, script: str) -> bool:
    """The target-word rules: ≥3 letters, right script, no digit, not a stopword."""
    norm = normalize(word, script, "strict")
    if len(norm) < 3 or " " in norm or any(c.isdigit() for c in word):
        return False
    if not _in_script(norm, script):
        return False
    return norm not in {normalize(s, script, "strict") for s in STOPWORDS.get(script, set())}


def sentences(text: str) -> list[list[str]]:
    """Paragraphs (blank-line separated) split into sentences."""
    paras = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    return [[s.strip() for s in _SENT.split(p) if s.strip()] for p in paras]


def build(text: str, lang: str, context_sentences: int = 2,
          predicts: Callable[[str, str], bool] | None = None, formulaic_share: float = 0.9) -> list[Item]:
    """Items from raw ``text``; ``predicts(last_sentence_context, target)`` is the optional model filter."""
    script = script_of(lang)
    paras = sentences(text)
    # corpus statistics for the formulaic filter: (w-2, w-1) -> next-word counts
    follow: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for para in paras:
        words = [normalize(w, script, "strict") for w in " ".join(para).split()]
        for a, b, c in zip(words, words[1:], words[2:]):
            follow[(a, b)][c] += 1
    items: list[Item] = []
    for para in paras:
        for si, sent in enumerate(para):
            words = sent.split()
            if len(words) < 4:
                continue
            target = words[-1].strip(_TRAIL)
            if not target_ok(target, script):
                continue
            head = " ".join(words[:-1])
            # formulaic: the same two words are followed by this target nearly always, several times
            key = tuple(normalize(w, script, "strict") for w in words[-3:-1])
            if len(key) == 2:
                cnt = follow.get((key[0], key[1]))
                norm_t = normalize(target, script, "strict")
                if cnt and sum(cnt.values()) >= 3 and cnt[norm_t] / sum(cnt.values()) >= formulaic_share:
                    continue
            before = " ".join(para[max(0, si - context_sentences): si])
            context = (before + " " + head).strip() if before else head
            if predicts is not None and predicts(head, target):
                continue  # guessable from the last sentence alone: the passage is not needed
            items.append(Item(f"{lang}-{len(items) + 1:05d}", context, target, head))
    return items


def write_jsonl(items: Iterable[Item], out: Path) -> int:
    from evalsuite.store import atomic_write_jsonl

    rows = [{"id": it.id, "context": it.context, "last_word": it.last_word} for it in items]
    atomic_write_jsonl(out, rows)
    return len(rows)


def model_filter(model: str, device: str = "auto") -> Callable[[str, str], bool]:
    """A ``predicts`` callable backed by the hf backend: is " target" the greedy continuation?"""
    from evalsuite.backends.hf import HFBackend, HFOptions
    from evalsuite.core.records import Request, RequestKind

    backend = HFBackend(model, HFOptions(device=device))

    def predicts(context: str, target: str) -> bool:
        got: list[bool] = []
        backend.compute([Request(RequestKind.LOGLIKELIHOOD, context, " " + target)],
                        lambda r: got.append(bool(r.is_greedy)))
        return got[0]

    return predicts


def read_items(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
