"""Model fingerprints: a hash of weight *contents*, tokenizer files and config.

Checkpoints of one training run share config, file names, sizes and even
safetensors headers, so anything less than the contents would confuse step 1000
with step 2000. Full hashes are memoised per (path, size, mtime, inode, ctime) in
the user cache, so a second run does not re-read the weights; size and mtime alone
are not enough (``cp -p``, ``rsync -a`` and reproducible archives keep both while
changing the contents, but a user cannot set the inode's change time).

A hub id is resolved to the commit it names in the local hub cache (``refs/<revision>``
→ ``snapshots/<commit>/``); the files of that snapshot are fingerprinted like a local
folder and the snapshot folder is what gets loaded, so the numbers, the fingerprint and
the recorded commit always belong together.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalsuite.core.records import stable_hash
from evalsuite.store import atomic_write_json, safe_name

# .py: a --trust-remote-code model's own modeling/tokenizer code decides its numbers as much as its weights
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".model", ".json", ".txt", ".tiktoken", ".py")
_SKIP = {"trainer_state.json", "training_args.bin", "optimizer.pt", "scheduler.pt", "rng_state.pth"}


def _memo_path() -> Path:
    root = os.environ.get("EVALSUITE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "evalsuite")
    return Path(root) / "fingerprints.json"


def _file_digest(path: Path, memo: dict[str, str]) -> str:
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}|{st.st_ctime_ns}"
    if key in memo:
        return memo[key]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    memo[key] = h.hexdigest()
    return memo[key]


def model_files(folder: Path) -> list[Path]:
    """Files that determine a model's outputs (weights, config, tokenizer)."""
    out = []
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.name not in _SKIP and p.name.endswith(_WEIGHT_SUFFIXES) and not p.name.startswith("."):
            out.append(p)
    return out


@dataclass(frozen=True)
class HubSnapshot:
    """A hub model id resolved to the commit it names."""

    repo_id: str
    revision: str
    """The revision asked for (a branch, tag or commit; ``main`` by default)."""
    commit: str | None
    """The 40-hex commit it resolves to (None when neither the hub cache nor the hub can say)."""
    folder: Path | None
    """The snapshot folder in the local hub cache holding that commit's files (None if not downloaded)."""

    def record(self) -> dict[str, str | None]:
        return {"repo_id": self.repo_id, "revision": self.revision, "commit": self.commit}


def hub_cache_dir() -> Path:
    """The hub cache folder, read from the environment at call time (as huggingface_hub does at import)."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "huggingface" / "hub"


_COMMIT = re.compile(r"[0-9a-f]{40}")


def resolve_hub(repo_id: str, revision: str | None = None) -> HubSnapshot:
    """The commit and local snapshot of a hub model id (asks the hub only when the cache cannot say)."""
    rev = revision or "main"
    repo = hub_cache_dir() / ("models--" + repo_id.replace("/", "--"))
    commit: str | None = rev if _COMMIT.fullmatch(rev) else None
    if commit is None:
        try:
            text = (repo / "refs" / rev).read_text(encoding="utf-8").strip()
            commit = text if _COMMIT.fullmatch(text) else None
        except OSError:
            commit = None
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    if commit is None and not offline:
        try:
            from huggingface_hub import HfApi

            commit = HfApi().model_info(repo_id, revision=rev).sha
        except Exception:  # no network, no such repo: loading will say so
            commit = None
    folder = repo / "snapshots" / commit if commit else None
    return HubSnapshot(repo_id, rev, commit, folder if folder is not None and folder.is_dir() else None)


def load_path(model: str, revision: str | None = None) -> str:
    """What to load: a local folder as given; a hub id's resolved snapshot folder when it is downloaded."""
    if Path(model).is_dir():
        return model
    snap = resolve_hub(model, revision)
    return str(snap.folder) if snap.folder is not None else model


def fingerprint(model: str, revision: str | None = None) -> str:
    """``sha256:<hex>`` of a local model folder's (or a hub id's resolved snapshot's) contents;
    ``hub:<id>@<commit>`` for a hub model not downloaded yet, ``hub:<id>@<revision>?`` when even the
    commit is unknown."""
    folder = Path(model)
    if not folder.is_dir():
        snap = resolve_hub(model, revision)
        if snap.folder is not None:
            return fingerprint(str(snap.folder))
        return f"hub:{model}@{snap.commit}" if snap.commit else f"hub:{model}@{snap.revision}?"
    memo_file = _memo_path()
    try:
        memo = json.loads(memo_file.read_text(encoding="utf-8"))
        if not isinstance(memo, dict):
            memo = {}
    except (OSError, ValueError):
        memo = {}
    before = len(memo)
    h = hashlib.sha256()
    for p in model_files(folder):
        h.update(p.name.encode("utf-8") + b"\0" + _file_digest(p, memo).encode("ascii") + b"\n")
    if len(memo) != before:
        try:
            atomic_write_json(memo_file, memo)
        except OSError:
            pass  # memoisation is an optimisation only
    return "sha256:" + h.hexdigest()[:32]


# ---------------------------------------------------------------- memo in a results folder (cluster sweeps)
# A job that hashed a checkpoint records the fingerprint beside the results, with the
# (name, size, mtime) of every file it covers: the submitting host, `track --status` and
# `evalsuite signal` then know the fingerprint from one stat per file, without reading weights.

def checkpoint_key(path: str | Path) -> str:
    """File-name key of a checkpoint: unique per absolute path, readable."""
    p = str(Path(path).resolve())
    return f"{safe_name(Path(p).name, 60)}-{stable_hash(p, 8)}"


def file_stats(folder: Path) -> list[list[Any]]:
    """(name, size, mtime_ns) of the files a fingerprint covers."""
    out = []
    for p in model_files(folder):
        st = p.stat()
        out.append([p.name, st.st_size, st.st_mtime_ns])
    return out


def memo_path(out: Path, checkpoint: str | Path) -> Path:
    return out / "fingerprints" / f"{checkpoint_key(checkpoint)}.json"


def write_memo(out: Path, checkpoint: str | Path, fp: str) -> None:
    """Record ``fp`` with the stats of the files it covers (written by the job that hashed them)."""
    folder = Path(checkpoint)
    atomic_write_json(memo_path(out, folder), {"checkpoint": str(folder.resolve()), "fingerprint": fp,
                                               "files": file_stats(folder)})


def memo_fingerprint(out: Path, checkpoint: str | Path) -> str | None:
    """The fingerprint a job recorded, if the checkpoint's files are unchanged since; never reads weights."""
    folder = Path(checkpoint)
    try:
        memo = json.loads(memo_path(out, folder).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(memo, dict) or not folder.is_dir():
        return None
    try:
        same = memo.get("files") == file_stats(folder)
    except OSError:
        return None
    return memo.get("fingerprint") if same else None
