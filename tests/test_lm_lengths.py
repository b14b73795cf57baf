"""Grouping completions by length for forward passes without padding (rlgrad.lm.lengths)."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

from rlgrad.lm.lengths import (
    MIN_SAVING,
    NEAR_BEST,
    completion_lengths,
    length_groups,
    positions_computed,
)


def test_completion_lengths_end_at_the_last_token_in_the_mask():
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]]).float()
    assert completion_lengths(mask).tolist() == [3, 1, 0, 4]


def brute_force_positions(lengths: list[int], groups: list[list[int]], prompt: int) -> int:
    return sum(len(g) * (prompt + max(1, max(lengths[i] for i in g))) for g in groups)


@st.composite
def long_tails(draw):
    """(lengths, prompt length, max_groups) where a split always pays: at least as many short
    completions (0-4 tokens) as long ones (40-64), four rows or more, shuffled, after a prompt of
    1-8 tokens. Two groups, the shorter half of the rows and the rest, already compute at least
    ⌊n/2⌋/n · (40 − 4)/(8 + 40) ≥ 2/5 · 3/4 = 0.3 ≥ MIN_SAVING fewer positions than one pass."""
    long = draw(st.lists(st.integers(40, 64), min_size=1, max_size=12))
    short = draw(st.lists(st.integers(0, 4), min_size=max(2, len(long)), max_size=28))
    lengths = draw(st.permutations(short + long))
    return lengths, draw(st.integers(1, 8)), draw(st.integers(2, 6))


@given(long_tails())
def test_a_long_tail_is_split_sorted_by_length_into_the_fewest_groups_that_pay_off(case):
    lengths, prompt, max_groups = case
    groups = [g.tolist() for g in length_groups(torch.tensor(lengths), prompt, max_groups)]
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))  # each row once
    assert 2 <= len(groups) <= max_groups
    # sorted by length across the groups, and worth the extra passes
    ordered = [lengths[i] for g in groups for i in g]
    assert ordered == sorted(ordered)
    one_pass = len(lengths) * (prompt + max(lengths))
    computed = brute_force_positions(lengths, groups, prompt)
    assert computed <= (1 - MIN_SAVING) * one_pass
    # the fewest groups within NEAR_BEST of the best equal-run split that pays off
    sorted_lengths = sorted(lengths)
    costs = [positions_computed(sorted_lengths, k, prompt) for k in range(1, max_groups + 1)]
    best = min(costs[: len(lengths)])  # more groups than rows: the same runs
    assert computed == costs[len(groups) - 1]
    assert computed <= (1 + NEAR_BEST) * best
    for cost in costs[1 : len(groups) - 1]:  # fewer groups: too little saved, or far from best
        assert cost > (1 - MIN_SAVING) * one_pass or cost > (1 + NEAR_BEST) * best


@given(
    st.integers(8, 64).flatmap(
        lambda low: st.lists(st.integers(low, low + low // 4), min_size=1, max_size=40)
    ),
    st.integers(0, 16),
    st.integers(1, 6),
)
def test_near_equal_lengths_stay_one_pass_in_the_rows_order(lengths, prompt, max_groups):
    # lengths within [m, m + m/4]: any split saves at most (m/4)/(prompt + m + m/4) ≤ 1/5 of
    # the positions, less than MIN_SAVING, so one pass over the rows as they are is kept
    groups = [g.tolist() for g in length_groups(torch.tensor(lengths), prompt, max_groups)]
    assert groups == [list(range(len(lengths)))]


def test_positions_computed_counts_each_run_up_to_its_longest():
    # runs [1, 2] [5, 9] after a 3-token prompt: 2·(3 + 2) + 2·(3 + 9); a length 0 costs one token
    assert positions_computed([1, 2, 5, 9], 2, 3) == 34
    assert positions_computed([0, 0], 1, 3) == 8


def test_a_long_tail_is_split_and_even_lengths_are_not():
    long_tail = torch.tensor([2] * 14 + [48, 47])
    groups = length_groups(long_tail, 4, max_groups=4)
    assert len(groups) > 1 and {14, 15} <= set(groups[-1].tolist())
    assert len(length_groups(torch.tensor([5, 6, 5, 6]), 4, max_groups=4)) == 1
    assert len(length_groups(long_tail, 4, max_groups=1)) == 1
