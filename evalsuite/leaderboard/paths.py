"""Every output path of a leaderboard site, and every input path read from a results file.

Names in results files (task names, model names, samples files) are written by strangers.
An output page name is a slug confined to the site folder; when slugging loses information
(``arabic_exams:stem`` and ``arabic_exams_stem``; ``team-x/final`` and ``team-y/final``) a
hash of the exact name is appended after ``~``, a character no plain slug contains, so two
names never share a page. (Which samples file may be read is ``record.samples_path``.)
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def slugify(text: str, limit: int = 60) -> str:
    """Letters, digits, ``_ . -`` only; never empty, never starting with a dot."""
    return _UNSAFE.sub("_", text).strip("._")[:limit] or "x"


def task_slug(name: str) -> str:
    """Page name of a task: the name itself when it is already a plain slug, else slug~hash."""
    plain = slugify(name)
    return plain if plain == name else f"{plain}~{_hash(name)}"


def unique_slugs(bases: dict[str, str]) -> dict[str, str]:
    """Key → slug: a base shared by several keys gets ``~hash(key)`` on each of them (order-independent)."""
    count: dict[str, int] = {}
    for b in bases.values():
        count[b] = count.get(b, 0) + 1
    return {k: (b if count[b] == 1 else f"{b}~{_hash(k)}") for k, b in bases.items()}


def confined(out: Path, rel: str) -> Path:
    """``out / rel``, refused (ValueError) unless it stays inside ``out`` once resolved."""
    root = out.resolve()
    target = (root / rel).resolve()
    if not target.is_relative_to(root) or target == root:
        raise ValueError(f"output path {rel!r} leaves the site folder")
    return target
