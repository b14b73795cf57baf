"""TRPO end to end: the trust-region step keeps the KL within δ and improves the surrogate, a
rejected step leaves the policy unchanged, the natural-gradient mode, every parameter trains,
determinism, exact resume and bad input."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from conftest import dataclasses_replace, read_rows, without_timing

from rlgrad.app import load_agent
from rlgrad.app.registry import resume
from rlgrad.support import training
from rlgrad.support.envs import VectorEnv
from rlgrad.support.rollout import Rollout
from rlgrad.trainers import trpo
from rlgrad.trust_region import LineSearchResult

TINY = {"total_steps": 1024, "num_envs": 4, "num_steps": 128, "minibatch_size": 64}


def rollout_batch(env_id: str, seed: int = 0):
    """A fresh agent and one rollout's (observations, actions, old log π, advantages)."""
    config = trpo.Config(env=env_id, seed=seed, **TINY)
    training.seed_everything(seed, 1)
    env = VectorEnv(env_id, config.num_envs, seed)
    agent = trpo.build_agent(config, env.spaces)
    rollout = Rollout(config.num_steps, config.num_envs, env.spaces)
    rollout.collect(env, agent, torch.Generator().manual_seed(seed))
    _, advantages, _ = rollout.gae(agent, config.gamma, config.lam)
    usable = rollout.valid_indices()
    advantages = advantages.flatten()[usable]
    batch = (
        rollout.flat("observations")[usable],
        rollout.flat("actions")[usable],
        rollout.flat("log_probs")[usable],
        (advantages - advantages.mean()) / advantages.std(),
    )
    parameters = list(agent.actor.parameters())
    if not env.spaces.discrete:
        parameters.append(agent.log_std)
    return config, agent, parameters, batch


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_an_accepted_step_improves_the_surrogate_within_the_kl_radius(env_id):
    config, agent, parameters, batch = rollout_batch(env_id)
    observations = batch[0]
    with torch.no_grad():
        old_policy = tuple(
            None if x is None else x.clone() for x in agent.distribution(observations)
        )
    stepped = trpo.policy_step(config, agent, parameters, *batch)
    assert stepped.accepted
    assert 0 < stepped.kl <= config.max_kl and stepped.improvement > 0
    # the reported KL is the true mean KL between the policy before and after the step
    with torch.no_grad():
        kl = agent.kl_from(old_policy, observations).mean().item()
    assert kl == pytest.approx(stepped.kl, rel=1e-5)


def test_a_rejected_step_leaves_the_policy_exactly_unchanged(monkeypatch):
    config, agent, parameters, batch = rollout_batch("CartPole-v1")
    before = [p.detach().clone() for p in parameters]

    def rejecting(step, evaluate, max_kl, backtrack_ratio, max_backtracks):
        evaluate(step)  # the search moves the parameters while it tries candidates ...
        evaluate(step * 0.5)
        return LineSearchResult(False, torch.zeros_like(step), max_backtracks, 0.0, 0.0)

    monkeypatch.setattr(trpo, "backtracking_line_search", rejecting)
    stepped = trpo.policy_step(config, agent, parameters, *batch)
    assert not stepped.accepted and stepped.kl == 0.0 and stepped.improvement == 0.0
    for p, old in zip(parameters, before, strict=True):  # ... and a rejection restores them
        assert torch.equal(p, old)


def test_the_natural_gradient_mode_takes_the_full_step_of_about_delta():
    config, agent, parameters, batch = rollout_batch("CartPole-v1")
    natural = dataclasses_replace(config, line_search=False, max_kl=0.02)
    stepped = trpo.policy_step(natural, agent, parameters, *batch)
    assert stepped.accepted and stepped.backtracks == 0
    # the step is sized so that the quadratic model ½ΔθᵀFΔθ of the KL is δ; the true KL of a
    # small step is close to it (the damping λ = 0.1 makes the step a little shorter)
    assert 0.3 * 0.02 < stepped.kl < 1.5 * 0.02


def test_equal_advantages_give_no_step_instead_of_an_error():
    config, agent, parameters, (observations, actions, old_log_probs, _) = rollout_batch(
        "CartPole-v1"
    )
    before = [p.detach().clone() for p in parameters]
    zeros = torch.zeros(len(actions))
    stepped = trpo.policy_step(
        config, agent, parameters, observations, actions, old_log_probs, zeros
    )
    assert not stepped.accepted
    assert all(torch.equal(p, old) for p, old in zip(parameters, before, strict=True))


@pytest.mark.parametrize("env_id, obs_size", [("CartPole-v1", 4), ("Pendulum-v1", 3)])
def test_a_short_run_trains_every_parameter_and_loads_back(env_id, obs_size, tmp_path):
    config = trpo.Config(env=env_id, **TINY, eval_every=512, eval_episodes=2, keep_checkpoints=10)
    trpo.train(config, tmp_path / "run")
    start = torch.load(tmp_path / "run" / "checkpoints" / "step_0000000000.pt", weights_only=False)
    initial = start["modules"]["agent"]
    rows = read_rows(tmp_path / "run")
    assert int(rows[-1]["step"]) == 1024 and rows[-1]["eval_return_mean"] is not None
    assert all(float(r["kl"]) <= config.max_kl for r in rows)
    assert all(float(r["step_accepted"]) in (0.0, 1.0) for r in rows)
    agent = load_agent(tmp_path / "run")
    for key, after in agent.network.named_parameters():
        assert not torch.equal(initial[key], after.detach()), f"{key} did not change"
    assert agent.act(np.zeros(obs_size, np.float32)).shape == (() if obs_size == 4 else (1,))


def test_the_same_seed_gives_the_same_metrics_and_resume_continues_exactly(tmp_path):
    config = trpo.Config(env="CartPole-v1", **TINY, eval_every=0, checkpoint_every=512)
    whole = trpo.train(config, tmp_path / "whole")
    again = trpo.train(config, tmp_path / "again")
    assert without_timing(whole.rows) == without_timing(again.rows)
    shutil.copytree(tmp_path / "whole", tmp_path / "cut")
    mid = tmp_path / "cut" / "checkpoints" / "step_0000000512.pt"
    resumed = resume(tmp_path / "cut", checkpoint=mid)
    assert without_timing(resumed.rows) == without_timing(whole.rows)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("max_kl", 0.0, "'max_kl' must be > 0"),
        ("backtrack_ratio", 1.0, "'backtrack_ratio' must be in \\(0, 1\\)"),
        ("ent_coef", 0.01, "'ent_coef' must be 0 for TRPO"),
        ("minibatch_size", 4096, "'minibatch_size' = 4096 is larger than a rollout"),
        ("cg_damping", -0.1, "'cg_damping' must be >= 0"),
    ],
)
def test_bad_config_fields_name_the_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        trpo.check(dataclasses_replace(trpo.Config(), **{field: value}))
