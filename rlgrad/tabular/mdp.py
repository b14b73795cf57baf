"""A finite, discounted Markov decision process held as plain tensors.

| Symbol    | Field         | Shape       | Meaning                                   |
|-----------|---------------|-------------|-------------------------------------------|
| P(s'|s,a) | `transitions` | `[S, A, S]` | probability of landing in s' after (s, a) |
| r(s, a)   | `rewards`     | `[S, A]`    | expected reward of taking a in s          |
| γ         | `gamma`       | scalar      | discount, 0 ≤ γ < 1 (infinite horizon)    |
| μ₀(s)     | `initial`     | `[S]`       | distribution of the first state           |

The horizon is infinite and discounted, so every value is finite only for γ < 1; an episodic task
is expressed with an absorbing, zero-reward state (P(s|s,a) = 1, r(s,a) = 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from rlgrad import _checks
from rlgrad.errors import BadInputError


def check_probabilities(fn: str, name: str, x: Tensor, axis_name: str) -> None:
    """Entries in [0, 1] and each distribution along the last axis summing to 1."""
    outside = (x < 0) | (x > 1)
    if bool(outside.any()):
        where = tuple(int(i) for i in outside.nonzero()[0].tolist())
        raise BadInputError(
            f"{fn}(): '{name}' must hold probabilities in [0, 1]; got {x[where].item():.6g} "
            f"at index {where}"
        )
    tolerance = 1e-9 if x.dtype == torch.float64 else 1e-5
    sums = x.sum(dim=-1)
    off = (sums - 1).abs() > tolerance
    if bool(off.any()):
        where = tuple(int(i) for i in off.nonzero()[0].tolist())
        raise BadInputError(
            f"{fn}(): '{name}' must sum to 1 over {axis_name}; got {sums[where].item():.12g} "
            f"at index {where}"
        )


@dataclass(frozen=True)
class TabularMDP:
    """A finite MDP (transitions ``[S, A, S]``, rewards ``[S, A]``, γ, initial ``[S]``), validated.

    Args:
        transitions: ``[S, A, S]`` P(s'|s, a); every ``transitions[s, a]`` sums to 1.
        rewards: ``[S, A]`` expected reward r(s, a), finite.
        gamma: the discount γ ∈ [0, 1).
        initial: ``[S]`` the start distribution μ₀, summing to 1.
        name: a label for tables and plots.
        state_names: S labels (default ``"s0", "s1", ...``).
        action_names: A labels (default ``"a0", "a1", ...``).

    Raises:
        TypeError: a non-tensor or non-floating tensor, or mixed dtypes/devices.
        ValueError: a wrong shape, a NaN, a probability outside [0, 1], a distribution that does
        not sum to 1, γ outside [0, 1), or the wrong number of names.

    Example (one state, one action paying 1 forever: V = 1/(1 − 0.5) = 2):
        >>> mdp = TabularMDP(torch.ones(1, 1, 1), torch.ones(1, 1), 0.5, torch.ones(1))
        >>> mdp.num_states, mdp.num_actions, mdp.state_names
        (1, 1, ('s0',))
    """

    transitions: Tensor
    rewards: Tensor
    gamma: float
    initial: Tensor
    name: str = "mdp"
    state_names: tuple[str, ...] = field(default=())
    action_names: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        fn = "TabularMDP"
        transitions = _checks.floats(fn, "transitions", self.transitions)
        if transitions.dim() != 3 or transitions.shape[0] != transitions.shape[2]:
            raise BadInputError(
                f"{fn}(): 'transitions' must have shape [S, A, S]; got {tuple(transitions.shape)}"
            )
        num_states, num_actions = transitions.shape[0], transitions.shape[1]
        if num_states == 0 or num_actions == 0:
            raise BadInputError(
                f"{fn}(): 'transitions' needs at least one state and one action; "
                f"got shape {tuple(transitions.shape)}"
            )
        rewards = _checks.tensor(fn, "rewards", self.rewards)
        if rewards.shape != (num_states, num_actions):
            raise BadInputError(
                f"{fn}(): 'rewards' must have shape [S, A] = {(num_states, num_actions)}; "
                f"got {tuple(rewards.shape)}"
            )
        _checks.same_kind(fn, "rewards", rewards, "transitions", transitions)
        _checks.finite(fn, "rewards", rewards)
        initial = _checks.tensor(fn, "initial", self.initial)
        if initial.shape != (num_states,):
            raise BadInputError(
                f"{fn}(): 'initial' must have shape [S] = ({num_states},); "
                f"got {tuple(initial.shape)}"
            )
        _checks.same_kind(fn, "initial", initial, "transitions", transitions)
        _checks.finite(fn, "initial", initial)
        check_probabilities(fn, "transitions", transitions, "next states (last axis)")
        check_probabilities(fn, "initial", initial, "states")
        gamma = _checks.unit_interval(fn, "gamma", self.gamma)
        if gamma >= 1.0:
            raise BadInputError(
                f"{fn}(): 'gamma' must be < 1 for an infinite-horizon MDP (values would be "
                f"infinite); got {gamma}"
            )
        object.__setattr__(self, "gamma", gamma)
        for attr, size, prefix in (
            ("state_names", num_states, "s"),
            ("action_names", num_actions, "a"),
        ):
            names = tuple(getattr(self, attr)) or tuple(f"{prefix}{i}" for i in range(size))
            if len(names) != size:
                raise BadInputError(f"{fn}(): '{attr}' must hold {size} names; got {len(names)}")
            object.__setattr__(self, attr, names)

    @property
    def num_states(self) -> int:
        return self.transitions.shape[0]

    @property
    def num_actions(self) -> int:
        return self.transitions.shape[1]

    @property
    def dtype(self) -> torch.dtype:
        return self.transitions.dtype
