"""Language-aware text normalization (pure functions). Never unidecode.

Arabic *strict*: NFKC, strip harakat (U+064B–U+065F, U+0670) and tatweel (U+0640),
Arabic-Indic and Persian digits → ASCII, ک→ك, ی→ي, ھ→ه, strip punctuation.
Arabic *lenient*: strict + alef variants أ إ آ ٱ → ا, ى → ي, ة → ه, ؤ ئ → ء.
Latin and other scripts: NFKC, case-folding, punctuation stripped.
"""

from __future__ import annotations

import re
import unicodedata

_AR_MARKS = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06dc\u06df-\u06e8\u06ea-\u06ed\u0640]")
_DIGITS = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "01234567890123456789")
_AR_STRICT = str.maketrans({"ک": "ك", "ی": "ي", "ھ": "ه"})
_AR_LENIENT = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ى": "ي", "ة": "ه", "ؤ": "ء", "ئ": "ء"})
_SPACE = re.compile(r"\s+")


def _strip_punct(text: str) -> str:
    return "".join(" " if unicodedata.category(c).startswith("P") or unicodedata.category(c) == "Sm" else c
                    for c in text)


def normalize(text: str, script: str = "Arab", level: str = "strict") -> str:
    """Normalize ``text`` for comparison; ``level`` is none, strict or lenient."""
    if level == "none":
        return text.strip()
    t = unicodedata.normalize("NFKC", text)
    t = t.translate(_DIGITS)
    if script == "Arab":
        t = _AR_MARKS.sub("", t).translate(_AR_STRICT)
        if level == "lenient":
            t = t.translate(_AR_LENIENT)
    t = _strip_punct(t).casefold()
    return _SPACE.sub(" ", t).strip()


def first_word(text: str, script: str = "Arab", level: str = "strict") -> str:
    """The first whitespace-separated word that is not only punctuation, normalized (never ``\\b\\w+\\b``).

    ``" ، القاهرة"`` gives ``القاهرة``; ``"guarda-chuva."`` stays one word (``guarda chuva`` after
    normalization, as its normalized target).
    """
    for token in text.split():
        word = normalize(token, script, level)
        if word:
            return word
    return ""


_WORD = re.compile(r"\b\w+\b")
# letters NFKD does not decompose but a Latin transliteration spells out (checked against unidecode in the tests)
_LATIN_EXTRA = str.maketrans({"ß": "ss", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ø": "o", "Ø": "O", "đ": "d",
                              "Đ": "D", "ł": "l", "Ł": "L", "ð": "d", "þ": "th", "ı": "i"})


def latin_fold(text: str) -> str:
    """Latin letters without diacritics (NFKD, combining marks dropped; ß→ss, æ→ae, ...)."""
    t = unicodedata.normalize("NFKD", text.translate(_LATIN_EXTRA))
    return "".join(c for c in t if not unicodedata.combining(c))


def gloria_word(text: str) -> str:
    """The GlórIA CALAME prediction: newlines deleted (the text after them kept), then the first ``\\b\\w+\\b`` match.

    For Portuguese only: ``\\w`` splits Arabic words at diacritics, so Arabic tasks use ``first_word``.
    """
    m = _WORD.search(text.replace("\n", ""))
    return m.group(0) if m else ""


def gloria_equal(pred: str, target: str) -> bool:
    """GlórIA's comparison: lower-cased, transliterated to plain Latin letters, target stripped."""
    return latin_fold(pred.lower()) == latin_fold(target.strip().lower())


def script_of(language: str) -> str:
    """``arb_Arab`` → ``Arab``."""
    return language.split("_", 1)[1] if "_" in language else "Latn"
