"""Exact tabular ground truth: the MDP checks, the Bellman equations, the policy gradient theorem
against autograd and finite differences, and exact gradient ascent reaching the optimum."""

from __future__ import annotations

import pytest
import torch
from conftest import random_logits

import rlgrad
from rlgrad.tabular import (
    TabularMDP,
    chain,
    evaluate,
    expected_gae_gradient,
    objective,
    optimal_policy,
    policy,
    policy_gradient,
    random_mdp,
    state_visitation,
    two_state,
)
from rlgrad.tabular.zoo import make_logits

F64 = torch.float64

MDPS = {
    "two_state": two_state(),
    "two_state_no_slip": two_state(gamma=0.8, slip=0.0),
    "chain": chain(),
    "random0": random_mdp(seed=0),
    "random1": random_mdp(num_states=4, num_actions=2, gamma=0.95, seed=1),
    "random_one_state": random_mdp(num_states=1, num_actions=3, seed=2),
}


# --- the MDP and its validation -----------------------------------------------------------------


def valid_parts():
    transitions = torch.tensor([[[1.0, 0.0]], [[0.3, 0.7]]], dtype=F64)  # [S=2, A=1, S=2]
    return transitions, torch.zeros(2, 1, dtype=F64), 0.9, torch.tensor([1.0, 0.0], dtype=F64)


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (lambda p: (p[0][:, :, :1], *p[1:]), ValueError, "'transitions' must have shape [S, A, S]"),
        (lambda p: (p[0] * 1.1, *p[1:]), ValueError, "'transitions' must hold probabilities"),
        (lambda p: (p[0] * 0.9, *p[1:]), ValueError, "'transitions' must sum to 1"),
        (
            lambda p: (p[0], torch.zeros(2, 2, dtype=F64), *p[2:]),
            ValueError,
            "'rewards' must have shape [S, A] = (2, 1); got (2, 2)",
        ),
        (
            lambda p: (p[0], torch.full((2, 1), float("nan"), dtype=F64), *p[2:]),
            ValueError,
            "'rewards' must be finite",
        ),
        (lambda p: (p[0], p[1].float(), *p[2:]), TypeError, "'rewards' must have the dtype"),
        (lambda p: (*p[:2], 1.0, p[3]), ValueError, "'gamma' must be < 1"),
        (lambda p: (*p[:2], -0.1, p[3]), ValueError, "'gamma' must lie in [0, 1]"),
        (
            lambda p: (*p[:3], torch.tensor([0.5, 0.6], dtype=F64)),
            ValueError,
            "'initial' must sum to 1",
        ),
        (
            lambda p: (*p[:3], torch.ones(3, dtype=F64) / 3),
            ValueError,
            "'initial' must have shape [S] = (2,); got (3,)",
        ),
        (lambda p: ([[[1.0]]], *p[1:]), TypeError, "'transitions' must be a torch.Tensor"),
    ],
)
def test_mdp_validation_names_the_argument(change, error, message):
    with pytest.raises(error, match="TabularMDP\\(\\): ") as info:
        TabularMDP(*change(valid_parts()))
    assert message in str(info.value)


def test_mdp_names_default_and_are_checked():
    mdp = TabularMDP(*valid_parts())
    assert mdp.state_names == ("s0", "s1") and mdp.action_names == ("a0",)
    with pytest.raises(ValueError, match="'action_names' must hold 1 names; got 2"):
        TabularMDP(*valid_parts(), action_names=("x", "y"))


def test_two_state_is_the_documented_example():
    mdp = two_state()
    assert mdp.state_names == ("left", "right") and mdp.action_names == ("left", "right")
    assert torch.equal(mdp.initial, torch.tensor([1.0, 0.0], dtype=F64))
    # Always right: V(right) = 1 + 0.9(0.9 V(right) + 0.1 V(left)), V(left) = that minus 1,
    # which solves to V = [8.1, 9.1].
    always_right = torch.tensor([[0.0, 1.0], [0.0, 1.0]], dtype=F64)
    values, _ = evaluate(mdp, always_right)
    torch.testing.assert_close(values, torch.tensor([8.1, 9.1], dtype=F64))
    assert torch.equal(optimal_policy(mdp), always_right)
    # θ sets the probability of choosing right: π(right|s) = σ(θ[s, right] − θ[s, left]).
    theta = torch.tensor([[0.0, 2.0], [1.0, -1.0]], dtype=F64)
    torch.testing.assert_close(policy(theta)[:, 1], torch.sigmoid(theta[:, 1] - theta[:, 0]))


