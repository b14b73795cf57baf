"""Taylor diagnostics (seed E.3.4): the ratio's Taylor models against the exact ratio and an
explicit Hessian, their convergence orders; the update diagnostics against independent
references (the Fisher matrix as E[∇log π ∇log πᵀ]); the trainers' taylor_every columns; and
`rlgrad taylor RUN_DIR`."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn.utils import parameters_to_vector, vector_to_parameters

import rlgrad
from rlgrad.app.cli import main
from rlgrad.support import taylor
from rlgrad.support.envs import Spaces
from rlgrad.support.nets import ActorCritic
from rlgrad.trainers import ppo, trpo
from rlgrad.trust_region import ratio_taylor, surrogate_objective

F64 = torch.float64


# --- the formula: ratio_taylor ------------------------------------------------------------------


def softmax_problem(seed: int, batch: int = 6, features: int = 3, actions: int = 3):
    """A linear softmax policy π(a|s) = softmax(sᵀW)_a in float64: states, actions, flat W, Δ."""
    g = torch.Generator().manual_seed(seed)
    states = torch.randn(batch, features, generator=g, dtype=F64)
    chosen = torch.randint(actions, (batch,), generator=g)
    weights = torch.randn(features * actions, generator=g, dtype=F64)
    direction = torch.randn(features * actions, generator=g, dtype=F64)
    return states, chosen, weights, direction


def softmax_log_probs(states, chosen, flat_weights):
    """[B] log π(a_i|s_i) of the linear softmax policy, W = flat_weights viewed as [D, A]."""
    logits = states @ flat_weights.view(states.shape[1], -1)  # [B, A]
    return torch.log_softmax(logits, dim=-1).gather(1, chosen[:, None]).squeeze(1)


@settings(max_examples=6, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0.01, 1.0))
def test_the_models_are_the_taylor_expansion_with_the_explicit_hessian(seed, size):
    states, chosen, weights, direction = softmax_problem(seed, batch=4)
    step = size * direction
    models = ratio_taylor(lambda w: softmax_log_probs(states, chosen, w), weights, step)
    old = softmax_log_probs(states, chosen, weights)
    for i in range(len(chosen)):

        def ratio(w, i=i):  # r_i(w) = π_w(a_i|s_i) / π_θ(a_i|s_i), a scalar
            return torch.exp(softmax_log_probs(states, chosen, w)[i] - old[i])

        gradient, hessian = rlgrad.gradient(ratio, weights), rlgrad.hessian(ratio, weights)
        first = 1 + gradient @ step  # 1 + ∇r_iᵀΔ
        second = first + 0.5 * step @ hessian @ step  # + ½ΔᵀH_iΔ
        assert models.first[i].item() == pytest.approx(first.item(), abs=1e-12)
        assert models.second[i].item() == pytest.approx(second.item(), abs=1e-12)
    # rlgrad.taylor (seed E.3.4's expansion of any scalar function) says the same (last sample)
    assert models.second[i].item() == pytest.approx(
        rlgrad.taylor(ratio, weights, step, order=2).item(), abs=1e-12
    )


def test_the_errors_shrink_like_the_square_and_the_cube_of_the_step():
    states, chosen, weights, direction = softmax_problem(7, batch=16)
    old = softmax_log_probs(states, chosen, weights)
    sizes = np.logspace(-3, -1, 7)
    first_errors, second_errors = [], []
    for size in sizes:
        step = float(size) * direction
        models = ratio_taylor(lambda w: softmax_log_probs(states, chosen, w), weights, step)
        exact = torch.exp(softmax_log_probs(states, chosen, weights + step) - old)
        first_errors.append((models.first - exact).abs().mean().item())
        second_errors.append((models.second - exact).abs().mean().item())
    # the slope of log error against log |Δ|: the order of the first term left out
    first_slope = np.polyfit(np.log(sizes), np.log(first_errors), 1)[0]
    second_slope = np.polyfit(np.log(sizes), np.log(second_errors), 1)[0]
    assert first_slope == pytest.approx(2.0, abs=0.1)
    assert second_slope == pytest.approx(3.0, abs=0.1)
    assert second_errors[0] < 1e-8 < first_errors[0]  # at |Δ| ~ 1e-3: ~1e-9 against ~1e-6


def test_a_list_of_parameters_gives_what_the_flat_vector_gives():
    # a Gaussian policy: mean sᵀw, log σ; as two tensors, and as one flat tensor (w, log σ)
    g = torch.Generator().manual_seed(3)
    states = torch.randn(5, 2, generator=g, dtype=F64)
    actions = torch.randn(5, 1, generator=g, dtype=F64)
    w, log_std = torch.randn(2, 1, generator=g, dtype=F64), torch.tensor([-0.3], dtype=F64)
    step = torch.tensor([0.2, -0.1, 0.3], dtype=F64)

    def log_probs(mean_weights, log_stds):
        return rlgrad.gaussian_log_prob(actions, states @ mean_weights, log_stds)

    as_list = ratio_taylor(lambda p: log_probs(*p), [w, log_std], step)
    flat = torch.cat([w.reshape(-1), log_std])
    as_flat = ratio_taylor(lambda p: log_probs(p[:2].view(2, 1), p[2:]), flat, step)
    torch.testing.assert_close(as_list.first, as_flat.first, rtol=0, atol=1e-14)
    torch.testing.assert_close(as_list.second, as_flat.second, rtol=0, atol=1e-14)
    assert as_list.first.shape == (5,)


def test_ratio_taylor_refuses_bad_input():
    states, chosen, weights, direction = softmax_problem(0)

    def log_probs(w):
        return softmax_log_probs(states, chosen, w)

    with pytest.raises(ValueError, match=r"ratio_taylor\(\): 'step' must be flat.*\(9,\)"):
        ratio_taylor(log_probs, weights, direction[:4])
    with pytest.raises(TypeError, match=r"ratio_taylor\(\): 'step'.*dtype"):
        ratio_taylor(log_probs, weights, direction.float())
    with pytest.raises(TypeError, match=r"ratio_taylor\(\): 'params'"):
        ratio_taylor(log_probs, 3.0, direction)
    with pytest.raises(ValueError, match=r"'log_prob_fn' must return log-probabilities \[B\]"):
        ratio_taylor(lambda w: log_probs(w)[:, None], weights, direction)
    with pytest.raises(ValueError, match=r"ratio_taylor\(\): 'step' must be finite"):
        ratio_taylor(log_probs, weights, direction * math.inf)


# --- the update diagnostics ---------------------------------------------------------------------


def small_agent(discrete: bool, seed: int = 0):
    """A tiny actor-critic, a batch of 32 states with actions sampled from it, its θ_old."""
    torch.manual_seed(seed)
    spaces = Spaces(
        (4,),
        discrete,
        3,
        () if discrete else (2,),
        None if discrete else np.full(2, -1.0),
        None if discrete else np.full(2, 1.0),
    )
    agent = ActorCritic(spaces, hidden_sizes=(8,), log_std_init=-0.5)
    with torch.no_grad():  # a livelier start than the near-uniform 0.01-gain head
        agent.actor[-1].weight.mul_(100)
    observations = torch.randn(32, 4)
    actions, old_log_probs = agent.sample(observations, torch.Generator().manual_seed(seed))
    advantages = torch.randn(32, generator=torch.Generator().manual_seed(seed + 1))
    return agent, (observations, actions, old_log_probs, advantages)


def move(agent, size: float, seed: int = 5) -> torch.Tensor:
    """Move the policy's parameters by size · a fixed random direction; return Δθ."""
    parameters = list(taylor.policy_parameters(agent).values())
    vector = parameters_to_vector(parameters).detach()
    direction = torch.randn(vector.shape, generator=torch.Generator().manual_seed(seed))
    vector_to_parameters(vector + size * direction, parameters)
    return size * direction


