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
    """First whitespace-separated word after normalization (never ``\\b\\w+\\b``)."""
    parts = normalize(text, script, level).split()
    return parts[0] if parts else ""


def script_of(language: str) -> str:
    """``arb_Arab`` → ``Arab``."""
    return language.split("_", 1)[1] if "_" in language else "Latn"
