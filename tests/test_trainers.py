"""The trainers end to end: files, determinism, resume, truncation, failures and bad input."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch
import toy_envs
from conftest import dataclasses_replace, read_rows, without_timing

import rlgrad
from rlgrad.app import load_agent
from rlgrad.app.registry import resume
from rlgrad.returns import gae
from rlgrad.support import configs
from rlgrad.support.envs import VectorEnv
from rlgrad.support.evaluation import evaluate
from rlgrad.support.rollout import Rollout
from rlgrad.support.run_format import solved_at
from rlgrad.support.runs import TrainingError
from rlgrad.trainers import a2c, ppo, reinforce

toy_envs.register()

TINY = {"num_envs": 4, "eval_episodes": 2, "checkpoint_every": 256}
TINY_PPO = {**TINY, "num_steps": 32, "minibatch_size": 64, "epochs": 2}
TRAINERS = {
    "ppo": (ppo, {**TINY_PPO, "total_steps": 512, "eval_every": 256}),
    "a2c": (a2c, {**TINY, "total_steps": 400, "eval_every": 200}),
    "reinforce": (reinforce, {**TINY, "total_steps": 300, "eval_every": 150}),
}


@pytest.mark.parametrize("name", sorted(TRAINERS))
def test_a_short_run_writes_every_file_and_changes_every_parameter(name, tmp_path):
    trainer, fields = TRAINERS[name]
    config = trainer.Config(env="CartPole-v1", keep_checkpoints=10, **fields)
    history = trainer.train(config, tmp_path / "run")
    # the run's own starting weights: its first checkpoint is written before any update
    start = torch.load(tmp_path / "run" / "checkpoints" / "step_0000000000.pt", weights_only=False)
    assert start["steps"] == 0
    initial = start["modules"]["agent"]

    run_dir = tmp_path / "run"
    for name_ in ("config.json", "metrics.csv", "summary.json", "learning_curve.png"):
        assert (run_dir / name_).exists(), name_
    assert (run_dir / "checkpoints" / "latest.pt").exists()
    assert list(run_dir.glob("events.out.tfevents.*")), "TensorBoard is installed here"
    rows = read_rows(run_dir)
    assert len(rows) == len(history.rows) > 1
    for column in ("step", "wall_s", "train_s", "sps", "episode_return_mean", "eval_return_mean"):
        assert column in rows[0]
    for column in ("policy_loss", "entropy", "grad_norm"):
        assert all(math.isfinite(float(r[column])) for r in rows)
    assert int(rows[-1]["step"]) >= config.total_steps
    assert rows[-1]["eval_return_mean"] is not None  # the last update always evaluates
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == int(rows[-1]["step"]) and summary["threshold"] == 475.0
    trained = load_agent(run_dir).network
    names = [name for name, _ in trained.named_parameters()]
    assert names and set(names) <= set(initial)
    for key, after in trained.named_parameters():
        assert not torch.equal(initial[key], after.detach()), f"{key} did not change"


def test_ppo_handles_continuous_actions_within_the_bounds(tmp_path):
    config = ppo.Config(env="Pendulum-v1", total_steps=512, eval_every=0, **TINY_PPO)
    history = ppo.train(config, tmp_path / "run")
    assert all(math.isfinite(r["policy_loss"]) for r in history.rows)
    agent = load_agent(tmp_path / "run")
    actions = agent.act(np.array([[1.0, 0.0, 8.0]] * 3, np.float32), deterministic=False)
    assert actions.shape == (3, 1) and np.all(np.abs(actions) <= 2.0)
    assert agent.act(np.array([1.0, 0.0, 0.0], np.float32)).shape == (1,)


@pytest.mark.parametrize("name", ["ppo", "reinforce"])
def test_the_same_seed_gives_the_same_metrics(name, tmp_path):
    trainer, fields = TRAINERS[name]
    config = trainer.Config(env="CartPole-v1", **fields, normalize_obs=True)
    first = trainer.train(config, tmp_path / "a")
    second = trainer.train(config, tmp_path / "b")
    assert without_timing(read_rows(tmp_path / "a")) == without_timing(read_rows(tmp_path / "b"))
    assert without_timing(first.rows) == without_timing(second.rows)
    other = trainer.train(dataclasses_replace(config, seed=1), tmp_path / "c")
    assert without_timing(other.rows) != without_timing(first.rows)


@pytest.mark.parametrize("name", ["ppo", "a2c"])
def test_resuming_from_a_checkpoint_continues_exactly(name, tmp_path):
    trainer, fields = TRAINERS[name]
    config = trainer.Config(
        env="CartPole-v1", **{**fields, "checkpoint_every": 128}, normalize_obs=True
    )
    config = dataclasses_replace(config, normalize_reward=True)
    whole = trainer.train(config, tmp_path / "whole")
    # A run "stopped" at its first periodic checkpoint: everything after it is gone.
    shutil.copytree(tmp_path / "whole", tmp_path / "cut")
    checkpoints = sorted((tmp_path / "cut" / "checkpoints").glob("step_*.pt"))
    first = checkpoints[0]
    assert 0 < int(first.stem.split("_")[1]) < config.total_steps
    resumed = resume(tmp_path / "cut", checkpoint=first)
    assert without_timing(resumed.rows) == without_timing(whole.rows)
    assert without_timing(read_rows(tmp_path / "cut")) == without_timing(
        read_rows(tmp_path / "whole")
    )
    a = load_agent(tmp_path / "whole").network.state_dict()
    b = load_agent(tmp_path / "cut").network.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_reward_normalization_survives_a_step_where_every_env_resets():
    # Countdown's time limit ends every copy's episode at the same step, so the next step is an
    # autoreset step everywhere and has no valid reward to update the statistics with.
    env = VectorEnv("rlgrad-test/Countdown-v0", 3, seed=0, normalize_reward=True, gamma=0.9)
    for _ in range(12):
        step = env.step(np.zeros(3, np.int64))
        assert np.isfinite(step.rewards).all()
    assert np.isfinite(env.return_stats.var) and env.return_stats.var > 0


class CountingCritic:
    """A stand-in agent whose V(s) is the step counter t of the Countdown observation."""

    def value(self, observations):
        return observations[:, 0] * 10

    def sample(self, observations, generator):
        zeros = torch.zeros(len(observations))
        return zeros.long(), zeros

    def env_actions(self, actions):
        return actions.numpy()


@pytest.mark.parametrize(
    "env_id, terminal", [("Countdown-v0", False), ("CountdownTerminal-v0", True)]
)
def test_a_time_limit_bootstraps_from_the_final_observation_and_a_termination_does_not(
    env_id, terminal
):
    env = VectorEnv(f"rlgrad-test/{env_id}", 2, seed=0)
    rollout = Rollout(12, 2, env.spaces)
    agent = CountingCritic()
    rollout.collect(env, agent, torch.Generator())
    values, next_values = rollout.values(agent)
    # Steps 0-4 are the first episode (t = 0..4); step 4 ends it, with t = 5 in the observation.
    assert bool(rollout.terminated[4].all()) == terminal
    assert bool(rollout.truncated[4].all()) != terminal
    assert torch.allclose(next_values[4], torch.tensor(5.0))  # the true final observation
    assert not rollout.valid[5].any() and rollout.valid[6].all()  # Gymnasium's autoreset step
    assert torch.allclose(values[6], torch.tensor(0.0))  # a new episode starts at t = 0
    advantages = gae(
        rollout.rewards, values, next_values, rollout.terminated, rollout.truncated, 0.9, 0.0
    )
    # δ_4 = r + γ(1 − term)V(s_5) − V(s_4) = 1 + 0.9·5 − 4 = 1.5, or 1 − 4 = −3 at a termination
    assert torch.allclose(advantages[4], torch.tensor(-3.0 if terminal else 1.5))


@pytest.mark.parametrize(
    "env_id, expected", [("Countdown-v0", 10.0), ("CountdownTerminal-v0", 1.0)]
)
def test_ppo_learns_the_value_of_a_time_limited_task_as_if_it_went_on(env_id, expected, tmp_path):
    # With γ = 0.9 and reward 1 per step, a time limit that bootstraps makes every state worth
    # 1/(1 − γ) = 10; an episode that terminates after its 5th step leaves its last state worth 1.
    # Treating the time limit as a death would give the truncated task the terminal values.
    config = ppo.Config(
        env=f"rlgrad-test/{env_id}",
        gamma=0.9,
        lr=3e-3,
        anneal_lr=False,
        total_steps=6000,
        eval_every=0,
        **{**TINY_PPO, "epochs": 4, "checkpoint_every": 0},
    )
    ppo.train(config, tmp_path / "run")
    critic = load_agent(tmp_path / "run").network
    last_state = torch.tensor([[0.4, 1.0]])  # t = 4, the state whose step ends the episode
    assert critic.value(last_state).item() == pytest.approx(expected, abs=0.15 * expected)


def test_a_non_finite_reward_stops_the_run_with_the_step_and_keeps_a_checkpoint(tmp_path):
    config = ppo.Config(
        env="rlgrad-test/CountdownNaN-v0", total_steps=4096, eval_every=0, **TINY_PPO
    )
    with pytest.raises(TrainingError, match=r"at step \d+ .*last good checkpoint"):
        ppo.train(config, tmp_path / "run")
    latest = tmp_path / "run" / "checkpoints" / "latest.pt"
    state = torch.load(latest, weights_only=False)
    assert 0 < state["steps"] < 4096
    assert all(torch.isfinite(p).all() for p in state["modules"]["agent"].values())


def test_solved_needs_three_consecutive_evaluations_at_the_threshold():
    rows = [
        {"step": s, "eval_return_mean": r}
        for s, r in [(1, 480), (2, 400), (3, 476), (4, None), (5, 500), (6, 475), (7, 10)]
    ]
    assert solved_at(rows, 475)["step"] == 3
    assert solved_at(rows, 490) is None
    assert solved_at(rows, None) is None


def test_stop_when_solved_ends_the_run_at_its_third_evaluation_at_the_threshold(tmp_path):
    # a threshold any policy meets: evaluations at 128, 256, 384 solve it, so the run ends
    # there instead of at total_steps, and the run up to that point is the full run's
    fields = {**TINY_PPO, "total_steps": 2048, "eval_every": 128, "eval_threshold": 1.0}
    full = ppo.train(ppo.Config(env="CartPole-v1", **fields), tmp_path / "full")
    early = ppo.train(
        ppo.Config(env="CartPole-v1", stop_when_solved=True, **fields), tmp_path / "early"
    )
    assert early.summary["solved_step"] == full.summary["solved_step"] == 128
    assert early.rows[-1]["step"] == 384 < full.rows[-1]["step"] == 2048
    assert without_timing(early.rows) == without_timing(full.rows[:3])
    assert not early.summary["interrupted"]


class _StartRecorder:
    """An agent that applies no torque and remembers the observations it first sees."""

    def __init__(self):
        self.starts = None

    def mode(self, observations):
        if self.starts is None:
            self.starts = observations.clone()
        return torch.zeros(len(observations), 1)

    def env_actions(self, actions):
        return actions.numpy()


def _evaluation_starts(seed: int) -> set[tuple[float, ...]]:
    agent = _StartRecorder()
    evaluate(agent, "Pendulum-v1", episodes=10, seed=seed)
    return {tuple(row) for row in agent.starts.tolist()}


def test_each_training_seed_evaluates_on_its_own_start_states():
    zero, one = _evaluation_starts(0), _evaluation_starts(1)
    assert len(zero) == len(one) == 10
    assert zero == _evaluation_starts(0)
    # With env seeds seed + offset + i, seeds 0 and 1 shared 9 of their 10 starts.
    assert not zero & one


def test_config_field_docs_and_overrides_parse_every_type():
    docs = configs.field_docs(ppo.Config)
    assert docs["clip_eps"].startswith("Clip range ε")
    assert "Gymnasium environment id" in docs["env"]  # inherited from RunConfig
    config = configs.with_overrides(
        ppo.Config(),
        {
            "hidden_sizes": "32,16",
            "target_kl": "none",
            "anneal_lr": "false",
            "lr": "1e-3",
            "total_steps": "2e4",
        },
        "ppo",
    )
    assert config.hidden_sizes == (32, 16) and config.target_kl is None
    assert config.anneal_lr is False and config.lr == 1e-3 and config.total_steps == 20000
    with pytest.raises(ValueError, match="did you mean 'clip_eps'"):
        configs.with_overrides(ppo.Config(), {"clip_epsilon": "0.1"}, "ppo")
    with pytest.raises(ValueError, match=r"'anneal_lr'.*true or false"):
        configs.with_overrides(ppo.Config(), {"anneal_lr": "maybe"}, "ppo")


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"num_envs": 0}, "'num_envs' must be > 0; got 0"),
        ({"minibatch_size": 4096}, "'minibatch_size' = 4096 is larger than a rollout"),
        ({"lam": 1.5}, r"'lam' must be in \[0, 1\]; got 1.5"),
        ({"hidden_sizes": (64, 0)}, "'hidden_sizes' must be positive widths"),
        ({"target_kl": -1.0}, "'target_kl' must be > 0 or none"),
        ({"env": "NoSuchEnv-v0"}, "unknown environment 'NoSuchEnv-v0'"),
        ({"env": "Blackjack-v1"}, "need a Box observation space"),
    ],
)
def test_bad_configs_fail_before_training_with_a_message_naming_the_field(
    fields, message, tmp_path
):
    config = ppo.Config(**{"total_steps": 256, **fields})
    with pytest.raises(ValueError, match=message):
        ppo.train(config, tmp_path / "run")


def test_a_run_directory_is_never_overwritten(tmp_path):
    trainer, fields = TRAINERS["a2c"]
    config = a2c.Config(**{**fields, "total_steps": 40, "eval_every": 0})
    trainer.train(config, tmp_path / "run")
    with pytest.raises(ValueError, match="already holds a run; resume it"):
        trainer.train(config, tmp_path / "run")


def test_only_a_non_finite_formula_input_counts_as_divergence(tmp_path, monkeypatch):
    # a NonFiniteError inside training stops the run as diverged (TrainingError, checkpoint kept)
    def diverged(*args, **kwargs):
        raise rlgrad.NonFiniteError("ppo_clip_loss(): 'log_probs' must be finite; got nan")

    monkeypatch.setattr(ppo, "ppo_clip_loss", diverged)
    config = ppo.Config(env="CartPole-v1", total_steps=256, eval_every=0, **TINY_PPO)
    with pytest.raises(TrainingError, match="non-finite"):
        ppo.train(config, tmp_path / "a")

    # any other ValueError is a bug or a bad argument and surfaces as itself
    def broken(*args, **kwargs):
        raise ValueError("ppo_clip_loss(): 'advantages' must have the shape of 'log_probs'")

    monkeypatch.setattr(ppo, "ppo_clip_loss", broken)
    with pytest.raises(ValueError, match="must have the shape") as error:
        ppo.train(config, tmp_path / "b")
    assert not isinstance(error.value, TrainingError)
