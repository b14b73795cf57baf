"""The exact natural policy gradient: the Fisher matrix against autograd (the Hessian of the KL and
the expectation of the score outer product), F⁺∇J against its closed form A/(1 − γ), and natural
against vanilla gradient ascent on the chain's trap and a random MDP."""

from __future__ import annotations

import pytest
import torch
from conftest import random_logits

import rlgrad
from rlgrad.app.cli import main
from rlgrad.tabular import (
    TabularMDP,
    chain,
    evaluate,
    fisher_information,
    natural_gradient_ascent,
    natural_policy_gradient,
    objective,
    optimal_policy,
    policy,
    policy_gradient,
    random_mdp,
    state_visitation,
    two_state,
)
from rlgrad.tabular.natural import compare_ascents, iterations_to_fraction, misled_logits

F64 = torch.float64

MDPS = {
    "two_state": two_state(),
    "chain": chain(),
    "random0": random_mdp(seed=0),
    "random1": random_mdp(num_states=4, num_actions=2, gamma=0.95, seed=1),
}


def normalized_visitation(mdp: TabularMDP, theta: torch.Tensor) -> torch.Tensor:
    return (1 - mdp.gamma) * state_visitation(mdp, policy(theta))


# --- the Fisher matrix --------------------------------------------------------------------------