def fisher_matrix(agent, observations) -> torch.Tensor:
    """F = mean_s Σ_a π(a|s) ∇log π(a|s) ∇log π(a|s)ᵀ, one backward pass per (s, a)."""
    parameters = list(taylor.policy_parameters(agent).values())
    size = sum(p.numel() for p in parameters)
    fisher = torch.zeros(size, size)
    for state in observations:
        logits, _ = agent.distribution(state[None])
        log_probs = torch.log_softmax(logits[0], dim=-1)
        for action in range(len(log_probs)):
            grads = torch.autograd.grad(log_probs[action], parameters, retain_graph=True)
            score = torch.cat([g.reshape(-1) for g in grads])
            fisher += log_probs[action].exp().detach() * torch.outer(score, score)
    return fisher / len(observations)


def test_diagnostics_against_independent_references():
    agent, batch = small_agent(discrete=True)
    observations, actions, old_log_probs, advantages = batch
    before = copy.deepcopy(agent)
    old_vector = taylor.policy_vector(agent)
    step = move(agent, 0.05)
    after = {k: v.clone() for k, v in agent.state_dict().items()}
    found = taylor.diagnostics(agent, old_vector, *batch)
    assert set(found) == set(taylor.COLUMNS)
    for name, value in agent.state_dict().items():  # the agent is read, never changed
        torch.testing.assert_close(value, after[name], rtol=0, atol=0)

    def surrogate(model):
        log_probs, _ = model.log_prob_and_entropy(observations, actions)
        return surrogate_objective(log_probs, old_log_probs, advantages)

    old_surrogate = surrogate(before)
    gradient = torch.autograd.grad(old_surrogate, list(taylor.policy_parameters(before).values()))
    predicted = torch.cat([g.reshape(-1) for g in gradient]) @ step  # gᵀΔθ
    assert found["taylor_surrogate_predicted"] == pytest.approx(predicted.item(), rel=1e-5)
    with torch.no_grad():
        actual = surrogate(agent) - old_surrogate
        kl = agent.kl_from(before.distribution(observations), observations).mean()
    assert found["taylor_surrogate_actual"] == pytest.approx(actual.item(), rel=1e-5)
    assert found["taylor_kl_actual"] == pytest.approx(kl.item(), rel=1e-5)
    # the Hessian of the KL (double backward) against the Fisher matrix E[∇log π ∇log πᵀ]
    quadratic = 0.5 * step @ fisher_matrix(before, observations) @ step
    assert found["taylor_kl_predicted"] == pytest.approx(quadratic.item(), rel=1e-4)
    # a small step: every model is close
    assert found["taylor_kl_predicted"] == pytest.approx(kl.item(), rel=0.1)
    assert found["taylor_ratio_error_second"] < found["taylor_ratio_error_first"] < 0.05


