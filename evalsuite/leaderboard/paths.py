"""Every output path of a leaderboard site, and every input path read from a results file.

Names in results files (task names, model names, samples files) are written by strangers.
An output page name is a slug confined to the site folder; when slugging loses information
(``arabic_exams:stem`` and ``arabic_exams_stem``; ``team-x/final`` and ``team-y/final``) a
hash of the exact name is appended after ``~``, a character no plain slug contains, so two
names never share a page. A samples file is read only when it lies beside its results file
and is a regular file under a size cap.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from pathlib import Path

SAMPLES_MAX_BYTES = 256 * 1024 * 1024
"""Largest samples file a site build reads (a results file may name anything, /dev/zero included)."""

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


def samples_beside(results_file: Path, name: object, max_bytes: int = SAMPLES_MAX_BYTES) -> tuple[Path | None, str | None]:
    """The samples file a results file names, if it is a plain file name beside it; else (None, why)."""
    if not name:
        return None, None
    if not isinstance(name, str) or name != os.path.basename(name) or name in (".", "..") or "\0" in name:
        return None, "samples_file must be a file name beside the results file"
    folder = results_file.parent.resolve()
    path = (folder / name).resolve()
    if path.parent != folder:
        return None, "samples_file must be a file name beside the results file"
    try:
        st = path.stat()
    except OSError:
        return None, None  # absent: nothing to show
    if not stat.S_ISREG(st.st_mode):
        return None, "samples_file is not a regular file"
    if st.st_size > max_bytes:
        return None, f"samples_file is larger than {max_bytes} bytes"
    return path, None
