"""Exact ground truth for maximum-entropy RL: soft values, the soft-optimal policy, and the soft
policy gradient theorem, on a :class:`TabularMDP`.

The maximum-entropy objective (the one SAC optimizes, Haarnoja et al. 2018) adds α times the
policy's entropy to the reward at every state visited: J_α(π) = E[Σ_t γ^t (r_t + αH(π(·|s_t)))].
The temperature α ≥ 0 prices entropy in units of reward; α = 0 is the ordinary objective of
:mod:`rlgrad.tabular.exact`. As there, the policy is a softmax over logits θ ``[S, A]`` and every
quantity is a small linear solve (or, for the optimum, a contraction):

| Symbol  | Meaning                          | Formula as coded                                  |
|---------|----------------------------------|---------------------------------------------------|
| H_π     | entropy per state ``[S]``        | H_π[s] = −Σ_a π(a|s) log π(a|s)  (0 log 0 = 0)    |
| V_α^π   | soft state values ``[S]``        | V = (I − γP_π)⁻¹ (r_π + αH_π)                     |
| Q_α^π   | soft action values ``[S, A]``    | Q = r + γ P V                                     |
| π*_α    | soft-optimal policy ``[S, A]``   | π*(a|s) = exp((Q*(s, a) − V*(s))/α)               |
| V*_α    | its values ``[S]``               | V*(s) = α log Σ_a exp(Q*(s, a)/α)                 |
| J_α(θ)  | the max-entropy objective        | J_α = μ₀ᵀ V_α^{π_θ}                               |
| ∇J_α(θ) | soft policy gradient ``[S, A]``  | Σ_s d(s) Σ_a ∇π(a|s) (Q_α(s, a) − α log π(a|s))   |

The entropy at s is counted in V(s), not in Q(s, a): Q(s, a) is "take a, then follow π", and
V(s) = Σ_a π(a|s)(Q(s, a) − α log π(a|s)). This is the convention of SAC's soft critic target
y = r + γ(Q(s′, a′) − α log π(a′|s′)) (:func:`rlgrad.soft_q_targets`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from rlgrad import _checks
from rlgrad.errors import BadInputError
from rlgrad.tabular.exact import checked_mdp, checked_table, policy, state_visitation
from rlgrad.tabular.mdp import TabularMDP, check_probabilities


def _state_entropies(probs: Tensor) -> Tensor:
    """H_π[s] = −Σ_a π(a|s) log π(a|s) ``[S]``, with 0 log 0 = 0.

    A zero probability takes log 1 = 0 in place of log 0, so its term is 0·0 = 0 and its gradient
    log 1 + 0 = 0 is finite (log 0 would send 0·(−inf) = NaN back through autograd).
    """
    safe_log_probs = torch.log(torch.where(probs > 0, probs, torch.ones_like(probs)))
    return -(probs * safe_log_probs).sum(dim=-1)


def soft_evaluate(mdp: TabularMDP, probs: Tensor, alpha: float) -> tuple[Tensor, Tensor]:
    """The soft values V_α^π and Q_α^π by solving the soft Bellman equations exactly:

        V = (I − γP_π)⁻¹ (r_π + αH_π),    Q(s, a) = r(s, a) + γ Σ_s' P(s'|s, a) V(s')

    i.e. V(s) = Σ_a π(a|s)[Q(s, a) − α log π(a|s)]: the entropy bonus αH_π[s] is earned once
    per (discounted) visit of s. At α = 0 these are :func:`rlgrad.tabular.evaluate`'s V and Q.

    Args:
        mdp: the MDP.
        probs: ``[S, A]`` π(a|s), rows summing to 1 (any policy; zero probabilities are fine).
        alpha: the temperature α ≥ 0.

    Returns:
        ``(V [S], Q [S, A])``, differentiable in ``probs``.

    Raises:
        TypeError / ValueError: a non-MDP; ``probs`` of the wrong shape, dtype or device, or not a
        distribution per row; α negative or not finite.

    Example (one state, actions paying 1 and 0, γ = 0.5, uniform π, α = 1: every step earns
    r̄ + αH = 0.5 + log 2, so V = (0.5 + 0.6931)/(1 − 0.5) = 2.3863 and Q = r + 0.5·V):
        >>> f64 = torch.float64
        >>> moves, rewards = torch.ones(1, 2, 1, dtype=f64), torch.tensor([[1.0, 0.0]], dtype=f64)
        >>> bandit = TabularMDP(moves, rewards, 0.5, torch.ones(1, dtype=f64))
        >>> values, q_values = soft_evaluate(bandit, torch.full((1, 2), 0.5, dtype=f64), alpha=1.0)
        >>> values
        tensor([2.3863], dtype=torch.float64)
        >>> q_values
        tensor([[2.1931, 1.1931]], dtype=torch.float64)
    """
    fn = "soft_evaluate"
    mdp = checked_mdp(fn, mdp)
    probs = checked_table(fn, "probs", mdp, probs)
    check_probabilities(fn, "probs", probs.detach(), "actions (each row)")
    alpha = _checks.non_negative(fn, "alpha", alpha)
    state_transitions = torch.einsum("sa,sat->st", probs, mdp.transitions)  # P_π [S, S]
    bonus = (probs * mdp.rewards).sum(dim=-1) + alpha * _state_entropies(probs)  # r_π + αH_π [S]
    identity = torch.eye(mdp.num_states, dtype=mdp.dtype, device=mdp.transitions.device)
    values = torch.linalg.solve(identity - mdp.gamma * state_transitions, bonus)
    q_values = mdp.rewards + mdp.gamma * mdp.transitions @ values
    return values, q_values


def soft_optimal_policy(
    mdp: TabularMDP, alpha: float, tolerance: float = 1e-10, max_iterations: int = 100_000
) -> tuple[Tensor, Tensor]:
    """The soft-optimal policy π*_α and its Q*_α by soft value iteration (Ziebart 2010;
    Haarnoja et al. 2017, eq. 2):

        Q ← r + γ P V,    V(s) ← α log Σ_a exp(Q(s, a)/α),    π*(a|s) = softmax_a(Q*(s, a)/α)

    starting from V = 0. The backup is a γ-contraction in the sup norm, so after a step that
    moved V by δ the distance to the fixed point is at most γδ/(1 − γ); iteration stops once that
    bound is below ``tolerance`` · max(1, ‖V‖∞) (a relative tolerance: with α = 1000, V is in the
    thousands). As α → 0 the log-sum-exp becomes a max and π* the greedy optimal policy of
    :func:`rlgrad.tabular.optimal_policy`; as α → ∞ π* becomes uniform.

    Args:
        mdp: the MDP (float64: the default tolerance is below float32's rounding).
        alpha: the temperature α > 0; for α = 0 use :func:`rlgrad.tabular.optimal_policy`.
        tolerance: the (relative) bound on the error of V* at which to stop, > 0.
        max_iterations: a cap on the backups.

    Returns:
        ``(probs [S, A], Q* [S, A])``; V*(s) = α logsumexp_a(Q*(s, a)/α), and
        :func:`soft_evaluate` of ``probs`` gives back Q*.

    Raises:
        ValueError: α ≤ 0, or no convergence within ``max_iterations`` backups.

    Example (the one-state bandit of :func:`soft_evaluate` with α = 1: π* = softmax(r) =
    [σ(1), σ(−1)], and V* = γV* + log(e + 1) gives V* = 2·1.3133 = 2.6265, Q* = r + 0.5·V*):
        >>> f64 = torch.float64
        >>> moves, rewards = torch.ones(1, 2, 1, dtype=f64), torch.tensor([[1.0, 0.0]], dtype=f64)
        >>> bandit = TabularMDP(moves, rewards, 0.5, torch.ones(1, dtype=f64))
        >>> probs, q_values = soft_optimal_policy(bandit, alpha=1.0)
        >>> probs
        tensor([[0.7311, 0.2689]], dtype=torch.float64)
        >>> q_values
        tensor([[2.3133, 1.3133]], dtype=torch.float64)
    """
    fn = "soft_optimal_policy"
    mdp = checked_mdp(fn, mdp)
    alpha = _checks.number(fn, "alpha", alpha)
    if alpha <= 0:
        raise BadInputError(
            f"{fn}(): 'alpha' must be > 0 (for α = 0, the unregularized optimum, use "
            f"rlgrad.tabular.optimal_policy); got {alpha}"
        )
    tolerance = _checks.positive(fn, "tolerance", tolerance)
    max_iterations = _checks.count(fn, "max_iterations", max_iterations)
    values = torch.zeros(mdp.num_states, dtype=mdp.dtype, device=mdp.transitions.device)
    bound = float("inf")
    for _ in range(max_iterations):
        q_values = mdp.rewards + mdp.gamma * mdp.transitions @ values  # [S, A]
        new_values = alpha * torch.logsumexp(q_values / alpha, dim=-1)  # [S]
        change = float((new_values - values).abs().max())
        values = new_values
        bound = mdp.gamma * change / (1 - mdp.gamma)
        if bound <= tolerance * max(1.0, float(values.abs().max())):
            q_values = mdp.rewards + mdp.gamma * mdp.transitions @ values
            return torch.softmax(q_values / alpha, dim=-1), q_values
    raise BadInputError(
        f"{fn}(): soft value iteration did not converge in {max_iterations} iterations (error "
        f"bound {bound:.3g} > tolerance {tolerance:g}); raise 'max_iterations' or 'tolerance'"
    )


def soft_objective(mdp: TabularMDP, logits: Tensor, alpha: float) -> Tensor:
    """The max-entropy objective of the softmax policy, J_α(θ) = μ₀ᵀ V_α^{π_θ}.

    Differentiable: autograd through the linear solve gives the same gradient as
    :func:`soft_policy_gradient`. At α = 0 it is :func:`rlgrad.tabular.objective`.

    Args:
        mdp: the MDP.
        logits: ``[S, A]`` θ.
        alpha: the temperature α ≥ 0.

    Returns:
        A 0-dim tensor.

    Example (two_state, uniform policy θ = 0: H = log 2 in every state, so J_α is the plain
    J = 3.625 plus α·log 2/(1 − γ) = 1·0.6931/0.1 = 6.9315):
        >>> from rlgrad.tabular.zoo import two_state
        >>> soft_objective(two_state(), torch.zeros(2, 2, dtype=torch.float64), alpha=1.0)
        tensor(10.5565, dtype=torch.float64)
    """
    fn = "soft_objective"
    mdp = checked_mdp(fn, mdp)
    logits = checked_table(fn, "logits", mdp, logits)
    alpha = _checks.non_negative(fn, "alpha", alpha)
    values, _ = soft_evaluate(mdp, policy(logits), alpha)
    return mdp.initial @ values


def soft_policy_gradient(mdp: TabularMDP, logits: Tensor, alpha: float) -> Tensor:
    """∇J_α(θ) by the soft policy gradient theorem, for softmax logits θ:

        ∇J_α = Σ_s d^π(s) Σ_a ∇π(a|s) [Q_α(s, a) − α log π(a|s)],
        i.e.  ∂J_α/∂θ[s, b] = d^π(s) π(b|s) [Q_α(s, b) − α log π(b|s) − V_α(s)]

    with d^π the unnormalized discounted visitation (:func:`rlgrad.tabular.state_visitation`).
    Nothing here uses autograd.

    Derivation: V(s) = Σ_a π(a|s)Q(s, a) + αH(s) and Q(s, a) = r(s, a) + γ P(·|s, a)ᵀV, so
    ∇V(s) = Σ_a ∇π(a|s) Q(s, a) + α∇H(s) + γ Σ_a π(a|s) P(·|s, a)ᵀ∇V. Unrolling the last term
    visits every s with weight d^π(s), as in the ordinary theorem, with the extra α∇H(s). By the
    course's exercise ∂H/∂π(a) = −(log π(a) + 1), so α∇H(s) = −α Σ_a ∇π(a|s)(log π(a|s) + 1); the +1
    part is −α∇Σ_a π(a|s) = 0, leaving −α Σ_a ∇π(a|s) log π(a|s). For the softmax
    ∂π(a|s)/∂θ[s, b] = π(a|s)(1[a = b] − π(b|s)), and Σ_a π(a|s)[Q − α log π](s, a) = V(s), which
    gives the second line: the soft advantage Q − α log π − V weighted by d(s)π(b|s).

    Args:
        mdp: the MDP.
        logits: ``[S, A]`` θ.
        alpha: the temperature α ≥ 0 (α = 0 gives :func:`rlgrad.tabular.policy_gradient`).

    Returns:
        ``[S, A]``; each row sums to 0. It vanishes at θ = Q*_α/α, the soft-optimal policy.

    Example (two_state at θ = 0: the uniform policy has the maximum entropy, so −α log π = α log 2
    and the entropy shifts every soft Q of a state by the same constant; the gradient is the
    plain one of :func:`rlgrad.tabular.policy_gradient` for any α):
        >>> from rlgrad.tabular.zoo import two_state
        >>> soft_policy_gradient(two_state(), torch.zeros(2, 2, dtype=torch.float64), alpha=1.0)
        tensor([[ 0.4400, -0.4400],
                [-1.3275,  1.3275]], dtype=torch.float64)
    """
    fn = "soft_policy_gradient"
    mdp = checked_mdp(fn, mdp)
    logits = checked_table(fn, "logits", mdp, logits)
    alpha = _checks.non_negative(fn, "alpha", alpha)
    probs = policy(logits)
    values, q_values = soft_evaluate(mdp, probs, alpha)
    log_probs = torch.log_softmax(logits, dim=-1)  # exact log π, finite even where π underflows
    advantages = q_values - alpha * log_probs - values.unsqueeze(-1)  # the soft advantage [S, A]
    return state_visitation(mdp, probs).unsqueeze(-1) * probs * advantages
