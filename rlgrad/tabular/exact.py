"""Exact policy evaluation and the policy gradient theorem on a :class:`TabularMDP`.

The policy is a softmax over logits θ ``[S, A]``, π(a|s) = exp θ[s, a] / Σ_b exp θ[s, b]. On a
finite MDP every quantity of the course's policy-gradient page is a small linear solve:

| Symbol   | Meaning                                     | Formula as coded                      |
|----------|---------------------------------------------|---------------------------------------|
| P_π      | state-to-state transitions ``[S, S]``       | P_π[s, s'] = Σ_a π(a|s) P(s'|s, a)    |
| r_π      | expected reward per state ``[S]``           | r_π[s] = Σ_a π(a|s) r(s, a)           |
| V^π      | state values ``[S]``                        | V = (I − γP_π)⁻¹ r_π                  |
| Q^π      | action values ``[S, A]``                    | Q = r + γ P V                         |
| d^π      | discounted visitation ``[S]`` (unnormalized) | dᵀ = μ₀ᵀ (I − γP_π)⁻¹ = Σ_t γ^t μ_tᵀ  |
| J(θ)     | expected discounted return                  | J = μ₀ᵀ V                             |
| ∇J(θ)    | the policy gradient theorem ``[S, A]``      | Σ_s d(s) Σ_a ∇π(a|s) Q(s, a)          |

d^π sums to 1/(1 − γ): it counts discounted visits, it is not a probability. The exact gradient
is what sampled estimators (:mod:`rlgrad.tabular.estimators`) are measured against.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rlgrad import _checks
from rlgrad.errors import BadInputError
from rlgrad.tabular.mdp import TabularMDP, check_probabilities


def checked_mdp(fn: str, mdp: object) -> TabularMDP:
    if not isinstance(mdp, TabularMDP):
        raise TypeError(f"{fn}(): 'mdp' must be a TabularMDP; got {type(mdp).__name__}")
    return mdp


def checked_table(fn: str, name: str, mdp: TabularMDP, x: object) -> Tensor:
    """A finite ``[S, A]`` tensor of the MDP's dtype and device."""
    x = _checks.tensor(fn, name, x)
    shape = (mdp.num_states, mdp.num_actions)
    if x.shape != shape:
        raise BadInputError(
            f"{fn}(): '{name}' must have shape [S, A] = {shape}; got {tuple(x.shape)}"
        )
    _checks.same_kind(fn, name, x, "mdp.transitions", mdp.transitions)
    return _checks.finite(fn, name, x)


def _policy_table(fn: str, mdp: TabularMDP, probs: object) -> Tensor:
    probs = checked_table(fn, "probs", mdp, probs)
    check_probabilities(fn, "probs", probs.detach(), "actions (each row)")
    return probs


def _state_values(fn: str, name: str, mdp: TabularMDP, values: object) -> Tensor:
    values = _checks.tensor(fn, name, values)
    if values.shape != (mdp.num_states,):
        raise BadInputError(
            f"{fn}(): '{name}' must have shape [S] = ({mdp.num_states},); got {tuple(values.shape)}"
        )
    _checks.same_kind(fn, name, values, "mdp.transitions", mdp.transitions)
    return _checks.finite(fn, name, values)


def _on_policy(mdp: TabularMDP, probs: Tensor) -> tuple[Tensor, Tensor]:
    """P_π ``[S, S]`` and r_π ``[S]``."""
    state_transitions = torch.einsum("sa,sat->st", probs, mdp.transitions)
    state_rewards = (probs * mdp.rewards).sum(dim=-1)
    return state_transitions, state_rewards


def _identity(mdp: TabularMDP) -> Tensor:
    return torch.eye(mdp.num_states, dtype=mdp.dtype, device=mdp.transitions.device)


def policy(logits: Tensor) -> Tensor:
    """The softmax policy π(a|s) = exp θ[s, a] / Σ_b exp θ[s, b].

    Args:
        logits: ``[S, A]`` θ, finite.

    Returns:
        ``[S, A]`` probabilities, each row summing to 1; differentiable in ``logits``.

    Example (the two-state example's π(right|s) = σ(θ[s, 1] − θ[s, 0]) = σ(1) = 0.7311):
        >>> policy(torch.tensor([[0.0, 1.0], [0.0, 0.0]], dtype=torch.float64))
        tensor([[0.2689, 0.7311],
                [0.5000, 0.5000]], dtype=torch.float64)
    """
    logits = _checks.floats("policy", "logits", logits)
    if logits.dim() != 2 or logits.shape[1] == 0:
        raise BadInputError(
            f"policy(): 'logits' must have shape [S, A] with A >= 1; got {tuple(logits.shape)}"
        )
    return torch.softmax(logits, dim=-1)