@pytest.mark.parametrize("discrete", [True, False])
def test_a_ten_times_smaller_step_shrinks_the_model_errors_by_their_order(discrete):
    errors = {}
    for size in (0.02, 0.002):
        agent, batch = small_agent(discrete)
        old_vector = taylor.policy_vector(agent)
        move(agent, size)
        found = taylor.diagnostics(agent, old_vector, *batch, probe_size=16)
        errors[size] = (
            found["taylor_ratio_error_first"],
            found["taylor_ratio_error_second"],
            abs(found["taylor_kl_predicted"] - found["taylor_kl_actual"]),
        )
    first, second, kl = (errors[0.02][k] / errors[0.002][k] for k in range(3))
    assert 70 < first < 130  # O(|Δ|²): 100
    assert 500 < second < 2000  # O(|Δ|³): 1000
    assert kl > 200  # the quadratic KL model misses by O(|Δ|³)


def test_the_slice_runs_through_the_update_at_t_equal_to_one():
    agent, batch = small_agent(discrete=True)
    old_vector = taylor.policy_vector(agent)
    move(agent, 0.1)
    found = taylor.diagnostics(agent, old_vector, *batch, probe_size=32)
    scales = torch.tensor([0.0, 0.5, 1.0, 2.0, 30.0])
    line = taylor.step_slice(agent, old_vector, *batch, scales, clip_eps=0.2, probe_size=32)
    assert line.surrogate[0] == line.kl[0] == line.clip_fraction[0] == 0  # t = 0 is θ_old
    assert line.surrogate[2].item() == pytest.approx(found["taylor_surrogate_actual"], rel=1e-6)
    assert line.kl[2].item() == pytest.approx(found["taylor_kl_actual"], rel=1e-6)
    assert line.kl_second[2].item() == pytest.approx(found["taylor_kl_predicted"], rel=1e-6)
    assert line.surrogate_first[2].item() == pytest.approx(
        found["taylor_surrogate_predicted"], rel=1e-6
    )
    assert line.ratio_error_first[2].item() == pytest.approx(
        found["taylor_ratio_error_first"], rel=1e-6
    )
    # the models are polynomials in t; far along the line the clip is engaged
    torch.testing.assert_close(line.surrogate_first, scales.double() * line.surrogate_first[2])
    torch.testing.assert_close(line.kl_second, scales.double() ** 2 * line.kl_second[2])
    assert line.clip_fraction[-1] > 0.5
    # the second-order surrogate model is the better one near θ_old
    near = 1
    assert abs(line.surrogate_second[near] - line.surrogate[near]) < abs(
        line.surrogate_first[near] - line.surrogate[near]
    )


