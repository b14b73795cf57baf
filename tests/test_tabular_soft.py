"""Maximum-entropy ground truth: the soft Bellman equations, soft value iteration and its limits
in α, and the soft policy gradient theorem against autograd and finite differences."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from conftest import random_logits
from hypothesis import given, settings
from hypothesis import strategies as st
from test_tabular import MDPS as PLAIN_MDPS

import rlgrad
from rlgrad.tabular import (
    TabularMDP,
    evaluate,
    objective,
    optimal_policy,
    policy,
    policy_gradient,
    random_mdp,
    soft_evaluate,
    soft_objective,
    soft_optimal_policy,
    soft_policy_gradient,
    state_visitation,
    two_state,
)

F64 = torch.float64
TIGHT = 1e-13  # soft value iteration's relative tolerance where a test compares to ~1e-10

MDPS = PLAIN_MDPS  # the MDPs (and random logits) of the plain tests, test_tabular.py


def bandit(rewards: list[float], gamma: float) -> TabularMDP:
    """One state, len(rewards) actions, every action returning to the state."""
    count = len(rewards)
    return TabularMDP(
        torch.ones(1, count, 1, dtype=F64),
        torch.tensor([rewards], dtype=F64),
        gamma,
        torch.ones(1, dtype=F64),
    )


# --- soft evaluation ---------------------------------------------------------------------------


def test_hand_checked_values():
    # two_state, uniform π, α = 0.5. The plain values are V(left) = 3.625, V(right) = 3.875
    # (r_π = [0.25, 0.5], P_π = ½ everywhere, so the mean value is 0.375/0.1 = 3.75 and
    # V(s) = r_π(s) + 0.9·3.75). H = log 2 in both states adds α log 2/(1 − γ) = 0.5·0.693147/0.1
    # = 3.465736 to each: V_soft = [7.090736, 7.340736].
    values, _ = soft_evaluate(two_state(), torch.full((2, 2), 0.5, dtype=F64), alpha=0.5)
    torch.testing.assert_close(
        values, torch.tensor([7.090736, 7.340736], dtype=F64), atol=1e-6, rtol=0
    )
    # One state, rewards [1, 2, 3], γ = 0.8, α = 0.5, uniform π: each step earns r̄ + αH =
    # 2 + 0.5·log 3 = 2.549306, so V = 2.549306/0.2 = 12.746531.
    one = bandit([1.0, 2.0, 3.0], gamma=0.8)
    values, q_values = soft_evaluate(one, torch.full((1, 3), 1 / 3, dtype=F64), alpha=0.5)
    assert values.item() == pytest.approx(12.746531, abs=1e-6)
    assert values.item() == pytest.approx((2 + 0.5 * math.log(3)) / 0.2, abs=1e-12)
    # Q(a) = r(a) + γV: the entropy of this step is in V, not in Q.
    torch.testing.assert_close(q_values[0], torch.tensor([1.0, 2.0, 3.0], dtype=F64) + 0.8 * values)
    # Soft-optimal: V* = γV* + α log Σ_a exp(r(a)/α), so V* = 0.5·logsumexp([2, 4, 6])/0.2 and
    # logsumexp([2, 4, 6]) = 6 + log(1 + e⁻² + e⁻⁴) = 6.142932: V* = 15.357330, π* ∝ [e², e⁴, e⁶].
    probs, q_star = soft_optimal_policy(one, alpha=0.5, tolerance=TIGHT)
    v_star = 0.5 * torch.logsumexp(q_star / 0.5, dim=-1)
    assert v_star.item() == pytest.approx(15.357330, abs=1e-6)
    weights = torch.tensor([math.exp(2), math.exp(4), math.exp(6)], dtype=F64)
    torch.testing.assert_close(probs[0], weights / weights.sum(), atol=1e-12, rtol=0)


@pytest.mark.parametrize("name", MDPS)
def test_alpha_zero_is_the_plain_ground_truth(name):
    mdp = MDPS[name]
    theta = random_logits(mdp, 3)
    probs = policy(theta)
    for soft, plain in zip(soft_evaluate(mdp, probs, 0.0), evaluate(mdp, probs), strict=True):
        torch.testing.assert_close(soft, plain, atol=1e-12, rtol=0)
    assert soft_objective(mdp, theta, 0.0).item() == pytest.approx(objective(mdp, theta).item())
    torch.testing.assert_close(
        soft_policy_gradient(mdp, theta, 0.0), policy_gradient(mdp, theta), atol=1e-12, rtol=0
    )


@pytest.mark.parametrize("name", MDPS)
def test_soft_values_satisfy_the_soft_bellman_equations(name):
    mdp, alpha = MDPS[name], 0.7
    theta = random_logits(mdp, 4)
    probs, log_probs = policy(theta), torch.log_softmax(theta, dim=-1)
    values, q_values = soft_evaluate(mdp, probs, alpha)
    # V(s) = Σ_a π(a|s)[Q(s, a) − α log π(a|s)], Q(s, a) = r(s, a) + γ Σ_s' P(s'|s, a) V(s').
    torch.testing.assert_close(
        (probs * (q_values - alpha * log_probs)).sum(dim=1), values, atol=1e-10, rtol=0
    )
    torch.testing.assert_close(
        q_values, mdp.rewards + mdp.gamma * torch.einsum("sat,t->sa", mdp.transitions, values)
    )
    # The soft objective is the plain one plus α times the discounted entropy Σ_s d(s)H(s).
    entropies = rlgrad.categorical_entropy(theta)
    expected = objective(mdp, theta) + alpha * state_visitation(mdp, probs) @ entropies
    assert soft_objective(mdp, theta, alpha).item() == pytest.approx(expected.item(), abs=1e-10)


def test_zero_probabilities_count_zero_entropy_with_a_finite_gradient():
    mdp = two_state()
    probs = torch.tensor([[1.0, 0.0], [0.5, 0.5]], dtype=F64, requires_grad=True)
    values, _ = soft_evaluate(mdp, probs, alpha=1.0)
    # H = [0, log 2]: the same values as the plain ones with a bonus of log 2 in the right state.
    plain = evaluate(mdp, probs.detach())[0]
    bonus = torch.linalg.solve(
        torch.eye(2, dtype=F64) - 0.9 * torch.einsum("sa,sat->st", probs.detach(), mdp.transitions),
        torch.tensor([0.0, math.log(2)], dtype=F64),
    )
    torch.testing.assert_close(values.detach(), plain + bonus)
    (grad,) = torch.autograd.grad(values.sum(), probs)
    assert bool(torch.isfinite(grad).all())


# --- the soft-optimal policy ---------------------------------------------------------------------


@pytest.mark.parametrize("name", MDPS)
@pytest.mark.parametrize("alpha", [0.05, 1.0, 20.0])
def test_soft_optimum_is_the_soft_bellman_fixed_point(name, alpha):
    mdp = MDPS[name]
    probs, q_star = soft_optimal_policy(mdp, alpha, tolerance=TIGHT)
    values, q_values = soft_evaluate(mdp, probs, alpha)
    scale = max(1.0, float(q_star.abs().max()))
    torch.testing.assert_close(q_values, q_star, atol=1e-10 * scale, rtol=0)
    v_star = alpha * torch.logsumexp(q_star / alpha, dim=-1)
    torch.testing.assert_close(values, v_star, atol=1e-10 * scale, rtol=0)
    # π*(a|s) = exp((Q*(s, a) − V*(s))/α).
    torch.testing.assert_close(probs, torch.exp((q_star - v_star.unsqueeze(1)) / alpha))


@pytest.mark.parametrize("name", ["two_state", "chain", "random0", "random1"])
def test_small_alpha_approaches_the_greedy_optimum(name):
    mdp = MDPS[name]
    greedy = optimal_policy(mdp)  # one-hot [S, A]
    v_greedy = evaluate(mdp, greedy)[0]
    gaps = []
    for alpha in (0.1, 0.01, 1e-3):
        probs, q_star = soft_optimal_policy(mdp, alpha, tolerance=TIGHT)
        v_star = alpha * torch.logsumexp(q_star / alpha, dim=-1)
        gap = v_star - v_greedy
        # 0 ≤ V*_α − V* ≤ α log A/(1 − γ): the entropy adds at most log A per step.
        assert float(gap.min()) > -1e-8
        assert float(gap.max()) <= alpha * math.log(mdp.num_actions) / (1 - mdp.gamma) + 1e-8
        gaps.append(float(gap.max()))
        if alpha == 1e-3:
            assert float((probs * greedy).sum(dim=1).min()) >= 0.99
    # V*_α grows with α (more entropy to earn); where the actions' Q* are far apart the gap is
    # already at rounding level for α = 0.01, hence the slack.
    assert all(later <= earlier + 1e-10 for earlier, later in itertools.pairwise(gaps))
    assert gaps[0] > 1e-6 and gaps[-1] < 1e-2


@pytest.mark.parametrize("name", ["two_state", "chain", "random0"])
def test_large_alpha_approaches_the_uniform_policy(name):
    mdp = MDPS[name]
    uniform = 1 / mdp.num_actions
    assert float(mdp.rewards.std(dim=1).min()) > 0.05  # the actions' rewards really differ
    deviations = {
        alpha: float((soft_optimal_policy(mdp, alpha)[0] - uniform).abs().max())
        for alpha in (1.0, 1e3, 1e4)
    }
    assert deviations[1.0] > 0.1
    assert 0 < deviations[1e3] < 1e-3 and deviations[1e4] < 1e-4


# --- the soft policy gradient theorem ---------------------------------------------------------


@pytest.mark.parametrize("name", MDPS)
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("alpha", [0.1, 1.0, 5.0])
def test_soft_gradient_equals_autograd(name, seed, alpha):
    mdp = MDPS[name]
    theta = random_logits(mdp, seed)
    theorem = soft_policy_gradient(mdp, theta, alpha)
    autograd = rlgrad.gradient(lambda t: soft_objective(mdp, t, alpha), theta)
    torch.testing.assert_close(theorem, autograd, atol=1e-10, rtol=0)
    torch.testing.assert_close(
        theorem.sum(dim=1), torch.zeros(mdp.num_states, dtype=F64), atol=1e-10, rtol=0
    )
    # The entropy term matters: without its −α log π the theorem would be a different vector.
    probs = policy(theta)
    _, q_values = soft_evaluate(mdp, probs, alpha)
    baseline = (probs * q_values).sum(dim=1, keepdim=True)
    without = state_visitation(mdp, probs).unsqueeze(1) * probs * (q_values - baseline)
    assert float((without - theorem).abs().max()) > 1e-3


def test_soft_gradient_equals_finite_differences():
    mdp, alpha = MDPS["random0"], 0.7
    theta = random_logits(mdp, 5)
    # ε = 1e-5: truncation O(ε²) and the solve's rounding O(1e-15·|J|/ε) both near 1e-10.
    finite = rlgrad.numerical_gradient(lambda t: soft_objective(mdp, t, alpha), theta, eps=1e-5)
    torch.testing.assert_close(soft_policy_gradient(mdp, theta, alpha), finite, atol=1e-8, rtol=0)


@pytest.mark.parametrize("name", MDPS)
def test_soft_gradient_at_the_uniform_policy_is_the_plain_one(name):
    # Uniform π: −α log π = α log A in every state and V_soft = V + α log A/(1 − γ), so every
    # soft Q of a state moves by the same constant and the soft advantage is the plain one.
    mdp = MDPS[name]
    theta = torch.zeros(mdp.num_states, mdp.num_actions, dtype=F64)
    torch.testing.assert_close(
        soft_policy_gradient(mdp, theta, 2.0), policy_gradient(mdp, theta), atol=1e-10, rtol=0
    )


@pytest.mark.parametrize("name", ["two_state", "chain", "random0", "random1"])
@pytest.mark.parametrize("alpha", [0.1, 1.0])
def test_soft_gradient_vanishes_only_at_the_soft_optimum(name, alpha):
    mdp = MDPS[name]
    _, q_star = soft_optimal_policy(mdp, alpha, tolerance=TIGHT)
    optimum = q_star / alpha  # logits of π* = softmax(Q*/α)
    assert float(soft_policy_gradient(mdp, optimum, alpha).abs().max()) < 1e-8
    # A policy near π* (a fifth of the mass spread uniformly) is not a stationary point. (Adding
    # noise to the logits would barely move π* where Q*/α separates the actions by tens.)
    mixed = 0.8 * torch.softmax(optimum, dim=-1) + 0.2 / mdp.num_actions
    assert float(soft_policy_gradient(mdp, mixed.log(), alpha).abs().max()) > 1e-3


@settings(max_examples=40)
@given(
    seed=st.integers(0, 10_000),
    num_states=st.integers(1, 5),
    num_actions=st.integers(2, 4),
    gamma=st.floats(0.0, 0.95),
    alpha=st.floats(0.01, 10.0),
    scale=st.floats(0.1, 3.0),
)
def test_soft_optimum_beats_every_policy_by_the_visited_kl(
    seed, num_states, num_actions, gamma, alpha, scale
):
    # J_α(π*) − J_α(π) = α Σ_s d^π(s) KL(π(·|s) ‖ π*(·|s)) ≥ 0. With W(s) = Σ_a π(a|s)(Q*(s, a)
    # − α log π(a|s)) and Q* = V* + α log π*: W − V* = −α KL, and V^π − V* = (I − γP_π)⁻¹(W − V*).
    mdp = random_mdp(num_states, num_actions, gamma, seed)
    theta = random_logits(mdp, seed + 1, scale)
    probs = policy(theta)
    _, q_star = soft_optimal_policy(mdp, alpha, tolerance=TIGHT)
    kl = (probs * (torch.log_softmax(theta, -1) - torch.log_softmax(q_star / alpha, -1))).sum(-1)
    best = soft_objective(mdp, q_star / alpha, alpha)
    here = soft_objective(mdp, theta, alpha)
    predicted = alpha * state_visitation(mdp, probs) @ kl
    assert float(predicted) > 0  # random logits are never exactly π*
    assert float(best - here) == pytest.approx(
        float(predicted), abs=1e-9 * max(1.0, abs(float(best)))
    )
    assert float(best) >= float(here)


# --- argument checks ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda m: soft_evaluate(m, torch.full((2, 2), 0.5, dtype=F64), -1.0),
            ValueError,
            "soft_evaluate(): 'alpha' must be >= 0; got -1.0",
        ),
        (
            lambda m: soft_evaluate(m, torch.full((2, 3), 1 / 3, dtype=F64), 1.0),
            ValueError,
            "soft_evaluate(): 'probs' must have shape [S, A] = (2, 2); got (2, 3)",
        ),
        (
            lambda m: soft_evaluate(m, torch.full((2, 2), 0.4, dtype=F64), 1.0),
            ValueError,
            "soft_evaluate(): 'probs' must sum to 1",
        ),
        (
            lambda m: soft_optimal_policy(m, 0.0),
            ValueError,
            "soft_optimal_policy(): 'alpha' must be > 0 (for α = 0, the unregularized optimum, "
            "use rlgrad.tabular.optimal_policy); got 0.0",
        ),
        (
            lambda m: soft_optimal_policy(m, 1.0, max_iterations=3),
            ValueError,
            "soft_optimal_policy(): soft value iteration did not converge in 3 iterations",
        ),
        (
            lambda m: soft_objective(m, torch.zeros(3, 2, dtype=F64), 1.0),
            ValueError,
            "soft_objective(): 'logits' must have shape [S, A] = (2, 2); got (3, 2)",
        ),
        (
            lambda m: soft_policy_gradient(m, torch.zeros(2, 2, dtype=F64), float("nan")),
            ValueError,
            "soft_policy_gradient(): 'alpha' must be finite",
        ),
        (
            lambda m: soft_policy_gradient(m, torch.zeros(2, 2, dtype=F64), "1"),
            TypeError,
            "soft_policy_gradient(): 'alpha' must be a real number; got str",
        ),
        (
            lambda m: soft_evaluate({}, torch.full((2, 2), 0.5, dtype=F64), 1.0),
            TypeError,
            "soft_evaluate(): 'mdp' must be a TabularMDP; got dict",
        ),
    ],
)
def test_errors_name_the_function_and_argument(call, error, message):
    with pytest.raises(error) as raised:
        call(two_state())
    assert str(raised.value).startswith(message)