def evaluate(mdp: TabularMDP, probs: Tensor) -> tuple[Tensor, Tensor]:
    """V^π and Q^π by solving the Bellman equations exactly:

        V = (I − γP_π)⁻¹ r_π,    Q(s, a) = r(s, a) + γ Σ_s' P(s'|s, a) V(s')

    Args:
        mdp: the MDP.
        probs: ``[S, A]`` π(a|s), rows summing to 1 (any policy, not only softmax).

    Returns:
        ``(V [S], Q [S, A])``, differentiable in ``probs``; V(s) = Σ_a π(a|s) Q(s, a).

    Raises:
        TypeError / ValueError: a non-MDP, or ``probs`` of the wrong shape, dtype or device, or
        not a distribution per row.

    Example (two_state, always right: V(right) = 1 + 0.9(0.9·9.1 + 0.1·8.1) = 9.1 and
    V(left) = 0 + 0.9(0.9·9.1 + 0.1·8.1) = 8.1):
        >>> from rlgrad.tabular.zoo import two_state
        >>> values, q_values = evaluate(two_state(), torch.tensor([[0.0, 1.0], [0.0, 1.0]],
        ...                                                       dtype=torch.float64))
        >>> values
        tensor([8.1000, 9.1000], dtype=torch.float64)
    """
    fn = "evaluate"
    mdp = checked_mdp(fn, mdp)
    probs = _policy_table(fn, mdp, probs)
    state_transitions, state_rewards = _on_policy(mdp, probs)
    values = torch.linalg.solve(_identity(mdp) - mdp.gamma * state_transitions, state_rewards)
    q_values = mdp.rewards + mdp.gamma * mdp.transitions @ values
    return values, q_values


def state_visitation(mdp: TabularMDP, probs: Tensor, horizon: int | None = None) -> Tensor:
    """The unnormalized discounted visitation d^π(s) = Σ_t γ^t Pr(s_t = s), with s_0 ~ μ₀:

        dᵀ = μ₀ᵀ (I − γP_π)⁻¹                       (horizon None: t = 0, 1, …)
        dᵀ = μ₀ᵀ (I − (γP_π)^H) (I − γP_π)⁻¹         (horizon H: t = 0 … H − 1)

    Σ_s d(s) = 1/(1 − γ) (resp. (1 − γ^H)/(1 − γ)). The truncated form is the visitation of
    episodes cut at H steps, which is what sampled estimators see.

    Args:
        mdp: the MDP.
        probs: ``[S, A]`` π(a|s).
        horizon: None for the infinite sum, or H ≥ 0.

    Returns:
        ``[S]``, differentiable in ``probs``.

    Example (one state: d = 1/(1 − 0.5) = 2, or 1 + 0.5 = 1.5 for H = 2):
        >>> one = TabularMDP(torch.ones(1, 1, 1), torch.ones(1, 1), 0.5, torch.ones(1))
        >>> state_visitation(one, torch.ones(1, 1)), state_visitation(one, torch.ones(1, 1), 2)
        (tensor([2.]), tensor([1.5000]))
    """
    fn = "state_visitation"
    mdp = checked_mdp(fn, mdp)
    probs = _policy_table(fn, mdp, probs)
    state_transitions, _ = _on_policy(mdp, probs)
    discounted = mdp.gamma * state_transitions
    identity = _identity(mdp)
    # Solve (I − γP_π)ᵀ d = μ₀ rather than forming the inverse.
    visits = torch.linalg.solve((identity - discounted).T, mdp.initial)
    if horizon is None:
        return visits
    horizon = _checks.count(fn, "horizon", horizon)
    return _truncate(visits, mdp.initial, discounted, identity, horizon)


def _truncate(
    visits: Tensor, initial: Tensor, discounted: Tensor, identity: Tensor, horizon: int
) -> Tensor:
    # μ₀ᵀ (I − (γP_π)^H)(I − γP_π)⁻¹ = dᵀ − μ₀ᵀ(γP_π)^H (I − γP_π)⁻¹, and the second term is the
    # visitation started from the distribution of s_H, discounted by γ^H.
    tail_start = initial @ torch.linalg.matrix_power(discounted, horizon)
    return visits - torch.linalg.solve((identity - discounted).T, tail_start)


