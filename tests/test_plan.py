"""Shared-prefix planning: every item in exactly one group, real shared prefixes, fewer tokens."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from evalsuite.backends.plan import Item, computed_tokens, plan_groups


def _check(items: list[Item], groups) -> None:
    seen = sorted(m for g in groups for m in g.members)
    assert seen == list(range(len(items)))
    for g in groups:
        assert g.depth >= 1
        head = items[g.members[0]].tokens[: g.depth]
        for m in g.members:
            assert items[m].tokens[: g.depth] == head
            assert g.depth <= len(items[m].tokens) - 1


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.lists(st.integers(0, 3), min_size=2, max_size=12), st.integers(1, 11)), min_size=1, max_size=30))
def test_plan_is_a_valid_partition_and_never_costs_more(raw):
    items = [Item(tuple(t), min(s, len(t) - 1)) for t, s in raw]
    groups = plan_groups(items)
    _check(items, groups)
    assert computed_tokens(items, groups) <= computed_tokens(items, plan_groups(items, share_prefixes=False))


def test_xnli_lmeval_layout_shares_the_premise_across_nine_sequences():
    rng = random.Random(0)
    bos = 1
    items = []
    for _ in range(20):
        premise = [rng.randrange(10, 500) for _ in range(25)]
        hyps = [[rng.randrange(10, 500) for _ in range(12)] for _ in range(3)]
        for h in hyps:
            for word in (7, 8, 9):  # the three answer words
                items.append(Item(tuple([bos] + premise + [5, word, 5] + h), 1))
    groups = plan_groups(items)
    _check(items, groups)
    assert len(groups) == 20 and all(len(g.members) == 9 for g in groups)
    assert all(g.depth >= 26 for g in groups)
    shared = computed_tokens(items, groups)
    plain = computed_tokens(items, plan_groups(items, share_prefixes=False))
    assert shared < 0.55 * plain


def test_duplicate_sequences_are_one_group():
    items = [Item((1, 2, 3, 4), 2), Item((1, 2, 3, 4), 2), Item((1, 2, 3, 4), 3)]
    groups = plan_groups(items)
    assert len(groups) == 1 and groups[0].depth == 3