def test_chain_greedy_action_is_a_trap():
    mdp = chain()
    greedy = mdp.rewards.argmax(dim=1)  # the action paying most right now
    optimal = optimal_policy(mdp).argmax(dim=1)
    assert greedy[:-1].tolist() == [0] * 4  # "back" everywhere but the end
    assert optimal.tolist() == [1] * 5  # "forward" everywhere
    greedy_value = mdp.initial @ evaluate(mdp, torch.eye(2, dtype=F64)[greedy])[0]
    optimal_value = mdp.initial @ evaluate(mdp, torch.eye(2, dtype=F64)[optimal])[0]
    assert optimal_value > 1.5 * greedy_value


def test_random_mdp_is_seeded():
    assert torch.equal(random_mdp(seed=4).rewards, random_mdp(seed=4).rewards)
    assert not torch.equal(random_mdp(seed=4).rewards, random_mdp(seed=5).rewards)
    with pytest.raises(ValueError, match="'transitions' needs at least one state"):
        random_mdp(num_states=0)


def test_make_logits():
    mdp = two_state()
    assert torch.equal(make_logits(mdp), torch.zeros(2, 2, dtype=F64))
    assert torch.equal(make_logits(mdp, "random", 3), make_logits(mdp, "random", 3))
    with pytest.raises(ValueError, match="must list S·A = 4 numbers for two_state; got 3"):
        make_logits(mdp, "1,2,3")
    with pytest.raises(ValueError, match="'zeros', 'random' or 4 comma-separated"):
        make_logits(mdp, "ones")


# --- exact evaluation -------------------------------------------------------------------------