def objective(mdp: TabularMDP, logits: Tensor) -> Tensor:
    """The expected discounted return of the softmax policy, J(θ) = μ₀ᵀ V^{π_θ}.

    Differentiable: autograd through the linear solve gives the same ∇J as
    :func:`policy_gradient` (the tests check both against finite differences).

    Args:
        mdp: the MDP.
        logits: ``[S, A]`` θ.

    Returns:
        A 0-dim tensor.

    Example (two_state under the uniform policy θ = 0: r_π = [0.25, 0.5] and P_π = ½
    everywhere, so the mean value is 0.375/(1 − 0.9) = 3.75 and J = V(left) = 0.25 + 0.9·3.75):
        >>> from rlgrad.tabular.zoo import two_state
        >>> objective(two_state(), torch.zeros(2, 2, dtype=torch.float64))
        tensor(3.6250, dtype=torch.float64)
    """
    fn = "objective"
    mdp = checked_mdp(fn, mdp)
    logits = checked_table(fn, "logits", mdp, logits)
    values, _ = evaluate(mdp, policy(logits))
    return mdp.initial @ values


def _softmax_theorem(probs: Tensor, visitation: Tensor, action_values: Tensor) -> Tensor:
    """Σ_s d(s) Σ_a ∇_θ π(a|s) X(s, a) for softmax logits θ ``[S, A]``.

    ∂π(a|s)/∂θ[s, b] = π(a|s)(1[a = b] − π(b|s)) (and 0 for the logits of another state), so
    the entry [s, b] is d(s) Σ_a X(s, a) π(a|s)(1[a = b] − π(b|s)) = d(s) π(b|s)(X(s, b) − Σ_a
    π(a|s) X(s, a)).
    """
    jacobian = torch.diag_embed(probs) - probs.unsqueeze(-1) * probs.unsqueeze(-2)  # [S, a, b]
    return visitation.unsqueeze(-1) * torch.einsum("sa,sab->sb", action_values, jacobian)


def policy_gradient(mdp: TabularMDP, logits: Tensor, horizon: int | None = None) -> Tensor:
    """∇J(θ) by the policy gradient theorem (Sutton et al. 2000), for softmax logits θ:

        ∇J = Σ_s d^π(s) Σ_a ∇π(a|s) Q^π(s, a),    i.e.  ∂J/∂θ[s, b] = d^π(s) π(b|s) A^π(s, b)

    with ∇π from the softmax Jacobian and A = Q − V. Nothing here uses autograd.

    With ``horizon`` H, d^π is replaced by the visitation of the first H steps (see
    :func:`state_visitation`): the expectation of a sampled estimator Σ_{t<H} γ^t Q(s_t, a_t)
    ∇log π(a_t|s_t) on episodes cut at H steps. The difference to the infinite-horizon gradient
    is the truncation bias, of order γ^H.

    Args:
        mdp: the MDP.
        logits: ``[S, A]`` θ.
        horizon: None, or H ≥ 0.

    Returns:
        ``[S, A]``; each row sums to 0 (adding a constant to a row of θ leaves π unchanged).

    Example (two_state at θ = 0: in the left state Q(left, ·) = [3.785, 3.465], so staying left
    looks better and the gradient points left, d(left)·½·(3.465 − 3.625) = 5.5·½·(−0.16) = −0.44
    for θ[left, right]; in the right state it points right):
        >>> from rlgrad.tabular.zoo import two_state
        >>> policy_gradient(two_state(), torch.zeros(2, 2, dtype=torch.float64))
        tensor([[ 0.4400, -0.4400],
                [-1.3275,  1.3275]], dtype=torch.float64)
    """
    fn = "policy_gradient"
    mdp = checked_mdp(fn, mdp)
    logits = checked_table(fn, "logits", mdp, logits)
    probs = policy(logits)
    _, q_values = evaluate(mdp, probs)
    visitation = state_visitation(mdp, probs, horizon)
    return _softmax_theorem(probs, visitation, q_values)