def test_no_snapshot_means_empty_columns_and_snapshot_follows_the_schedule():
    agent, batch = small_agent(discrete=True)
    assert taylor.diagnostics(agent, None, *batch) == dict.fromkeys(taylor.COLUMNS)
    assert [taylor.snapshot(agent, 3, u) is not None for u in range(7)] == [
        True, False, False, True, False, False, True
    ]  # fmt: skip
    assert taylor.snapshot(agent, 0, 0) is None


def test_diagnostics_refuse_bad_input():
    agent, (observations, actions, old_log_probs, advantages) = small_agent(discrete=True)
    old_vector = taylor.policy_vector(agent)
    with pytest.raises(ValueError, match=r"diagnostics\(\): 'old_vector' must be the policy's"):
        taylor.diagnostics(agent, old_vector[:-1], observations, actions, old_log_probs, advantages)
    with pytest.raises(ValueError, match=r"'actions' must hold B = 32 samples"):
        taylor.diagnostics(agent, old_vector, observations, actions[:5], old_log_probs, advantages)
    with pytest.raises(ValueError, match=r"'advantages' must have the shape"):
        taylor.diagnostics(agent, old_vector, observations, actions, old_log_probs, advantages[:3])
    with pytest.raises(ValueError, match=r"'probe_size' must be >= 1"):
        taylor.diagnostics(agent, old_vector, observations, actions, old_log_probs, advantages, 0)
    with pytest.raises(ValueError, match=r"step_slice\(\): 'scales' must be \[S\]"):
        taylor.step_slice(
            agent, old_vector, observations, actions, old_log_probs, advantages, torch.ones(2, 2)
        )


# --- the trainers' taylor_every -----------------------------------------------------------------

TINY_PPO = {
    "env": "CartPole-v1",
    "num_envs": 4,
    "num_steps": 64,
    "minibatch_size": 64,
    "eval_every": 0,
    "eval_episodes": 1,
    "anneal_lr": False,
}


def first_row(config, tmp_path) -> dict:
    return ppo.train(config, tmp_path / f"lr{config.lr}").rows[0]


