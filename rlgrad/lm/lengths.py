"""Forward passes that skip the padding: completions grouped by length.

A sampled batch is padded to its longest completion, and a language model's forward pass costs
about in proportion to the token positions it computes, padding included. Sampled lengths are
uneven (most completions stop early, a few run to the limit), so most positions can be padding.
Attention is causal: cutting a sequence after its last completion token changes no earlier
position's output. So the rows are sorted by completion length and split into a few groups, each
computed only up to its own longest completion; the log-probabilities are those of one padded pass
(to float rounding), and positions past a row's completion, which every loss masks, hold 0.

More groups mean more forward passes, each with its own fixed cost, so a split is used only when
it computes clearly fewer positions (:data:`MIN_SAVING`).
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor

MIN_SAVING = 0.25
"""A split into groups must compute at least this fraction fewer token positions than one padded
pass; below that the extra passes' fixed cost would eat the gain."""
NEAR_BEST = 0.1
"""Of the splits within this fraction of the fewest positions, the one with the fewest groups."""


def completion_lengths(completion_mask: Tensor) -> Tensor:
    """``[B]`` int64: the position after each row's last unmasked completion token (0 for none)."""
    positions = torch.arange(1, completion_mask.shape[1] + 1, device=completion_mask.device)
    return (completion_mask.bool() * positions).amax(dim=1)


def equal_runs(rows: int, groups: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of ``groups`` consecutive runs of ``rows`` rows, sizes differing by one
    at most, none empty."""
    bounds = [rows * i // groups for i in range(groups + 1)]
    return [(start, stop) for start, stop in itertools.pairwise(bounds) if stop > start]


def positions_computed(sorted_lengths: list[int], groups: int, prompt_length: int) -> int:
    """Token positions of ``groups`` passes over :func:`equal_runs` of the rows sorted by length,
    each run cut after its longest completion (at least one token)."""
    return sum(
        (stop - start) * (prompt_length + max(1, sorted_lengths[stop - 1]))
        for start, stop in equal_runs(len(sorted_lengths), groups)
    )


def length_groups(lengths: Tensor, prompt_length: int, max_groups: int) -> list[Tensor]:
    """Row indices in groups of similar completion length, one forward pass each.

    The rows sorted by length are split into k near-equal runs, k ≤ ``max_groups``. A split
    counts when it computes at least :data:`MIN_SAVING` fewer positions than one padded pass
    (:func:`positions_computed`); of those, the one with the fewest groups within
    :data:`NEAR_BEST` of the fewest positions is taken. With none (or ``max_groups`` 1) the answer
    is one group of all rows in their order.

    Example: two long completions among six short ones, after a 4-token prompt, take 126
    positions in four passes instead of 8 × 44 = 352 in one; even lengths stay one pass
        >>> lengths = torch.tensor([2, 40, 3, 2, 1, 38, 2, 3])
        >>> [group.tolist() for group in length_groups(lengths, 4, max_groups=4)]
        [[4, 0], [3, 6], [2, 7], [5, 1]]
        >>> [group.tolist() for group in length_groups(torch.tensor([3, 2, 3]), 4, max_groups=4)]
        [[0, 1, 2]]
    """
    rows = len(lengths)
    everything = [torch.arange(rows, device=lengths.device)]
    if max_groups <= 1 or rows <= 1:
        return everything
    order = torch.sort(lengths, stable=True).indices
    sorted_lengths = lengths[order].tolist()
    costs = {
        k: positions_computed(sorted_lengths, k, prompt_length)
        for k in range(1, 1 + min(max_groups, rows))
    }
    paying = {k: cost for k, cost in costs.items() if cost <= (1.0 - MIN_SAVING) * costs[1]}
    if not paying:
        return everything
    best = min(paying.values())
    groups = min(k for k, cost in paying.items() if cost <= (1.0 + NEAR_BEST) * best)
    return [order[start:stop] for start, stop in equal_runs(rows, groups)]
