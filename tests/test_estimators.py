"""Sampled estimators against the exact gradient: the sampler, the per-episode gradients, and the
statistical patterns of the study at a fixed seed (baselines cut variance, exact-V GAE is
unbiased for every λ, critic error biases small λ)."""

from __future__ import annotations

import pytest
import torch

from rlgrad.app.cli import main
from rlgrad.tabular import chain, evaluate, policy, state_visitation, two_state
from rlgrad.tabular.estimators import (
    LAMS,
    _p_value,
    episode_gradients,
    estimator_weights,
    gae_key,
    render_study,
    study,
)
from rlgrad.tabular.sampling import default_horizon, sample_episodes

F64 = torch.float64
THETA = torch.tensor([[0.3, -0.2], [-0.5, 0.4]], dtype=F64)


@pytest.fixture(scope="module")
def two_state_study():
    return study(two_state(), torch.zeros(2, 2, dtype=F64), num_episodes=2000, seed=0)


@pytest.fixture(scope="module")
def chain_study():
    mdp = chain()
    theta = torch.randn(5, 2, generator=torch.Generator().manual_seed(1), dtype=F64)
    return study(mdp, theta, num_episodes=2000, seed=1)


def test_default_horizon():
    assert default_horizon(0.9) == 88 and 0.9**88 <= 1e-4 < 0.9**87
    assert default_horizon(0.0) == 1
    with pytest.raises(ValueError, match="default_horizon\\(\\): 'gamma' must be < 1"):
        default_horizon(1.0)


def test_sampled_visits_match_the_exact_visitation():
    mdp = two_state()
    episodes = sample_episodes(mdp, THETA, 4000, 60, torch.Generator().manual_seed(0))
    assert episodes.states.shape == (60, 4000) and episodes.rewards.dtype == F64
    assert torch.equal(episodes.states[1:], episodes.next_states[:-1])  # s_{t+1} is carried on
    assert bool(episodes.truncated[-1].all()) and not bool(episodes.truncated[:-1].any())
    assert not bool(episodes.terminated.any())
    discounts = 0.9 ** torch.arange(60, dtype=F64).unsqueeze(1)
    visits = torch.stack([(discounts * (episodes.states == s)).sum(0) for s in range(2)], 1)
    exact = state_visitation(mdp, policy(THETA), horizon=60)
    standard_error = visits.std(dim=0) / 4000**0.5
    assert bool(((visits.mean(dim=0) - exact).abs() < 4 * standard_error).all())
    # The action frequencies in the left state match π(·|left).
    left = episodes.states == 0
    right_share = (episodes.actions[left] == 1).double().mean()
    assert abs(float(right_share) - float(policy(THETA)[0, 1])) < 0.01


def test_episode_gradients_equal_the_score_written_by_hand():
    mdp = two_state()
    episodes = sample_episodes(mdp, THETA, 5, 7, torch.Generator().manual_seed(3))
    weights = torch.randn(2, 7, 5, generator=torch.Generator().manual_seed(4), dtype=F64)
    grads = episode_gradients(THETA, episodes, weights)  # [K, N, S, A]
    probs = policy(THETA)
    # ∇_θ log π(a|s) is (e_a − π(·|s)) in row s and 0 elsewhere.
    for k in range(2):
        for n in range(5):
            expected = torch.zeros(2, 2, dtype=F64)
            for t in range(7):
                s, a = episodes.states[t, n], episodes.actions[t, n]
                expected[s] += weights[k, t, n] * (torch.eye(2, dtype=F64)[a] - probs[s])
            torch.testing.assert_close(grads[k, n], expected, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="'weights' must have shape \\[K, H, N\\]"):
        episode_gradients(THETA, episodes, weights[:, :3])


def test_value_baseline_is_gae_with_lambda_one():
    mdp = two_state()
    episodes = sample_episodes(mdp, THETA, 50, 30, torch.Generator().manual_seed(5))
    weights = estimator_weights(mdp, THETA, episodes)
    torch.testing.assert_close(weights["value_baseline"], weights["gae(1)"], rtol=0, atol=1e-12)
    # GAE(0) with the exact V is γ^t times the TD error r + γV(s') − V(s).
    values = evaluate(mdp, policy(THETA))[0]
    deltas = episodes.rewards + 0.9 * values[episodes.next_states] - values[episodes.states]
    discounts = 0.9 ** torch.arange(30, dtype=F64).unsqueeze(1)
    torch.testing.assert_close(weights["gae(0)"], discounts * deltas, rtol=0, atol=1e-12)


