"""The request cache on a network filesystem (NFS, Lustre): write locally, publish by rename.

SQLite's locking and WAL index (``-wal``/``-shm`` files, shared memory) do not work
across hosts on NFS or Lustre. So a cluster job never opens a database for writing
in the shared folder:

- it writes its shard on local disk (``$TMPDIR``), in WAL mode as a local run does;
- when the run ends the shard is checkpointed, switched to a rollback journal, copied
  into the shared namespace folder under a name no reader looks at (``.<name>.part``),
  flushed, and renamed to ``<name>.sqlite`` — one atomic step on POSIX filesystems, so
  a reader sees either no shard or a whole one;
- published shards are never written again, so readers open them with
  ``mode=ro&immutable=1``: SQLite then takes no lock and creates no ``-wal``/``-shm``
  file next to them.

A job killed before publishing loses only its own new responses (recomputed by
the requeued job); results are unaffected because they are keyed by content.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote

from evalsuite.cache import RequestCache, default_root

PART_SUFFIX = ".part"


class SharedCache(RequestCache):
    """A request cache whose shared folder only ever receives whole, finished shards."""

    def __init__(self, identity: dict[str, Any], shared_root: Path | None, local_root: Path):
        super().__init__(identity, shared_root or default_root())
        self.write_dir = Path(local_root) / self.dir.name
        self.published: Path | None = None

    def shards(self) -> list[Path]:
        shared = sorted(self.dir.glob("*.sqlite")) if self.dir.is_dir() else []
        local = sorted(self.write_dir.glob("*.sqlite")) if self.write_dir.is_dir() else []
        return shared + local

    def _read_uri(self, shard: Path) -> str:
        if shard.parent == self.dir:  # published: never changes again
            return f"file:{quote(str(shard))}?mode=ro&immutable=1"
        return super()._read_uri(shard)

    def close(self) -> None:
        had_writer = self._writer is not None
        super().close()
        if had_writer and self.shard_path is not None and self.shard_path.exists():
            self.published = publish(self.shard_path, self.dir)


def publish(local_shard: Path, shared_dir: Path) -> Path:
    """Move a finished local shard into ``shared_dir`` atomically; returns its published path."""
    con = sqlite3.connect(local_shard, isolation_level=None)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        con.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, readable without a -shm
    finally:
        con.close()
    shared_dir.mkdir(parents=True, exist_ok=True)
    part = shared_dir / f".{local_shard.name}{PART_SUFFIX}"
    target = shared_dir / local_shard.name
    with open(local_shard, "rb") as src, open(part, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
        dst.flush()
        os.fsync(dst.fileno())
    os.replace(part, target)
    _fsync_dir(shared_dir)
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.unlink(str(local_shard) + suffix)
        except FileNotFoundError:
            pass
    return target


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def local_scratch() -> Path:
    """Local disk for a job's shard: ``$TMPDIR`` (Slurm sets a per-job one on most clusters) or /tmp."""
    import tempfile

    return Path(tempfile.mkdtemp(prefix="evalsuite-shard-", dir=os.environ.get("TMPDIR") or None))