def expected_gae_gradient(
    mdp: TabularMDP, logits: Tensor, lam: float, values: Tensor | None = None
) -> Tensor:
    """The exact expectation of the GAE(λ) policy gradient Σ_t γ^t Â_t ∇log π(a_t|s_t) when the
    critic V̂ is wrong by e = V̂ − V^π (infinite horizon):

        E[Â_t | s_t = s, a_t = a] = Q(s, a) − V̂(s) + γ(1 − λ) P(·|s, a)ᵀ (I − γλP_π)⁻¹ e
        E[ĝ] = Σ_s d^π(s) Σ_a ∇π(a|s) E[Â | s, a]

    Derivation: Â_t = Σ_l (γλ)^l δ̂_{t+l} with δ̂ = δ + γe(s') − e(s); the exact-V TD errors δ
    average to A(s, a) at l = 0 and to 0 afterwards, and the e terms telescope to the expression
    above. −V̂(s) is a state baseline and drops out, so the bias is
    Σ_s d(s) Σ_a ∇π(a|s) γ(1 − λ) P(·|s, a)ᵀ(I − γλP_π)⁻¹ e: zero for an exact critic (any λ)
    and for λ = 1 (any critic), linear in the critic error otherwise. This is the course's "critic
    error propagates into the actor" as a formula.

    Args:
        mdp: the MDP.
        logits: ``[S, A]`` θ.
        lam: λ ∈ [0, 1].
        values: ``[S]`` the critic V̂; None for the exact V^π.

    Returns:
        ``[S, A]``; equal to :func:`policy_gradient` when ``values`` is exact or λ = 1.

    Example (a critic that is 1 too high everywhere: with λ = 0 the bias is γ·∇J of a reward
    of 1 per step, which is 0 because that J does not depend on θ):
        >>> from rlgrad.tabular.zoo import two_state
        >>> mdp, theta = two_state(), torch.zeros(2, 2, dtype=torch.float64)
        >>> critic = evaluate(mdp, policy(theta))[0] + 1
        >>> torch.allclose(expected_gae_gradient(mdp, theta, 0.0, critic),
        ...                policy_gradient(mdp, theta))
        True
    """
    fn = "expected_gae_gradient"
    mdp = checked_mdp(fn, mdp)
    logits = checked_table(fn, "logits", mdp, logits)
    lam = _checks.unit_interval(fn, "lam", lam)
    probs = policy(logits)
    exact_values, q_values = evaluate(mdp, probs)
    critic = exact_values if values is None else _state_values(fn, "values", mdp, values)
    errors = critic - exact_values
    state_transitions, _ = _on_policy(mdp, probs)
    traced = torch.linalg.solve(_identity(mdp) - mdp.gamma * lam * state_transitions, errors)
    expected = q_values - critic.unsqueeze(-1) + mdp.gamma * (1 - lam) * mdp.transitions @ traced
    return _softmax_theorem(probs, state_visitation(mdp, probs), expected)


def optimal_policy(mdp: TabularMDP, max_iterations: int = 1000) -> Tensor:
    """A deterministic optimal policy π* by policy iteration (Howard 1960).

    Evaluate π exactly, switch each state to argmax_a Q^π(s, a) when that beats the current
    action by more than 1e-12, repeat until no state changes (finitely many steps).

    Args:
        mdp: the MDP.
        max_iterations: a cap on the improvement steps.

    Returns:
        ``[S, A]`` one-hot probabilities; :func:`evaluate` gives V* and Q*.

    Example (two_state: right in both states):
        >>> from rlgrad.tabular.zoo import two_state
        >>> optimal_policy(two_state())
        tensor([[0., 1.],
                [0., 1.]], dtype=torch.float64)
    """
    fn = "optimal_policy"
    mdp = checked_mdp(fn, mdp)
    max_iterations = _checks.count(fn, "max_iterations", max_iterations)
    actions = torch.zeros(mdp.num_states, dtype=torch.long, device=mdp.transitions.device)
    eye = torch.eye(mdp.num_actions, dtype=mdp.dtype, device=mdp.transitions.device)
    for _ in range(max_iterations):
        _, q_values = evaluate(mdp, eye[actions])
        current = q_values.gather(1, actions.unsqueeze(1)).squeeze(1)
        best, greedy = q_values.max(dim=1)
        improve = best > current + 1e-12
        if not bool(improve.any()):
            return eye[actions]
        actions = torch.where(improve, greedy, actions)
    raise BadInputError(f"{fn}(): policy iteration did not settle in {max_iterations} iterations")