@pytest.mark.parametrize("fixture", ["two_state_study", "chain_study"])
def test_baselines_and_advantages_cut_variance(fixture, request):
    rows = request.getfixturevalue(fixture).rows
    variance = {key: row.variance for key, row in rows.items()}
    # Each step removes noise: reward-to-go < total return; a baseline < none; the exact
    # advantage < the sampled one. Margins are factors, far beyond sampling error at N = 2000.
    assert variance["reinforce"] < variance["total_return"] / 5
    assert variance["constant_baseline"] < variance["reinforce"] / 3
    assert variance["value_baseline"] < variance["constant_baseline"]
    assert variance["advantage"] < variance["value_baseline"] / 2
    # With the exact V, the variance of GAE grows with λ.
    by_lambda = [variance[gae_key(lam)] for lam in LAMS]
    assert by_lambda == sorted(by_lambda) and by_lambda[-1] > 3 * by_lambda[0]


@pytest.mark.parametrize("fixture", ["two_state_study", "chain_study"])
def test_exact_critic_estimators_are_unbiased(fixture, request):
    result = request.getfixturevalue(fixture)
    exact_keys = [
        "total_return",
        "reinforce",
        "constant_baseline",
        "value_baseline",
        "advantage",
        *(gae_key(lam) for lam in LAMS),
    ]
    for key in exact_keys:
        row = result.rows[key]
        assert row.bias2_exact == 0.0
        # A χ² test of E[g] = ∇J at the 0.1% level: 15 tests, all pass at these seeds.
        assert row.p_unbiased > 1e-3, (key, row.p_unbiased)
        if key != "total_return":  # the high-variance G₀ form still wanders at N = 2000
            assert row.cosine > 0.95, (key, row.cosine)


@pytest.mark.parametrize("fixture", ["two_state_study", "chain_study"])
def test_critic_error_biases_small_lambdas(fixture, request):
    result = request.getfixturevalue(fixture)
    noisy = [result.rows[gae_key(lam, noisy=True)] for lam in LAMS]
    exact_bias = [row.bias2_exact for row in noisy]
    # The exact bias shrinks as λ grows and vanishes at λ = 1 ...
    assert exact_bias == sorted(exact_bias, reverse=True) and exact_bias[-1] == 0.0
    # ... the sampled estimates detect it for λ ≤ 0.5 and find none at λ = 1 ...
    assert noisy[0].p_unbiased < 1e-9 and noisy[1].p_unbiased < 1e-9
    assert noisy[-1].p_unbiased > 1e-3
    # ... and agree with the formula: the sampled mean is consistent with its exact expectation,
    for row in noisy:
        flat = result.samples[row.key]
        assert _p_value(flat.mean(0) - row.expected.reshape(-1), flat) > 1e-3, row.key
    # and the biased direction costs alignment that more samples cannot buy back.
    assert noisy[0].cosine < 0.9 < result.rows["gae(0)"].cosine
    assert noisy[0].bias2 > 10 * noisy[0].variance / result.num_episodes


def test_the_noise_sweep_grows_quadratically(two_state_study):
    sizes = two_state_study.noise_sizes
    for lam in (0.0, 0.5):
        bias2 = two_state_study.noise_bias2[lam]
        assert float(bias2[0]) == 0.0
        # bias is linear in the critic error, so bias² ∝ size².
        torch.testing.assert_close(
            bias2[1:] / sizes[1:] ** 2, (bias2[-1] / sizes[-1] ** 2).expand(len(sizes) - 1)
        )


def test_study_is_reproducible_and_its_table_renders():
    first = study(two_state(), THETA, num_episodes=300, seed=7)
    second = study(two_state(), THETA, num_episodes=300, seed=7)
    assert all(first.rows[k].bias2 == second.rows[k].bias2 for k in first.rows)
    text = render_study(first)
    assert "GAE λ=0.95, exact V" in text and "G_t (REINFORCE)" in text and "N=300" in text
    with pytest.raises(ValueError, match="study\\(\\): 'num_episodes' must be >= 2"):
        study(two_state(), THETA, num_episodes=1)


def test_cli_study_prints_the_table_and_writes_figures(tmp_path, capsys):
    assert (
        main(
            [
                "study",
                "--mdp",
                "chain",
                "--episodes",
                "200",
                "--theta",
                "random",
                "--plots",
                str(tmp_path),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "rlgrad study: chain" in out and "GAE λ=0, noisy critic" in out
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["study_critic.png", "study_lambda.png", "study_samples.png"]
    assert all(p.stat().st_size > 10_000 for p in tmp_path.iterdir())
