"""Request cache: every backend response is persisted the moment it is computed.

Layout: ``<root>/<namespace>/<host>-<pid>-<random>.sqlite``. The namespace is a
hash of what determines a response — model fingerprint, backend, dtype, maximum
length / truncation and special-token policy — never batch size or device. Each
process writes only its own shard (SQLite in WAL mode), so two runs sharing a
cache never contend for a lock, and a results folder on a network filesystem is
safe as long as each machine writes its own shard; readers look at all shards.

A run killed at any moment (SIGKILL included) loses at most the response being
written: started again with the same command it recomputes only what is missing.

Every namespace folder holds a marker file (``MARKER``): ``clear`` deletes only
folders carrying it, so a cache root that shares a folder with anything else
(checkpoints, datasets) never loses it. A writer whose shard was removed under it
(``cache clear`` while it runs) notices and starts a new shard.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import sys
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterable

from evalsuite.core.records import Response, stable_hash

MARKER = ".evalsuite-namespace"
"""File in every namespace folder evalsuite creates; only such folders are ever deleted."""
_LEGACY = re.compile(r"[0-9a-f]{24}")
_SHARD_FILE = re.compile(r".+\.sqlite(-wal|-shm|-journal)?")

# Keys of a backend identity that do not change numbers (and so must not split the cache).
_NOT_KEYED = {"model"}


def default_root() -> Path:
    root = os.environ.get("EVALSUITE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "evalsuite")
    return Path(root) / "requests"


def namespace(identity: dict[str, Any]) -> str:
    """Cache namespace of a backend identity."""
    return stable_hash({k: v for k, v in identity.items() if k not in _NOT_KEYED}, 24)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (request_id TEXT PRIMARY KEY, payload TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class RequestCache:
    """Read every shard of a namespace; write to this process's own shard."""

    def __init__(self, identity: dict[str, Any], root: Path | None = None):
        self.identity = identity
        self.root = root or default_root()
        self.dir = self.root / namespace(identity)
        self.write_dir = self.dir
        """Where this process's own shard is written (``cache_shared``: local disk)."""
        self.shard_path: Path | None = None
        self._writer: sqlite3.Connection | None = None
        self.hits = 0
        self.written = 0
        self.failed: str | None = None
        """Why writing stopped (disk full, ...): the run goes on without the cache."""

    # ---- reading ---------------------------------------------------------
    def shards(self) -> list[Path]:
        return sorted(self.dir.glob("*.sqlite")) if self.dir.is_dir() else []

    def _read_uri(self, shard: Path) -> str:
        """How a shard is opened for reading (``cache_shared`` opens published shards immutable)."""
        return f"file:{shard}?mode=ro"

    def lookup(self, request_ids: Iterable[str]) -> dict[str, Response]:
        """Cached responses for the given ids (errors are not served from the cache)."""
        wanted = set(request_ids)
        found: dict[str, Response] = {}
        for shard in self.shards():
            if not wanted - found.keys():
                break
            try:
                con = sqlite3.connect(self._read_uri(shard), uri=True, timeout=30)
            except sqlite3.Error:
                continue
            try:
                rows = con.execute("SELECT request_id, payload FROM responses").fetchall()
            except sqlite3.Error:
                rows = []  # a shard being created right now, or damaged: skip it
            finally:
                con.close()
            for rid, payload in rows:
                if rid in wanted and rid not in found:
                    try:
                        r = Response(**json.loads(payload))
                    except (ValueError, TypeError):
                        continue
                    if r.error is None:
                        found[rid] = r
        self.hits += len(found)
        return found

    # ---- writing ---------------------------------------------------------
    def _open_writer(self) -> sqlite3.Connection:
        self.dir.mkdir(parents=True, exist_ok=True)
        marker = self.dir / MARKER  # says the namespace folder is evalsuite's (cache clear deletes only those)
        if not marker.exists():
            marker.write_text(json.dumps(self.identity, sort_keys=True, default=str) + "\n", encoding="utf-8")
        self.write_dir.mkdir(parents=True, exist_ok=True)
        name = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.sqlite"
        self.shard_path = self.write_dir / name
        con = sqlite3.connect(self.shard_path, timeout=30, isolation_level=None)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        con.executescript(_SCHEMA)
        con.execute("INSERT OR REPLACE INTO meta VALUES ('identity', ?)",
                    (json.dumps(self.identity, sort_keys=True, default=str),))
        return con

    def put(self, response: Response) -> None:
        """Persist one response now (a committed row survives a SIGKILL of this process)."""
        if response.error is not None or self.failed is not None:
            return
        try:
            self._put(response)
        except (sqlite3.Error, OSError) as e:
            # a full disk must not stop the evaluation: the responses are still in memory
            self.failed = f"{type(e).__name__}: {e}"
            self._drop_writer()
            sys.stderr.write(f"warning: the request cache under {self.dir} cannot be written ({self.failed}); "
                             "continuing without it (this run's responses are not cached)\n")

    def _put(self, response: Response) -> None:
        row = (response.request_id, json.dumps(asdict(response), ensure_ascii=False))
        for _attempt in range(2):
            if self._writer is None:
                self._writer = self._open_writer()
            self._writer.execute("INSERT OR REPLACE INTO responses VALUES (?, ?)", row)
            # Checked after the write: a shard deleted under us (cache clear) would swallow every later
            # response into an unlinked file; start a new shard and write this response again.
            if self.shard_path is not None and self.shard_path.exists():
                break
            self._drop_writer()
        self.written += 1

    def _drop_writer(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            except sqlite3.Error:
                pass
        self._writer = None

    def close(self) -> None:
        if self._writer is not None:
            try:
                self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass
            self._drop_writer()


def _is_ours(folder: Path) -> bool:
    """A namespace folder evalsuite made: it has the marker, or (written before markers) a namespace
    hash as its name and nothing but SQLite shard files inside."""
    if (folder / MARKER).is_file():
        return True
    if not _LEGACY.fullmatch(folder.name):
        return False
    try:
        entries = list(folder.iterdir())
    except OSError:
        return False
    return bool(entries) and all(e.is_file() and _SHARD_FILE.fullmatch(e.name) for e in entries)


def foreign(root: Path | None = None) -> list[str]:
    """Sub-folders of the cache root that evalsuite did not create (never counted, never deleted)."""
    root = root or default_root()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not _is_ours(p))