@pytest.mark.parametrize("name", MDPS)
@pytest.mark.parametrize("seed", [0, 1])
def test_fisher_is_the_hessian_of_the_visitation_weighted_kl(name, seed):
    mdp = MDPS[name]
    theta_old = random_logits(mdp, seed)
    weights = normalized_visitation(mdp, theta_old)  # d_ρ, held fixed

    def weighted_kl(flat_theta):  # Σ_s d_ρ(s) KL(π_old(·|s) ‖ π_θ(·|s))
        kls = rlgrad.categorical_kl(theta_old, flat_theta.reshape(theta_old.shape))  # [S]
        return weights @ kls

    hessian = rlgrad.hessian(weighted_kl, theta_old.reshape(-1))
    fisher = fisher_information(mdp, theta_old)
    assert fisher.shape == (theta_old.numel(), theta_old.numel())
    torch.testing.assert_close(fisher, hessian, rtol=0, atol=1e-12)
    # The same product through the sampled-TRPO machinery: Fv by double backward.
    theta = theta_old.clone().requires_grad_(True)
    v = random_logits(mdp, seed + 10).reshape(-1)
    product = rlgrad.fisher_vector_product(
        lambda: weights @ rlgrad.categorical_kl(theta_old, theta), theta, v
    )
    torch.testing.assert_close(product, fisher @ v, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", MDPS)
def test_fisher_is_the_expected_outer_product_of_the_score(name):
    mdp = MDPS[name]
    theta = random_logits(mdp, 3)
    probs = policy(theta)
    weights = normalized_visitation(mdp, theta)
    # ∇_θ log π(a|s) for every (s, a) by autograd: [S, A, S·A].
    scores = torch.autograd.functional.jacobian(
        lambda t: torch.log_softmax(t.reshape(theta.shape), dim=-1), theta.reshape(-1)
    )
    expected = torch.einsum("s,sa,sai,saj->ij", weights, probs, scores, scores)
    torch.testing.assert_close(fisher_information(mdp, theta), expected, rtol=0, atol=1e-12)
    # Singular: every state's all-ones direction is in the null space.
    ones = torch.zeros_like(theta)
    ones[0] = 1.0
    assert float((fisher_information(mdp, theta) @ ones.reshape(-1)).abs().max()) < 1e-15


# --- the natural gradient -----------------------------------------------------------------------


@pytest.mark.parametrize("name", MDPS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_natural_gradient_is_the_advantage_over_one_minus_gamma(name, seed):
    # Kakade 2001; Agarwal et al. 2021, lemma 5.1: F⁺∇J = A(s, a)/(1 − γ) up to a per-state
    # constant; the pseudo-inverse picks the rows that sum to 0, i.e. the centered advantage.
    mdp = MDPS[name]
    theta = random_logits(mdp, seed)
    values, q_values = evaluate(mdp, policy(theta))
    advantages = q_values - values.unsqueeze(1)
    closed = advantages / (1 - mdp.gamma)
    closed = closed - closed.mean(dim=1, keepdim=True)
    natural = natural_policy_gradient(mdp, theta)
    torch.testing.assert_close(natural, closed, rtol=0, atol=1e-9)
    # It solves Fw = ∇J (∇J by the policy gradient theorem).
    fisher = fisher_information(mdp, theta)
    torch.testing.assert_close(
        fisher @ natural.reshape(-1), policy_gradient(mdp, theta).reshape(-1), rtol=0, atol=1e-10
    )


def test_conjugate_gradient_on_the_exact_fisher_finds_the_natural_gradient():
    # TRPO's inner solve, on the exact F: from x₀ = 0, CG stays in the range of F, so on the
    # singular system it converges to the minimum-norm solution, the pseudo-inverse's.
    mdp = two_state()
    theta = random_logits(mdp, 0, scale=0.5)
    fisher = fisher_information(mdp, theta)
    gradient = policy_gradient(mdp, theta).reshape(-1)
    result = rlgrad.conjugate_gradient(lambda v: fisher @ v, gradient, iterations=4)
    expected = natural_policy_gradient(mdp, theta).reshape(-1)
    torch.testing.assert_close(result.solution, expected, rtol=0, atol=1e-8)


def test_a_natural_step_is_a_soft_policy_iteration():
    # θ + αA/(1 − γ) multiplies π(a|s) by exp(αA(s, a)/(1 − γ)) and renormalizes.
    mdp, alpha = random_mdp(seed=4), 0.3
    theta = random_logits(mdp, 4)
    probs = policy(theta)
    values, q_values = evaluate(mdp, probs)
    updated = probs * torch.exp(alpha * (q_values - values.unsqueeze(1)) / (1 - mdp.gamma))
    updated = updated / updated.sum(dim=1, keepdim=True)
    path = natural_gradient_ascent(mdp, theta, alpha, 1)
    assert path.shape == (2, *theta.shape) and torch.equal(path[0], theta)
    torch.testing.assert_close(policy(path[1]), updated, rtol=0, atol=1e-12)


def test_an_unvisited_state_gets_no_step():
    # State 1 is never reached (the start is 0 and every action stays there): its F block is 0.
    transitions = torch.tensor([[[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [1.0, 0.0]]], dtype=F64)
    rewards = torch.tensor([[1.0, 0.0], [0.0, 5.0]], dtype=F64)
    mdp = TabularMDP(transitions, rewards, 0.9, torch.tensor([1.0, 0.0], dtype=F64))
    theta = random_logits(mdp, 0)
    natural = natural_policy_gradient(mdp, theta)
    assert float(natural[1].abs().max()) == 0.0 and float(natural[0].abs().max()) > 1.0


def test_a_saturated_policy_stays_finite():
    # With α = 3 the chain's policy is deterministic to machine precision within a few steps;
    # eigenvalues of F below ε·(S·A)·‖F‖ count as 0, so the logits stop moving instead of
    # overflowing to NaN.
    mdp = chain()
    path = natural_gradient_ascent(mdp, torch.zeros(5, 2, dtype=F64), lr=3.0, steps=40)
    assert bool(torch.isfinite(path).all())
    optimum = float(mdp.initial @ evaluate(mdp, optimal_policy(mdp))[0])
    assert float(objective(mdp, path[-1])) == pytest.approx(optimum, abs=1e-12)


def test_a_long_ascent_with_large_steps_stays_finite():
    # α = 10 grows the logits by ~400 an iteration: by the 40th the policy is deterministic to
    # 1e-300, its Fisher blocks subnormal, where an eigensolver returns NaN; such eigenvalues
    # count as 0 (below √(smallest normal)), so the ascent stays at the optimum instead.
    mdp = chain()
    path = natural_gradient_ascent(mdp, torch.zeros(5, 2, dtype=F64), lr=10.0, steps=100)
    assert bool(torch.isfinite(path).all())
    assert float(path[-1].abs().max()) > 1e3  # the logits did travel into that range
    optimum = float(mdp.initial @ evaluate(mdp, optimal_policy(mdp))[0])
    assert float(objective(mdp, path[-1])) == pytest.approx(optimum, abs=1e-12)


def test_natural_errors_name_the_argument():
    mdp = two_state()
    with pytest.raises(TypeError, match=r"fisher_information\(\): 'mdp' must be a TabularMDP"):
        fisher_information({}, torch.zeros(2, 2, dtype=F64))
    with pytest.raises(ValueError, match=r"'logits' must have shape \[S, A\] = \(2, 2\)"):
        natural_policy_gradient(mdp, torch.zeros(2, 3, dtype=F64))
    with pytest.raises(ValueError, match=r"natural_gradient_ascent\(\): 'lr' must be > 0"):
        natural_gradient_ascent(mdp, torch.zeros(2, 2, dtype=F64), 0.0, 3)
    with pytest.raises(TypeError, match="'logits0' must have the dtype"):
        natural_gradient_ascent(mdp, torch.zeros(2, 2), 0.1, 3)


# --- natural against vanilla ascent -------------------------------------------------------------


def iterations_to_reach(mdp: TabularMDP, path: torch.Tensor) -> int | None:
    """The first k with J(θ_k) ≥ J* − 1%·(J* − J(θ_0)): 99% of the way to the optimum."""
    optimum = float(mdp.initial @ evaluate(mdp, optimal_policy(mdp))[0])
    returns = torch.stack([objective(mdp, theta) for theta in path])
    return iterations_to_fraction(returns, optimum)


def chain_retreating() -> tuple[TabularMDP, torch.Tensor]:
    """chain() from a near-greedy policy: π(back|s) = σ(2) = 0.88 everywhere."""
    mdp = chain()
    return mdp, misled_logits(mdp)


def random_misled() -> tuple[TabularMDP, torch.Tensor]:
    """random_mdp(seed=0) from θ = −2 on the optimal actions: each has probability 0.06."""
    mdp = random_mdp(seed=0)
    return mdp, misled_logits(mdp)


def test_iterations_to_fraction_counts_from_the_start():
    returns = torch.tensor([-10.0, -5.0, -0.5, -0.05, 0.0], dtype=F64)
    # 99% of the way from −10 to 0 is −0.1; 90% is −1
    assert iterations_to_fraction(returns, 0.0) == 3
    assert iterations_to_fraction(returns, 0.0, fraction=0.9) == 2
    assert iterations_to_fraction(returns, 1.0) is None
    with pytest.raises(ValueError, match=r"iterations_to_fraction\(\): 'fraction'"):
        iterations_to_fraction(returns, 0.0, fraction=1.5)


def test_misled_logits_put_the_optimal_actions_at_minus_two():
    mdp = random_mdp(seed=0)
    best = optimal_policy(mdp).argmax(dim=1)
    theta = misled_logits(mdp)
    assert theta[torch.arange(mdp.num_states), best].tolist() == [-2.0] * mdp.num_states
    assert float(theta.sum()) == -2.0 * mdp.num_states


def test_compare_ascents_runs_each_step_size_as_its_own_ascent():
    mdp, theta0 = chain_retreating()
    optimum, runs = compare_ascents(mdp, theta0, 30, vanilla_lrs=(30.0,), natural_lrs=(1.0, 0.1))
    assert optimum == pytest.approx(float(mdp.initial @ evaluate(mdp, optimal_policy(mdp))[0]))
    assert [(r.method, r.lr) for r in runs] == [
        ("vanilla", 30.0),
        ("natural", 1.0),
        ("natural", 0.1),
    ]
    natural = natural_gradient_ascent(mdp, theta0, 1.0, 30)
    expected = torch.stack([objective(mdp, theta) for theta in natural])
    torch.testing.assert_close(runs[1].returns, expected, rtol=0, atol=0)
    vanilla = rlgrad.gradient_ascent(lambda t: objective(mdp, t), theta0, 30.0, 30)
    torch.testing.assert_close(runs[0].returns[-1], objective(mdp, vanilla[-1]), rtol=0, atol=0)
    # the figures of the measured table below: natural α = 1 in 5, α = 0.1 in 28, vanilla not in 30
    assert [r.iterations for r in runs] == [None, 5, 28]


# Measured (iterations to 99% of the way to J*; vanilla = rlgrad.gradient_ascent on objective):
#   chain, retreating start:  natural α = 1: 5 (α = 0.3: 11, α = 3: 4); vanilla over α ∈
#     {1, 3, 10, 30, 100}: not within 1500, not within 1500, 537, 293, not within 1500.
#   random_mdp(seed=0), misled start:  natural α = 1: 9 (α = 0.3: 15); vanilla over
#     α ∈ {1, 3, 10, 30}: —, 459, —, — (— = not within 1000).
# From the uniform start both are easy (chain: natural 3, vanilla 11 at α = 10): the natural
# gradient's advantage is where the policy already avoids the good actions, as here. The test
# asserts a 5× factor, far inside the measured ~50×, by running every vanilla α for 5× the
# natural count and checking that none has arrived (cheap: no run to the end of the plateau).
@pytest.mark.parametrize(
    ("case", "natural_iterations"), [(chain_retreating, 5), (random_misled, 9)]
)
def test_natural_ascent_is_five_times_faster_than_vanilla(case, natural_iterations):
    mdp, theta0 = case()
    natural = natural_gradient_ascent(mdp, theta0, lr=1.0, steps=natural_iterations)
    assert iterations_to_reach(mdp, natural) == natural_iterations
    budget = 5 * natural_iterations
    for lr in (1.0, 3.0, 10.0, 30.0, 100.0):
        vanilla = rlgrad.gradient_ascent(lambda t: objective(mdp, t), theta0, lr, budget)
        assert iterations_to_reach(mdp, vanilla) is None, f"vanilla α = {lr} arrived"


def test_rlgrad_study_natural_prints_the_race(capsys, tmp_path):
    assert main(["study", "--natural", "--natural-steps", "30", "--plots", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| chain(), γ = 0.9 | 4.0742 | natural | 1 | 5 |" in out
    assert "| chain(), γ = 0.9 | 4.0742 | vanilla | 30 | > 30 |" in out
    assert "| random_mdp(seed=0), γ = 0.9 | 6.6683 | natural | 1 | 9 |" in out
    assert (tmp_path / "study_natural.png").stat().st_size > 10_000
