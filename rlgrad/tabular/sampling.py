"""Sampling N episodes of a softmax policy on a :class:`TabularMDP` in parallel, time-major.

The MDPs are infinite-horizon and discounted, so an episode is *truncated* after H steps, never
terminated: ``truncated[H − 1]`` is True, ``terminated`` is all False, and ``next_states[H − 1]``
is the true state s_H, from which returns and GAE bootstrap with V(s_H) (the exact V, or a
critic). With the exact V the bootstrapped return is an unbiased estimate of Q(s_t, a_t) at every
t < H; what truncation drops is only the gradient terms of steps t ≥ H, whose weight is γ^t, so
:func:`default_horizon` picks H with γ^H below a tolerance and
:func:`~rlgrad.tabular.exact.policy_gradient` with ``horizon=H`` gives the exact remainder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from rlgrad import _checks
from rlgrad.errors import BadInputError
from rlgrad.tabular.exact import checked_mdp, checked_table, policy
from rlgrad.tabular.mdp import TabularMDP


@dataclass(frozen=True)
class Episodes:
    """N sampled episodes of H steps, every tensor ``[H, N]`` (time-major).

    | Field         | dtype | Meaning                                                |
    |---------------|-------|--------------------------------------------------------|
    | `states`      | long  | s_t                                                    |
    | `actions`     | long  | a_t ~ π(·|s_t)                                          |
    | `rewards`     | float | r(s_t, a_t), the outcome of (s_t, a_t)                 |
    | `next_states` | long  | s_{t+1} ~ P(·|s_t, a_t) (s_H at the last step)         |
    | `terminated`  | bool  | all False: the MDPs never end                          |
    | `truncated`   | bool  | True at t = H − 1 only: the episode is cut, V(s_H) counts |
    """

    states: Tensor
    actions: Tensor
    rewards: Tensor
    next_states: Tensor
    terminated: Tensor
    truncated: Tensor


def default_horizon(gamma: float, tolerance: float = 1e-4) -> int:
    """The smallest H ≥ 1 with γ^H ≤ ``tolerance``: steps beyond it carry weight below it.

    Example (0.9^88 = 9.6e-5):
        >>> default_horizon(0.9)
        88
    """
    fn = "default_horizon"
    gamma = _checks.unit_interval(fn, "gamma", gamma)
    tolerance = _checks.positive(fn, "tolerance", tolerance)
    if gamma >= 1.0:
        raise BadInputError(f"{fn}(): 'gamma' must be < 1; got {gamma}")
    if gamma == 0.0 or tolerance >= 1.0:
        return 1
    return max(1, math.ceil(math.log(tolerance) / math.log(gamma)))


def _draw(probs: Tensor, generator: torch.Generator) -> Tensor:
    """One index per row of ``probs`` ``[N, K]`` by inverting the CDF with a uniform draw."""
    uniforms = torch.rand(probs.shape[0], 1, generator=generator, dtype=probs.dtype)
    return (probs.cumsum(dim=-1) < uniforms).sum(dim=-1).clamp_max(probs.shape[-1] - 1)


def sample_episodes(
    mdp: TabularMDP,
    logits: Tensor,
    num_episodes: int,
    horizon: int,
    generator: torch.Generator | None = None,
) -> Episodes:
    """Roll out the softmax policy π_θ for ``horizon`` steps in ``num_episodes`` copies at once.

    s_0 ~ μ₀, a_t ~ π_θ(·|s_t), s_{t+1} ~ P(·|s_t, a_t); rewards are the MDP's expected r(s, a).

    Args:
        mdp: the MDP.
        logits: ``[S, A]`` θ.
        num_episodes: N ≥ 1.
        horizon: H ≥ 1 steps per episode.
        generator: the source of randomness (a fixed seed makes the episodes reproducible).

    Returns:
        :class:`Episodes`, every field ``[H, N]``.

    Example (two_state always starts in the left state):
        >>> from rlgrad.tabular.zoo import two_state
        >>> episodes = sample_episodes(two_state(), torch.zeros(2, 2, dtype=torch.float64),
        ...                            num_episodes=3, horizon=4,
        ...                            generator=torch.Generator().manual_seed(0))
        >>> episodes.states.shape, episodes.states[0].tolist(), episodes.truncated[:, 0].tolist()
        (torch.Size([4, 3]), [0, 0, 0], [False, False, False, True])
    """
    fn = "sample_episodes"
    mdp = checked_mdp(fn, mdp)
    probs = policy(checked_table(fn, "logits", mdp, logits)).detach()
    num_episodes = _checks.count(fn, "num_episodes", num_episodes)
    horizon = _checks.count(fn, "horizon", horizon)
    if num_episodes < 1 or horizon < 1:
        raise BadInputError(
            f"{fn}(): 'num_episodes' and 'horizon' must be >= 1; got {num_episodes}, {horizon}"
        )
    generator = torch.Generator().manual_seed(0) if generator is None else generator
    shape = (horizon, num_episodes)
    states = torch.empty(shape, dtype=torch.long)
    actions = torch.empty(shape, dtype=torch.long)
    next_states = torch.empty(shape, dtype=torch.long)
    current = _draw(mdp.initial.expand(num_episodes, -1), generator)  # [N]
    for t in range(horizon):
        states[t] = current
        actions[t] = _draw(probs[current], generator)
        next_states[t] = _draw(mdp.transitions[current, actions[t]], generator)
        current = next_states[t]
    truncated = torch.zeros(shape, dtype=torch.bool)
    truncated[-1] = True
    return Episodes(
        states=states,
        actions=actions,
        rewards=mdp.rewards[states, actions],
        next_states=next_states,
        terminated=torch.zeros(shape, dtype=torch.bool),
        truncated=truncated,
    )
