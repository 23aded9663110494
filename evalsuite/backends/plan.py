"""Shared-prefix planning over token sequences (pure Python, no torch).

Every scored sequence ``s`` (with the index ``start`` of its first scored token)
is placed in a *group* that shares a token prefix ``s[:d]``. The backend runs
each group's prefix once, keeps its key/value cache, and runs only the tails
``s[d:-1]`` of the members on top of it.

Groups are chosen over a prefix tree of *all* sequences of the run (not only the
choices of one example): sort the sequences, take the longest common prefix of
neighbours, and walk the resulting interval tree. At each node we either cut
(one group for every sequence below, sharing the node's prefix) or recurse into
the children, whichever computes fewer tokens. In lm-eval's XNLI formulation
the context is empty and all nine sequences of a premise (3 hypotheses × 3
answer words) start with the premise, so one premise prefix serves nine.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

# Cost of starting one more group, in token-equivalents (a prefix row, a gather).
GROUP_OVERHEAD = 4


@dataclass(frozen=True)
class Item:
    """A sequence to score: log p(tokens[i] | tokens[:i]) for i in [start, len)."""

    tokens: tuple[int, ...]
    start: int

    def __post_init__(self) -> None:
        if len(self.tokens) < 2 or not 1 <= self.start < len(self.tokens):
            raise ValueError(f"bad scoring item: {len(self.tokens)} tokens, start {self.start}")


@dataclass(frozen=True)
class Group:
    """Items sharing the prefix ``tokens[:depth]``; each member's tail is ``tokens[depth:]``."""

    depth: int
    members: tuple[int, ...]
    """Indices into the planned item list."""


def _lcp(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def plan_groups(items: list[Item], share_prefixes: bool = True) -> list[Group]:
    """Partition items into prefix groups minimising the number of computed tokens."""
    if not share_prefixes:
        return [Group(len(it.tokens) - 1, (i,)) for i, it in enumerate(items)]
    order = sorted(range(len(items)), key=lambda i: items[i].tokens)
    seqs = [items[i].tokens for i in order]
    lcp = [0] + [_lcp(seqs[k - 1], seqs[k]) for k in range(1, len(seqs))]
    groups: list[Group] = []

    def solve(lo: int, hi: int) -> tuple[int, list[Group]]:
        """Best plan for the sorted range [lo, hi)."""
        if hi - lo == 1:
            n = len(seqs[lo])
            return n - 1 + GROUP_OVERHEAD, [Group(n - 1, (order[lo],))]
        depth = min(lcp[lo + 1:hi])
        min_len = min(len(s) for s in seqs[lo:hi])
        cut = min(depth, min_len - 1)
        cut_cost = None
        if cut >= 1:
            cut_cost = cut + sum(len(s) - 1 - cut for s in seqs[lo:hi]) + GROUP_OVERHEAD
        # children: split where the neighbour LCP equals this node's depth
        child_cost = 0
        child_groups: list[Group] = []
        start = lo
        for k in range(lo + 1, hi + 1):
            if k == hi or lcp[k] == depth:
                c, g = solve(start, k)
                child_cost += c
                child_groups.extend(g)
                start = k
        if cut_cost is not None and cut_cost <= child_cost:
            return cut_cost, [Group(cut, tuple(order[lo:hi]))]
        return child_cost, child_groups

    if not items:
        return []
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 10_000 + 4 * max(len(s) for s in seqs)))
    try:
        # Top level: split at LCP 0 boundaries (sequences with no common first token).
        start = 0
        for k in range(1, len(seqs) + 1):
            if k == len(seqs) or lcp[k] == 0:
                groups.extend(solve(start, k)[1])
                start = k
    finally:
        sys.setrecursionlimit(old)
    return groups


def computed_tokens(items: list[Item], groups: list[Group]) -> int:
    """Tokens the backend feeds through the model for this plan."""
    total = 0
    for g in groups:
        total += g.depth
        total += sum(len(items[m].tokens) - 1 - g.depth for m in g.members)
    return total