@pytest.mark.parametrize("name", MDPS)
@pytest.mark.parametrize("seed", [0, 1])
def test_values_satisfy_the_bellman_equations(name, seed):
    mdp = MDPS[name]
    probs = policy(random_logits(mdp, seed))
    values, q_values = evaluate(mdp, probs)
    # V(s) = Σ_a π(a|s)[r(s, a) + γ Σ_s' P(s'|s, a) V(s')], written out with loops.
    for s in range(mdp.num_states):
        backup = sum(
            probs[s, a] * (mdp.rewards[s, a] + mdp.gamma * mdp.transitions[s, a] @ values)
            for a in range(mdp.num_actions)
        )
        assert abs(values[s] - backup) < 1e-10
    torch.testing.assert_close((probs * q_values).sum(dim=1), values, rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", MDPS)
def test_visitation_counts_discounted_visits(name):
    mdp = MDPS[name]
    probs = policy(random_logits(mdp, 7))
    state_transitions = torch.einsum("sa,sat->st", probs, mdp.transitions)
    # Σ_t γ^t μ_t by iterating the chain, against the closed forms.
    distribution, total = mdp.initial.clone(), torch.zeros_like(mdp.initial)
    for t in range(25):
        total += mdp.gamma**t * distribution
        distribution = distribution @ state_transitions
    torch.testing.assert_close(state_visitation(mdp, probs, horizon=25), total)
    full = state_visitation(mdp, probs)
    assert abs(full.sum() - 1 / (1 - mdp.gamma)) < 1e-9
    assert bool((full >= -1e-12).all())


def test_optimal_policy_satisfies_bellman_optimality():
    for mdp in MDPS.values():
        values, q_values = evaluate(mdp, optimal_policy(mdp))
        torch.testing.assert_close(q_values.max(dim=1).values, values, rtol=0, atol=1e-9)


def test_evaluate_refuses_a_non_distribution():
    with pytest.raises(ValueError, match="evaluate\\(\\): 'probs' must sum to 1"):
        evaluate(two_state(), torch.full((2, 2), 0.4, dtype=F64))
    with pytest.raises(ValueError, match="'logits' must have shape \\[S, A\\] = \\(2, 2\\)"):
        objective(two_state(), torch.zeros(2, 3, dtype=F64))
    with pytest.raises(TypeError, match="'mdp' must be a TabularMDP; got dict"):
        policy_gradient({}, torch.zeros(2, 2, dtype=F64))


# --- the policy gradient theorem ---------------------------------------------------------------


@pytest.mark.parametrize("name", MDPS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_theorem_equals_autograd_and_finite_differences(name, seed):
    mdp = MDPS[name]
    theta = random_logits(mdp, seed)
    theorem = policy_gradient(mdp, theta)
    autograd = rlgrad.gradient(lambda t: objective(mdp, t), theta)
    # ε = 1e-5 balances truncation O(ε²) and the solve's rounding O(1e-15·|J|/ε) near 1e-10.
    finite = rlgrad.numerical_gradient(lambda t: objective(mdp, t), theta, eps=1e-5)
    torch.testing.assert_close(theorem, autograd, rtol=0, atol=1e-8)
    torch.testing.assert_close(theorem, finite, rtol=0, atol=1e-8)
    # Closed form for softmax: ∂J/∂θ[s, a] = d(s) π(a|s) A(s, a); each row sums to 0.
    probs = policy(theta)
    values, q_values = evaluate(mdp, probs)
    closed = state_visitation(mdp, probs).unsqueeze(1) * probs * (q_values - values.unsqueeze(1))
    torch.testing.assert_close(theorem, closed, rtol=0, atol=1e-10)
    torch.testing.assert_close(
        theorem.sum(dim=1), torch.zeros(mdp.num_states, dtype=F64), rtol=0, atol=1e-10
    )


def test_truncated_gradient_converges_to_the_full_one():
    mdp, theta = two_state(), random_logits(two_state(), 0)
    full = policy_gradient(mdp, theta)
    gaps = [float((policy_gradient(mdp, theta, horizon=h) - full).norm()) for h in (1, 10, 50, 200)]
    assert gaps == sorted(gaps, reverse=True) and gaps[-1] < 1e-8
    assert float(policy_gradient(mdp, theta, horizon=0).abs().max()) == 0.0


def test_exact_ascent_on_two_state_reaches_the_optimal_policy():
    mdp = two_state()
    optimum = float(mdp.initial @ evaluate(mdp, optimal_policy(mdp))[0])  # 8.1
    path = rlgrad.gradient_ascent(
        lambda t: objective(mdp, t), torch.zeros(2, 2, dtype=F64), lr=5.0, steps=60
    )
    returns = torch.stack([objective(mdp, t) for t in path])
    assert float(returns[0]) == pytest.approx(3.625)  # the uniform policy
    assert bool((returns[1:] >= returns[:-1] - 1e-12).all())  # a small-enough step never falls
    assert optimum - float(returns[-1]) < 5e-3
    assert bool((policy(path[-1])[:, 1] > 0.99).all())  # right in both states


# --- the expected GAE gradient under critic error ------------------------------------------


def expected_gae_by_series(mdp, theta, lam, critic, terms=400):
    """E[Σ_l (γλ)^l δ̂_{t+l} | s, a] summed term by term, then put through the theorem."""
    probs = policy(theta)
    state_transitions = torch.einsum("sa,sat->st", probs, mdp.transitions)
    first = mdp.rewards + mdp.gamma * mdp.transitions @ critic - critic.unsqueeze(1)  # l = 0
    mean_td = (probs * first).sum(dim=1)  # E[δ̂ | s] under π
    later, reach = torch.zeros_like(first), mdp.transitions.clone()  # reach = P(s_{t+l} | s, a)
    for lag in range(1, terms):
        later += (mdp.gamma * lam) ** lag * reach @ mean_td
        reach = reach @ state_transitions
    expected = first + later
    visits = state_visitation(mdp, probs)
    return visits.unsqueeze(1) * probs * (expected - (probs * expected).sum(1, keepdim=True))


@pytest.mark.parametrize("name", ["two_state", "chain", "random0"])
@pytest.mark.parametrize("lam", [0.0, 0.5, 0.9, 1.0])
def test_expected_gae_gradient_matches_the_series(name, lam):
    mdp = MDPS[name]
    theta = random_logits(mdp, 3)
    values = evaluate(mdp, policy(theta))[0]
    critic = values + torch.linspace(-1.0, 1.5, mdp.num_states, dtype=F64)
    torch.testing.assert_close(
        expected_gae_gradient(mdp, theta, lam, critic),
        expected_gae_by_series(mdp, theta, lam, critic),
        rtol=0,
        atol=1e-9,
    )
    # The exact critic is unbiased for every λ; λ = 1 is unbiased for every critic.
    truth = policy_gradient(mdp, theta)
    torch.testing.assert_close(expected_gae_gradient(mdp, theta, lam), truth, rtol=0, atol=1e-10)
    if lam == 1.0:
        torch.testing.assert_close(
            expected_gae_gradient(mdp, theta, lam, critic), truth, rtol=0, atol=1e-10
        )
    elif mdp.num_states > 1:
        assert float((expected_gae_gradient(mdp, theta, lam, critic) - truth).norm()) > 1e-3
