"""The exact natural policy gradient of a tabular softmax policy (Kakade 2001).

The vanilla gradient ∇J depends on how the policy is parameterized; the natural gradient
F⁺∇J measures steps by how much they change the policy — the KL divergence, whose Hessian is
the Fisher matrix F — instead of by their Euclidean length. TRPO (:mod:`rlgrad.trust_region`)
approximates it with conjugate gradient on sampled Fisher-vector products; on a finite MDP it is
a small pseudo-inverse. With logits θ ``[S, A]`` flattened state by state (θ[s, a] is entry
s·A + a):

| Symbol | Meaning                                  | Formula as coded                           |
|--------|------------------------------------------|--------------------------------------------|
| d_ρ    | normalized visitation ``[S]``, sums to 1 | d_ρ = (1 − γ) d^π, d^π of state_visitation |
| F      | Fisher matrix ``[S·A, S·A]``             | Σ_s d_ρ(s) Σ_a π(a|s) ∇log π ∇log πᵀ        |
| F_s    | its block for state s ``[A, A]``         | d_ρ(s) (diag π(·|s) − π(·|s) π(·|s)ᵀ)       |
| w      | natural gradient ``[S, A]``              | w = F⁺ ∇J, solved block by block           |

The normalization is the one of Kakade (2001) and Agarwal et al. (2021, section 5.3): with it,
and ∇J from the policy gradient theorem with the unnormalized d^π, the natural gradient has the
closed form w(s, a) = A^π(s, a) / (1 − γ) − c(s): the advantage, up to a constant per state
that changes no probability. So natural gradient ascent with step α is a soft policy iteration,
π_{k+1}(a|s) ∝ π_k(a|s) exp(α A^π_k(s, a) / (1 − γ)), whose speed does not depend on how
rarely a state is visited or how small π already is — the two things that stall vanilla
ascent on :func:`~rlgrad.tabular.zoo.chain`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from rlgrad import _checks
from rlgrad.calculus import gradient_ascent
from rlgrad.tabular.exact import (
    checked_mdp,
    checked_table,
    evaluate,
    objective,
    optimal_policy,
    policy,
    policy_gradient,
    state_visitation,
)
from rlgrad.tabular.mdp import TabularMDP


def _fisher_blocks(mdp: TabularMDP, logits: Tensor) -> Tensor:
    """F_s = d_ρ(s)(diag π_s − π_s π_sᵀ) ``[S, A, A]``, the diagonal blocks of F.

    ∇_{θ[s]} log π(a|s) = e_a − π_s (and 0 for another state's logits), so
    Σ_a π(a|s)(e_a − π_s)(e_a − π_s)ᵀ = diag π_s − π_s π_sᵀ; the blocks of two different states
    are 0 because each log π(·|s) reads only its own row of θ.
    """
    probs = policy(logits)  # [S, A]
    visitation = (1.0 - mdp.gamma) * state_visitation(mdp, probs)  # [S], sums to 1
    curvature = torch.diag_embed(probs) - probs.unsqueeze(-1) * probs.unsqueeze(-2)  # [S, A, A]
    return visitation[:, None, None] * curvature


def fisher_information(mdp: TabularMDP, logits: Tensor) -> Tensor:
    """The exact Fisher matrix of the softmax policy, weighted by the normalized visitation:

        F = Σ_s d_ρ(s) Σ_a π(a|s) ∇_θ log π(a|s) ∇_θ log π(a|s)ᵀ,    d_ρ = (1 − γ) d^π

    Block diagonal, one ``[A, A]`` block d_ρ(s)(diag π(·|s) − π(·|s)π(·|s)ᵀ) per state. It is
    also the Hessian, at θ = θ_old, of Σ_s d_ρ(s) KL(π_old(·|s) ‖ π_θ(·|s)) with d_ρ held fixed
    (the tests check both). It is singular: each block annihilates the all-ones vector (adding a
    constant to a state's logits changes nothing), and a state never visited has a zero block.

    Args:
        mdp: the MDP.
        logits: ``[S, A]`` θ, finite, the MDP's dtype and device.

    Returns:
        ``[S·A, S·A]``, rows and columns in the order of ``logits.reshape(-1)``.

    Raises:
        TypeError / ValueError: a non-MDP, or logits of the wrong shape, dtype or device.

    Example (one state visited always, uniform over two actions: ¼[[1, −1], [−1, 1]]):
        >>> one = TabularMDP(torch.ones(1, 2, 1), torch.zeros(1, 2), 0.5, torch.ones(1))
        >>> fisher_information(one, torch.zeros(1, 2))
        tensor([[ 0.2500, -0.2500],
                [-0.2500,  0.2500]])
    """
    fn = "fisher_information"
    mdp = checked_mdp(fn, mdp)
    logits = checked_table(fn, "logits", mdp, logits)
    return torch.block_diag(*_fisher_blocks(mdp, logits))


def natural_policy_gradient(mdp: TabularMDP, logits: Tensor) -> Tensor:
    """The natural policy gradient w = F⁺∇J (Kakade 2001), with F from
    :func:`fisher_information` and ∇J from :func:`~rlgrad.tabular.exact.policy_gradient`:

        w[s] = F_s⁺ ∇_{θ[s]} J     per state, since F is block diagonal
             = A^π(s, ·) / (1 − γ) − mean_a A^π(s, a) / (1 − γ)

    The pseudo-inverse picks, among all solutions of Fw = ∇J, the one orthogonal to F's null
    space: each row of w sums to 0, and the second line is that solution in closed form
    (Agarwal et al. 2021, lemma 5.1). Computed block by block with ``torch.linalg.pinv``, with
    no use of the closed form. As in a pseudo-inverse of the whole F, eigenvalues below
    ε·(S·A)·‖F‖ (ε the dtype's machine epsilon), and at least below √(smallest normal number),
    count as 0: a state with d^π(s) = 0, or one whose policy is deterministic to machine
    precision, gets no step in those directions (so long ascents with large steps stay finite).

    Args:
        mdp: the MDP.
        logits: ``[S, A]`` θ.

    Returns:
        ``[S, A]``, shaped like θ (ascend with θ + αw).

    Raises:
        TypeError / ValueError: as :func:`fisher_information`.

    Example (two_state at θ = 0: Q(left, ·) = (3.785, 3.465) around V(left) = 3.625 and
    Q(right, ·) = (3.285, 4.465) around V(right) = 3.875 give A(left, ·) = (0.16, −0.16) and
    A(right, ·) = (−0.59, 0.59), divided by 1 − γ = 0.1; the vanilla gradient of
    :func:`~rlgrad.tabular.exact.policy_gradient` carries an extra d(s)·π(a|s)):
        >>> from rlgrad.tabular.zoo import two_state
        >>> natural_policy_gradient(two_state(), torch.zeros(2, 2, dtype=torch.float64))
        tensor([[ 1.6000, -1.6000],
                [-5.9000,  5.9000]], dtype=torch.float64)
    """
    fn = "natural_policy_gradient"
    mdp = checked_mdp(fn, mdp)
    logits = checked_table(fn, "logits", mdp, logits)
    blocks = _fisher_blocks(mdp, logits)  # [S, A, A]
    # The cut-off torch.linalg.pinv would apply to the whole F: eigenvalues below ε·(S·A)·‖F‖
    # count as 0. A block's own relative cut-off would keep the eigenvalue of a policy that is
    # deterministic to 1e-300 and overflow on its inverse; this one gives such a state no step.
    # A floor of √(smallest normal number) (1.5e-154 in float64): a policy deterministic to
    # beyond that has blocks in the subnormal range, where the eigensolver returns NaN.
    info = torch.finfo(blocks.dtype)
    largest = torch.linalg.matrix_norm(blocks, ord=2).max()
    cutoff = torch.clamp(info.eps * logits.numel() * largest, min=info.tiny**0.5)
    inverses = torch.linalg.pinv(blocks, atol=cutoff, rtol=0.0, hermitian=True)
    return torch.einsum("sab,sb->sa", inverses, policy_gradient(mdp, logits))


def natural_gradient_ascent(mdp: TabularMDP, logits0: Tensor, lr: float, steps: int) -> Tensor:
    """The trajectory of exact natural policy gradient ascent, θ_{k+1} = θ_k + α F⁺∇J(θ_k).

    The counterpart of ``rlgrad.gradient_ascent(lambda t: objective(mdp, t), logits0, lr,
    steps)``, the vanilla ascent, and shaped like it; map
    :func:`~rlgrad.tabular.exact.objective` over the result for the returns J(θ_k).

    Args:
        mdp: the MDP.
        logits0: ``[S, A]`` the starting θ_0.
        lr: the step α > 0.
        steps: the number of updates K ≥ 0.

    Returns:
        ``[K + 1, S, A]``, starting with ``logits0``.

    Raises:
        TypeError / ValueError: as :func:`fisher_information`, or α ≤ 0, or K not a count.

    Example (two_state from θ = 0 with α = 0.1: one step adds 0.1·w of the example above):
        >>> from rlgrad.tabular.zoo import two_state
        >>> natural_gradient_ascent(two_state(), torch.zeros(2, 2, dtype=torch.float64), 0.1, 1)[1]
        tensor([[ 0.1600, -0.1600],
                [-0.5900,  0.5900]], dtype=torch.float64)
    """
    fn = "natural_gradient_ascent"
    mdp = checked_mdp(fn, mdp)
    logits0 = checked_table(fn, "logits0", mdp, logits0)
    lr = _checks.positive(fn, "lr", lr)
    steps = _checks.count(fn, "steps", steps)
    trajectory = torch.empty((steps + 1, *logits0.shape), dtype=logits0.dtype)
    trajectory = trajectory.to(logits0.device)
    trajectory[0] = logits0.detach()
    for k in range(steps):
        trajectory[k + 1] = trajectory[k] + lr * natural_policy_gradient(mdp, trajectory[k])
    return trajectory


def misled_logits(mdp: TabularMDP, logit: float = -2.0) -> Tensor:
    """θ ``[S, A]`` that avoids the optimal actions: ``logit`` on each state's optimal action
    (:func:`~rlgrad.tabular.exact.optimal_policy`), 0 elsewhere.

    The start where the two ascents differ: vanilla ascent's step on a logit is scaled by the
    probability π(a|s), so the good actions, already rare, barely move (a plateau), while the
    natural step A(s, a)/(1 − γ) does not depend on π.

    Example (chain: forward is optimal everywhere, so π(forward|s) = σ(−2) = 0.12):
        >>> from rlgrad.tabular.zoo import chain
        >>> misled_logits(chain(length=2))
        tensor([[ 0., -2.],
                [ 0., -2.]], dtype=torch.float64)
    """
    fn = "misled_logits"
    mdp = checked_mdp(fn, mdp)
    return logit * optimal_policy(mdp) + 0.0  # + 0.0: no −0 where the action is not optimal


def iterations_to_fraction(returns: Tensor, optimum: float, fraction: float = 0.99) -> int | None:
    """The first k at which an ascent has come ``fraction`` of the way from J(θ_0) to J*:

        min { k : J(θ_k) ≥ J(θ_0) + fraction·(J* − J(θ_0)) },   None if no k does

    Measured from the start rather than as a fraction of J*, so that it means the same when
    returns are negative.

    Example (from 0 towards 10, 99% is 9.9):
        >>> iterations_to_fraction(torch.tensor([0.0, 5.0, 9.0, 9.95, 10.0]), 10.0)
        3
    """
    fn = "iterations_to_fraction"
    returns = _checks.tensor(fn, "returns", returns)
    fraction = _checks.unit_interval(fn, "fraction", fraction)
    target = float(returns[0]) + fraction * (float(optimum) - float(returns[0]))
    reached = (returns >= target).nonzero()
    return int(reached[0]) if len(reached) else None


@dataclass(frozen=True)
class AscentRun:
    """One exact ascent of :func:`compare_ascents`."""

    method: str  # "vanilla" (θ + α∇J) or "natural" (θ + αF⁺∇J)
    lr: float  # α
    returns: Tensor  # [K + 1] J(θ_k)
    iterations: int | None  # to 99% of the way to J* (iterations_to_fraction); None: not reached


def compare_ascents(
    mdp: TabularMDP,
    logits0: Tensor,
    steps: int,
    vanilla_lrs: tuple[float, ...] = (3.0, 10.0, 30.0),
    natural_lrs: tuple[float, ...] = (0.1, 1.0),
    fraction: float = 0.99,
) -> tuple[float, list[AscentRun]]:
    """Exact vanilla and natural policy-gradient ascent from the same θ_0, each at several step
    sizes: J(θ_k) for k = 0 … ``steps`` and the iterations each needs to come ``fraction`` of
    the way to J*. Returns J* and the runs, vanilla first.

    Example (two_state from a start that avoids the right action, α = 1 for both):
        >>> from rlgrad.tabular.zoo import two_state
        >>> mdp = two_state()
        >>> optimum, runs = compare_ascents(mdp, misled_logits(mdp), steps=60,
        ...                                 vanilla_lrs=(1.0,), natural_lrs=(1.0,))
        >>> round(optimum, 6), [(run.method, run.iterations) for run in runs]
        (8.1, [('vanilla', 44), ('natural', 3)])
    """
    fn = "compare_ascents"
    mdp = checked_mdp(fn, mdp)
    logits0 = checked_table(fn, "logits0", mdp, logits0)
    steps = _checks.count(fn, "steps", steps)
    optimum = float(mdp.initial @ evaluate(mdp, optimal_policy(mdp))[0])

    def run(method: str, lr: float, path: Tensor) -> AscentRun:
        returns = torch.stack([objective(mdp, theta) for theta in path])
        return AscentRun(method, lr, returns, iterations_to_fraction(returns, optimum, fraction))

    runs = [
        run("vanilla", lr, gradient_ascent(lambda t: objective(mdp, t), logits0, lr, steps))
        for lr in vanilla_lrs
    ]
    runs += [
        run("natural", lr, natural_gradient_ascent(mdp, logits0, lr, steps)) for lr in natural_lrs
    ]
    return optimum, runs
