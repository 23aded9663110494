"""Plain progress lines for logs: when stderr is not a terminal (a cluster job's log file), a
progress bar prints nothing useful, so every N seconds one line says requests done/total, rate
and ETA."""

from __future__ import annotations

import sys
import time
from typing import Callable, TextIO


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


class PlainProgress:
    """``update(n)`` after each finished request; prints at most one line every ``every`` seconds."""

    def __init__(self, total: int, initial: int = 0, every: float = 30.0, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic, label: str = "requests"):
        self.total = total
        self.done = initial
        self.initial = initial
        self.every = every
        self.stream = stream or sys.stderr
        self.clock = clock
        self.label = label
        self.start = clock()
        self.last = self.start

    def line(self) -> str:
        elapsed = self.clock() - self.start
        computed = self.done - self.initial
        rate = computed / elapsed if elapsed > 0 else 0.0
        pct = 100.0 * self.done / self.total if self.total else 100.0
        eta = _duration((self.total - self.done) / rate) if rate > 0 else "?"
        return (f"progress: {self.done}/{self.total} {self.label} ({pct:.0f}%), {rate:.1f}/s, "
                f"elapsed {_duration(elapsed)}, ETA {eta}")

    def update(self, n: int = 1) -> None:
        self.done += n
        now = self.clock()
        if self.every > 0 and now - self.last >= self.every:
            self.last = now
            print(self.line(), file=self.stream, flush=True)

    def close(self) -> None:
        if self.every > 0 and self.done > self.initial:
            print(self.line().replace("progress:", "done:", 1), file=self.stream, flush=True)


def make_progress(total: int, initial: int, every: float) -> object:
    """A tqdm bar when stderr is a terminal, else ``PlainProgress`` lines."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, desc="requests", unit="req", file=sys.stderr, dynamic_ncols=True)
    return PlainProgress(total, initial, every)
