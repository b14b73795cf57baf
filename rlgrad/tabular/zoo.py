"""Small MDPs whose every quantity can be computed exactly: the course's two-state example and more.

- :func:`two_state`: the running example of course module E.3. The policy's parameter sets the
  probability of choosing *right*.
- :func:`chain`: a corridor where the greedy (highest immediate reward) action is a trap.
- :func:`random_mdp`: a random MDP from a seed, so results don't hinge on one hand-made toy.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from rlgrad import _checks
from rlgrad.errors import BadInputError
from rlgrad.tabular.mdp import TabularMDP

LEFT, RIGHT = 0, 1


def two_state(gamma: float = 0.9, slip: float = 0.1) -> TabularMDP:
    """The course's two-state running example: states *left*/*right*, actions *left*/*right*.

    An action moves the agent to the state it names, except that with probability ``slip`` it
    lands in the other one. Rewards:

    | state \\ action | left | right |
    |----------------|------|-------|
    | left           | 0.5  | 0     |
    | right          | 0    | 1     |

    The episode starts in *left* (μ₀ = [1, 0]). Staying left pays 0.5 at once; moving right pays
    nothing now but 1 per step afterwards, so for γ = 0.9 the optimal policy chooses *right* in
    both states (V*(left) ≈ 8.1, V*(right) ≈ 9.1) while a greedy one stays left.

    The policy is a softmax over logits θ ``[2, 2]``: π(right | s) = σ(θ[s, right] − θ[s, left]),
    so raising θ[s, right] raises the probability of choosing right, as in the course's
    one-parameter picture. θ = 0 is the uniform policy.

    Args:
        gamma: the discount γ ∈ [0, 1).
        slip: the probability ∈ [0, 1] that an action moves the agent to the other state.

    Returns:
        A float64 :class:`TabularMDP` named ``"two_state"``.

    Example:
        >>> mdp = two_state()
        >>> mdp.rewards
        tensor([[0.5000, 0.0000],
                [0.0000, 1.0000]], dtype=torch.float64)
        >>> mdp.transitions[0, RIGHT]  # from left, choosing right
        tensor([0.1000, 0.9000], dtype=torch.float64)
    """
    slip = _checks.unit_interval("two_state", "slip", slip)
    moves = torch.tensor([[1 - slip, slip], [slip, 1 - slip]], dtype=torch.float64)  # [a, s']
    transitions = moves.expand(2, 2, 2).clone()  # [s, a, s']: the same moves from either state
    rewards = torch.tensor([[0.5, 0.0], [0.0, 1.0]], dtype=torch.float64)
    return TabularMDP(
        transitions,
        rewards,
        gamma,
        torch.tensor([1.0, 0.0], dtype=torch.float64),
        name="two_state",
        state_names=("left", "right"),
        action_names=("left", "right"),
    )


def chain(
    length: int = 5, gamma: float = 0.9, slip: float = 0.1, retreat_reward: float = 0.2
) -> TabularMDP:
    """A corridor where the greedy action is a trap (after Strens's NChain, 2000).

    States 0 … n−1, start in 0. *forward* moves one state right and pays 0, except in the last
    state, where it stays and pays 1. *back* returns to state 0 and pays ``retreat_reward``. With
    probability ``slip`` the other action's effect (and reward) happens instead. Everywhere but at
    the end *back* pays more at once, so a greedy learner retreats forever (return ≈ 0.2/(1 − γ))
    while the optimal policy walks forward to collect 1 per step.

    Args:
        length: the number of states n ≥ 2.
        gamma: the discount γ ∈ [0, 1).
        slip: the probability ∈ [0, 1] that the other action's effect happens.
        retreat_reward: the reward of *back* (≥ 0; below 1 for the trap to be one).

    Returns:
        A float64 :class:`TabularMDP` named ``"chain"`` with actions ``("back", "forward")``.

    Example (r(s, back) = 0.9·0.2 + 0.1·0 away from the end, 0.9·0.2 + 0.1·1 at it):
        >>> chain(length=3).rewards
        tensor([[0.1800, 0.0200],
                [0.1800, 0.0200],
                [0.2800, 0.9200]], dtype=torch.float64)
    """
    fn = "chain"
    length = _checks.count(fn, "length", length)
    if length < 2:
        raise BadInputError(f"{fn}(): 'length' must be >= 2; got {length}")
    slip = _checks.unit_interval(fn, "slip", slip)
    retreat_reward = _checks.non_negative(fn, "retreat_reward", retreat_reward)
    back, forward = 0, 1
    effect = torch.zeros(length, 2, length, dtype=torch.float64)  # [s, effect, s']
    payoff = torch.zeros(length, 2, dtype=torch.float64)  # [s, effect]
    for s in range(length):
        effect[s, back, 0] = 1.0
        payoff[s, back] = retreat_reward
        effect[s, forward, min(s + 1, length - 1)] = 1.0
        payoff[s, forward] = 1.0 if s == length - 1 else 0.0
    # Action a has its own effect with probability 1 − slip and the other one's with slip.
    mix = torch.tensor([[1 - slip, slip], [slip, 1 - slip]], dtype=torch.float64)  # [a, effect]
    transitions = torch.einsum("ae,set->sat", mix, effect)
    rewards = torch.einsum("ae,se->sa", mix, payoff)
    initial = torch.zeros(length, dtype=torch.float64)
    initial[0] = 1.0
    return TabularMDP(
        transitions,
        rewards,
        gamma,
        initial,
        name="chain",
        state_names=tuple(str(s) for s in range(length)),
        action_names=("back", "forward"),
    )


def random_mdp(
    num_states: int = 6, num_actions: int = 3, gamma: float = 0.9, seed: int = 0
) -> TabularMDP:
    """A random MDP: P(·|s, a) and μ₀ ~ Dirichlet(1, …, 1), r(s, a) ~ N(0, 1), from ``seed``.

    Args:
        num_states: S ≥ 1.
        num_actions: A ≥ 1.
        gamma: the discount γ ∈ [0, 1).
        seed: seeds a private ``torch.Generator`` (the global RNG is untouched).

    Returns:
        A float64 :class:`TabularMDP` named ``"random"``.

    Example (the same seed gives the same MDP):
        >>> torch.equal(random_mdp(seed=3).transitions, random_mdp(seed=3).transitions)
        True
    """
    fn = "random_mdp"
    num_states = _checks.count(fn, "num_states", num_states)
    num_actions = _checks.count(fn, "num_actions", num_actions)
    seed = _checks.count(fn, "seed", seed)
    generator = torch.Generator().manual_seed(seed)

    def dirichlet(*shape: int) -> torch.Tensor:
        # Normalized Exp(1) draws are Dirichlet(1, ..., 1) along the last axis.
        draws = -torch.log1p(-torch.rand(*shape, generator=generator, dtype=torch.float64))
        return draws / draws.sum(dim=-1, keepdim=True)

    transitions = dirichlet(num_states, num_actions, num_states)
    rewards = torch.randn(num_states, num_actions, generator=generator, dtype=torch.float64)
    return TabularMDP(transitions, rewards, gamma, dirichlet(num_states), name="random")


ZOO: dict[str, Callable[..., TabularMDP]] = {
    "two_state": two_state,
    "chain": chain,
    "random": random_mdp,
}
"""The MDPs by name, as ``rlgrad study --mdp NAME`` picks them."""


def make_logits(mdp: TabularMDP, spec: str = "zeros", seed: int = 0) -> torch.Tensor:
    """θ ``[S, A]`` (float64) from a short spec, as ``rlgrad study --theta`` takes it.

    ``"zeros"``: the uniform policy. ``"random"``: N(0, 1) logits from ``seed``. Otherwise S·A
    comma-separated numbers, row by row (state by state).

    Example (two_state: π(right|left) = σ(1) = 0.73, uniform in the right state):
        >>> make_logits(two_state(), "0,1,0,0")
        tensor([[0., 1.],
                [0., 0.]], dtype=torch.float64)
    """
    fn = "make_logits"
    shape = (mdp.num_states, mdp.num_actions)
    if spec == "zeros":
        return torch.zeros(shape, dtype=torch.float64)
    if spec == "random":
        generator = torch.Generator().manual_seed(_checks.count(fn, "seed", seed))
        return torch.randn(shape, generator=generator, dtype=torch.float64)
    try:
        numbers = [float(x) for x in spec.split(",")]
    except ValueError:
        raise BadInputError(
            f"{fn}(): 'spec' must be 'zeros', 'random' or {shape[0] * shape[1]} comma-separated "
            f"numbers; got {spec!r}"
        ) from None
    if len(numbers) != shape[0] * shape[1]:
        raise BadInputError(
            f"{fn}(): 'spec' must list S·A = {shape[0] * shape[1]} numbers for {mdp.name}; "
            f"got {len(numbers)}"
        )
    return torch.tensor(numbers, dtype=torch.float64).reshape(shape)