def test_ppo_logs_the_columns_every_n_updates(tmp_path):
    config = ppo.Config(total_steps=3 * 256, taylor_every=2, **TINY_PPO)
    rows = ppo.train(config, tmp_path / "run").rows
    for row in (rows[0], rows[2]):
        assert all(math.isfinite(row[name]) for name in taylor.COLUMNS)
    assert all(rows[1][name] is None for name in taylor.COLUMNS)  # an empty cell between
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert set(taylor.COLUMNS) <= set(header)
    untouched = ppo.train(ppo.Config(total_steps=256, **TINY_PPO), tmp_path / "off").rows[0]
    assert not any(name.startswith("taylor") for name in untouched)
    with pytest.raises(ValueError, match="taylor_every"):
        ppo.check(ppo.Config(taylor_every=-1))


def test_a_large_ppo_step_leaves_the_first_order_model_behind(tmp_path):
    # One update from the same seed and batch; only the learning rate differs. A tiny step is
    # described by gᵀΔθ to a fraction of a percent; 4 epochs at lr = 0.03 are not.
    errors = {}
    for lr in (1e-5, 0.03):
        row = first_row(ppo.Config(total_steps=256, lr=lr, taylor_every=1, **TINY_PPO), tmp_path)
        predicted, actual = row["taylor_surrogate_predicted"], row["taylor_surrogate_actual"]
        assert predicted > 0 and actual > 0  # both steps climb the surrogate
        errors[lr] = abs(predicted - actual) / abs(actual)
    assert errors[1e-5] < 0.01
    assert errors[0.03] > 0.2 and errors[0.03] > 20 * errors[1e-5]


def test_trpo_steps_stay_where_the_quadratic_kl_model_holds(tmp_path):
    config = trpo.Config(
        env="CartPole-v1",
        total_steps=1024,
        num_envs=4,
        num_steps=128,
        minibatch_size=64,
        critic_epochs=1,
        eval_every=0,
        eval_episodes=1,
        taylor_every=1,
    )
    rows = trpo.train(config, tmp_path / "run").rows
    assert len(rows) == 2
    for row in rows:
        assert all(math.isfinite(row[name]) for name in taylor.COLUMNS)
        # the diagnostics' "actual" is what the trainer's line search measured
        assert row["taylor_kl_actual"] == pytest.approx(row["kl"], rel=1e-5)
        assert row["taylor_surrogate_actual"] == pytest.approx(
            row["surrogate_improvement"], rel=1e-5
        )
        # the step was sized by ½Δθᵀ(F + λI)Δθ = δ·ρᵏ², so the undamped model is within δ
        assert 0 < row["taylor_kl_predicted"] <= config.max_kl * (1 + 1e-4)
        assert row["taylor_kl_predicted"] == pytest.approx(row["taylor_kl_actual"], rel=0.2)
        assert row["taylor_surrogate_predicted"] == pytest.approx(
            row["taylor_surrogate_actual"], rel=0.2
        )


# --- rlgrad taylor RUN_DIR ----------------------------------------------------------------------


def test_cli_draws_the_logged_diagnostics(tmp_path, capsys):
    quick = ["--no-progress", "--total-steps", "512", "--config.num_envs", "4"]
    quick += ["--config.num_steps", "64", "--config.minibatch_size", "64"]
    quick += ["--config.eval_every", "0", "--config.eval_episodes", "1"]
    logged, plain = tmp_path / "logged", tmp_path / "plain"
    assert (
        main(["train", "ppo", "--run-dir", str(logged), *quick, "--config.taylor_every", "1"]) == 0
    )
    assert main(["train", "ppo", "--run-dir", str(plain), *quick]) == 0
    capsys.readouterr()
    assert main(["taylor", str(logged), "-o", str(tmp_path / "figure.png")]) == 0
    assert "wrote" in capsys.readouterr().out and (tmp_path / "figure.png").stat().st_size > 10_000
    assert main(["taylor", str(logged)]) == 0 and (logged / "taylor.png").exists()
    capsys.readouterr()
    assert main(["taylor", str(plain)]) == 2
    error = capsys.readouterr().err
    assert "--config.taylor_every N" in error and len(error.strip().splitlines()) == 1
    assert main(["taylor", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err