def info(root: Path | None = None) -> list[dict[str, Any]]:
    """One entry per namespace: identity, shards, responses, bytes on disk."""
    root = root or default_root()
    out = []
    if not root.is_dir():
        return out
    for ns in sorted(p for p in root.iterdir() if p.is_dir() and _is_ours(p)):
        shards = sorted(ns.glob("*.sqlite"))
        ids: set[str] = set()
        identity: Any = None
        for s in shards:
            try:
                con = sqlite3.connect(f"file:{s}?mode=ro", uri=True, timeout=30)
                try:
                    ids.update(r[0] for r in con.execute("SELECT request_id FROM responses"))
                    row = con.execute("SELECT value FROM meta WHERE key='identity'").fetchone()
                    if row and identity is None:
                        identity = json.loads(row[0])
                finally:
                    con.close()
            except sqlite3.Error:
                continue
        size = sum(f.stat().st_size for f in ns.iterdir() if f.is_file())
        out.append({"namespace": ns.name, "identity": identity, "shards": len(shards), "responses": len(ids), "bytes": size})
    return out


def clear(root: Path | None = None, namespace_prefix: str | None = None) -> int:
    """Delete cached namespaces (all, or those starting with a prefix); returns how many.

    Only folders evalsuite created are touched (see ``foreign``).
    """
    import shutil

    root = root or default_root()
    n = 0
    if not root.is_dir():
        return 0
    for ns in root.iterdir():
        if ns.is_dir() and not ns.is_symlink() and _is_ours(ns) and (namespace_prefix is None or ns.name.startswith(namespace_prefix)):
            shutil.rmtree(ns)
            n += 1
    return n
