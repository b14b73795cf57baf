"""TRPO end to end: the trust-region step keeps the KL within δ and improves the surrogate, a
rejected step leaves the policy unchanged, the natural-gradient mode, every parameter trains,
determinism, exact resume and bad input."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import torch
from conftest import dataclasses_replace, read_rows, without_timing

from rlgrad.app import load_agent
from rlgrad.app.registry import resume
from rlgrad.grpo import masked_mean
from rlgrad.returns import normalize_advantages
from rlgrad.support import training
from rlgrad.support.envs import SeedEnvs
from rlgrad.support.rollout import SeedRollout
from rlgrad.support.seeded import SeedGenerators, build_seeded
from rlgrad.trainers import trpo
from rlgrad.trust_region import LineSearchResult

PolicyStepFields = trpo.PolicyStep._fields

TINY = {"total_steps": 1024, "num_envs": 4, "num_steps": 128, "minibatch_size": 64}


def rollout_batch(env_id: str, seeds: tuple[int, ...] = (0,)):
    """Fresh seed-batched agents and one rollout per seed: the config, the agents and the inputs
    of policy_step (observations, actions, old log π, normalized advantages, the kept samples
    and the seeds that step), each ``[S, samples, ...]``."""
    config = trpo.Config(env=env_id, seed=seeds[0], **TINY)
    training.seed_everything(seeds[0], 1)
    envs = training.make_seed_envs(config, list(seeds), torch.device("cpu"))
    agents = build_seeded(lambda n: trpo.build_agent(config, envs.spaces, n), list(seeds))
    rollout = SeedRollout(config.num_steps, len(seeds), config.num_envs, envs.spaces)
    everyone = [True] * len(seeds)
    rollout.collect(envs, agents, SeedGenerators(list(seeds)), everyone)
    _, advantages, _ = rollout.gae(agents, config.gamma, config.lam, everyone)
    kept = rollout.per_seed(rollout.valid)
    batch = (
        rollout.per_seed(rollout.observations),
        rollout.per_seed(rollout.actions),
        rollout.per_seed(rollout.log_probs),
        normalize_advantages(rollout.per_seed(advantages), mask=kept, dim=1),
        kept,
        torch.ones(len(seeds), dtype=torch.bool),
    )
    return config, agents, batch


def mean_kls(agents, old_policy, observations, kept) -> torch.Tensor:
    return masked_mean(agents.kl_from(old_policy, observations), kept, dim=1)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_an_accepted_step_improves_the_surrogate_within_the_kl_radius(env_id):
    config, agents, batch = rollout_batch(env_id, seeds=(0, 1))
    observations, kept = batch[0], batch[4]
    with torch.no_grad():
        old_policy = tuple(
            None if x is None else x.clone() for x in agents.distribution(observations)
        )
    stepped = trpo.policy_step(config, agents, *batch)
    assert stepped.accepted.all()
    assert ((stepped.kl > 0) & (stepped.kl <= config.max_kl)).all()
    assert (stepped.improvement > 0).all()
    # the reported KL is each seed's true mean KL between its policy before and after the step
    with torch.no_grad():
        kls = mean_kls(agents, old_policy, observations, kept)
    torch.testing.assert_close(kls.double(), stepped.kl, rtol=1e-5, atol=0)


def test_each_seed_of_a_batched_step_takes_the_step_it_takes_alone():
    config, agents, batch = rollout_batch("Pendulum-v1", seeds=(0, 1, 2))
    stepped = trpo.policy_step(config, agents, *batch)
    for index, seed in enumerate((0, 1, 2)):
        _, alone, alone_batch = rollout_batch("Pendulum-v1", seeds=(seed,))
        alone_stepped = trpo.policy_step(config, alone, *alone_batch)
        for field, together in zip(PolicyStepFields, stepped, strict=True):
            # the residual after CG is float32 noise (~1e-8 of a gradient of norm ~1e-1)
            close = {"abs": 1e-6} if field == "cg_residual" else {"rel": 1e-4, "abs": 1e-9}
            assert float(together[index]) == pytest.approx(
                float(alone_stepped._asdict()[field][0]), **close
            ), field
        for name, parameter in agents.named_parameters():
            torch.testing.assert_close(
                parameter[index], dict(alone.named_parameters())[name][0], rtol=1e-5, atol=1e-6
            )


def test_a_rejected_step_leaves_the_policy_exactly_unchanged(monkeypatch):
    config, agents, batch = rollout_batch("CartPole-v1", seeds=(0, 1))
    parameters = trpo.actor_parameters(agents)
    before = [p.detach().clone() for p in parameters]

    def rejecting(step, evaluate, max_kl, backtrack_ratio, max_backtracks):
        evaluate(step)  # the search moves the parameters while it tries candidates ...
        evaluate(step * 0.5)
        rows = len(step)
        no = torch.zeros(rows, dtype=torch.float64)
        return LineSearchResult(
            torch.zeros(rows, dtype=torch.bool),
            torch.zeros_like(step),
            torch.full((rows,), max_backtracks),
            no,
            no,
        )

    monkeypatch.setattr(trpo, "backtracking_line_search", rejecting)
    stepped = trpo.policy_step(config, agents, *batch)
    assert not stepped.accepted.any() and (stepped.kl == 0).all()
    assert (stepped.improvement == 0).all()
    for p, old in zip(parameters, before, strict=True):  # ... and a rejection restores them
        assert torch.equal(p, old)


def test_the_natural_gradient_mode_takes_the_full_step_of_about_delta():
    config, agents, batch = rollout_batch("CartPole-v1")
    natural = dataclasses_replace(config, line_search=False, max_kl=0.02)
    stepped = trpo.policy_step(natural, agents, *batch)
    assert stepped.accepted.all() and (stepped.backtracks == 0).all()
    # the step is sized so that the quadratic model ½ΔθᵀFΔθ of the KL is δ; the true KL of a
    # small step is close to it (the damping λ = 0.1 makes the step a little shorter)
    assert 0.3 * 0.02 < float(stepped.kl[0]) < 1.5 * 0.02


def test_equal_advantages_and_stopped_seeds_give_no_step_instead_of_an_error():
    # seed 0: advantages all 0 (nothing to climb); seed 1 stopped; seed 2 steps as usual
    config, agents, batch = rollout_batch("CartPole-v1", seeds=(0, 1, 2))
    observations, actions, old_log_probs, advantages, kept, _ = batch
    parameters = trpo.actor_parameters(agents)
    before = [p.detach().clone() for p in parameters]
    advantages = advantages.clone()
    advantages[0] = 0.0
    stepping = torch.tensor([True, False, True])
    stepped = trpo.policy_step(
        config, agents, observations, actions, old_log_probs, advantages, kept, stepping
    )
    assert stepped.accepted.tolist() == [False, False, True]
    assert stepped.backtracks[:2].tolist() == [0, 0] and (stepped.kl[:2] == 0).all()
    for p, old in zip(parameters, before, strict=True):
        assert torch.equal(p[:2], old[:2]) and not torch.equal(p[2], old[2])


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


# --- many seeds in one process ------------------------------------------------------------------

SEEDED = {**TINY, "eval_every": 512, "eval_episodes": 2, "checkpoint_every": 512}
# the columns computed from float sums; the others (counts, returns, evaluations, accepted and
# backtracks) must be equal to the digit, or the seeds acted differently
AVERAGED = ("surrogate_improvement", "kl", "value_loss", "entropy", "grad_norm")


def assert_same_run(rows: list[dict], alone: list[dict], continuous: bool) -> None:
    """A seed trained beside others against that seed alone: every count and decision equal,
    the averaged metrics to float32 rounding (S seeds in one batched matmul sum in another
    order than one), the CG residual (float32 noise, ~1e-8) to 1e-6. Continuous actions carry
    the rounding into the returns, so theirs are compared to 1e-4 relative."""
    assert len(rows) == len(alone) > 0
    for row, reference in zip(without_timing(rows), without_timing(alone), strict=True):
        assert row.keys() == reference.keys()
        for name, value in row.items():
            if value is None or reference[name] is None:
                assert value == reference[name], (row["step"], name)
            elif name in AVERAGED or name == "explained_variance":
                assert value == pytest.approx(reference[name], rel=1e-4, abs=1e-6), name
            elif name == "cg_residual":
                assert value == pytest.approx(reference[name], abs=1e-6), name
            elif continuous and "return" in name:
                assert value == pytest.approx(reference[name], rel=1e-4), name
            else:
                assert value == reference[name], (row["step"], name)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_each_seed_of_a_batch_equals_that_seed_trained_alone(env_id, tmp_path):
    config = trpo.Config(env=env_id, **SEEDED)
    together = trpo.train_seeds(config, [3, 8], tmp_path / "both")
    for seed, history in zip([3, 8], together, strict=True):
        alone = trpo.train(dataclasses_replace(config, seed=seed), tmp_path / f"alone{seed}")
        assert_same_run(history.rows, alone.rows, continuous=env_id == "Pendulum-v1")
        assert "failed" not in history.summary
        assert all(row["step_accepted"] == 1.0 for row in alone.rows)
    assert without_timing(together[0].rows) != without_timing(together[1].rows)


def test_a_seed_whose_rewards_turn_nan_fails_alone(tmp_path, monkeypatch):
    config = trpo.Config(env="CartPole-v1", **SEEDED)
    alone = trpo.train(dataclasses_replace(config, seed=3), tmp_path / "alone")
    step, calls = SeedEnvs.step, []

    def step_with_nan(self, actions, active):  # seed 8's reward in the 2nd rollout turns NaN
        result = step(self, actions, active)
        calls.append(1)
        if len(calls) == 128 + 7:
            result.rewards[1, 0] = math.nan
        return result

    monkeypatch.setattr(SeedEnvs, "step", step_with_nan)
    healthy, broken = trpo.train_seeds(config, [3, 8], tmp_path / "both")
    assert "failed" not in healthy.summary
    assert_same_run(healthy.rows, alone.rows, continuous=False)
    assert "a reward" in broken.summary["failed"] and "nan" in broken.summary["failed"]
    assert [row["update"] for row in broken.rows] == [1]
    state = torch.load(
        tmp_path / "both" / "seed8" / "checkpoints" / "latest.pt", weights_only=False
    )
    assert state["steps"] == 512
    assert all(torch.isfinite(p).all() for p in state["modules"]["agent"].values())


def test_two_seeds_resumed_from_their_checkpoints_equal_an_uninterrupted_run(tmp_path):
    config = trpo.Config(env="Pendulum-v1", **SEEDED)
    whole = trpo.train_seeds(config, [3, 8], tmp_path / "whole")
    trpo.train_seeds(dataclasses_replace(config, total_steps=512), [3, 8], tmp_path / "cut")
    resumed = trpo.train_seeds(config, [3, 8], tmp_path / "cut", resume=True)
    for a, b in zip(whole, resumed, strict=True):
        assert without_timing(a.rows) == without_timing(b.rows)
