"""DQN end to end: the replay buffer's streams and flags, n-step windows, the variants,
determinism, resume (with and without the buffer) and bad input."""

from __future__ import annotations

import json
import math
import re
import shutil

import numpy as np
import pytest
import torch
import toy_envs
from conftest import dataclasses_replace, read_rows, without_timing

import rlgrad
from rlgrad.app import load_agent
from rlgrad.app.registry import resume
from rlgrad.support import offpolicy
from rlgrad.support.envs import SeedEnvs, VectorEnv
from rlgrad.support.nets import QNetwork, seed_epsilon_greedy
from rlgrad.support.replay import Batch, ReplayBuffer, SeedReplayBuffer
from rlgrad.support.runs import TrainingError
from rlgrad.support.seeded import build_seeded
from rlgrad.trainers import dqn

toy_envs.register()

GAMMA = 0.9
TINY = {
    "total_steps": 600,
    "learning_starts": 150,
    "batch_size": 32,
    "train_frequency": 2,
    "target_update_every": 50,
    "log_every": 100,
    "eval_every": 300,
    "eval_episodes": 2,
    "checkpoint_every": 200,
}


def filled_buffer(env_id: str, steps: int, capacity: int = 1000, num_envs: int = 2):
    env = VectorEnv(f"rlgrad-test/{env_id}", num_envs, seed=0)
    buffer = ReplayBuffer(capacity, num_envs, env.spaces)
    for _ in range(steps):
        observations = env.observations
        actions = torch.zeros(num_envs, dtype=torch.int64)
        buffer.add(observations, actions, env.step(actions.numpy()))
    return buffer


def sampled_transitions(buffer: ReplayBuffer, n_step: int, draws: int = 2000) -> set[tuple]:
    """Every distinct (t, next t, K, return, terminated) the buffer samples, t from Countdown's
    observation [t / 10, 1]."""
    batch = buffer.sample(draws, torch.Generator().manual_seed(0), n_step, GAMMA)
    times = (batch.observations[:, 0] * 10).round().long()
    next_times = (batch.next_observations[:, 0] * 10).round().long()
    steps = torch.log(batch.discounts) / math.log(GAMMA)
    return {
        (int(t), int(u), round(float(k)), round(float(g), 5), bool(d))
        for t, u, k, g, d in zip(
            times, next_times, steps, batch.returns, batch.terminated, strict=True
        )
    }


def window_return(steps: int) -> float:
    return round(sum(GAMMA**k for k in range(steps)), 5)


STREAMS = [("Countdown-v0", False), ("CountdownTerminal-v0", True)]


@pytest.mark.parametrize("env_id, terminal", STREAMS)
def test_the_buffer_keeps_the_true_final_observation_and_the_two_flags_apart(env_id, terminal):
    # Countdown episodes end after 5 steps (t = 0..4); step 5 of the stream is Gymnasium's
    # autoreset step and must never be sampled.
    buffer = filled_buffer(env_id, steps=12)
    seen = sampled_transitions(buffer, n_step=1)
    expected = {(t, t + 1, 1, 1.0, terminal and t == 4) for t in range(5)}
    assert seen == expected  # t = 4 → 5: the final observation, never the reset one (t = 0)
    assert len(buffer) == 2 * 10  # 12 steps per env, less the 2 autoreset steps


@pytest.mark.parametrize("env_id, terminal", STREAMS)
def test_n_step_windows_stop_at_an_episode_end_and_at_the_newest_step(env_id, terminal):
    # 13 steps: episodes at stream steps 0-4 and 6-10, a third starts at step 12 (t = 0), whose
    # window reaches the newest stored step after one step and is cut there.
    buffer = filled_buffer(env_id, steps=13)
    seen = sampled_transitions(buffer, n_step=3)
    expected = set()
    for t in range(5):
        k = min(3, 5 - t)
        expected.add((t, t + k, k, window_return(k), terminal and t + k == 5))
    expected.add((0, 1, 1, 1.0, False))  # the newest transition: cut by the stream's end
    assert seen == expected


def test_a_wrapped_buffer_never_pairs_an_observation_with_an_overwritten_successor():
    buffer = filled_buffer("Countdown-v0", steps=23, capacity=14, num_envs=2)  # 7 slots per env
    assert buffer.size == buffer.slots == 7
    for n_step in (1, 3):
        for t, next_t, k, _, _ in sampled_transitions(buffer, n_step):
            assert next_t == t + k, (t, next_t, k)
    assert len(buffer) < 14  # the write position and autoreset steps are not usable
    assert len(buffer) == int(buffer.usable.sum())  # the running count matches a full count


def test_the_running_count_of_usable_transitions_matches_a_full_count_at_every_step():
    env = VectorEnv("rlgrad-test/Countdown-v0", 3, seed=0)
    buffer = ReplayBuffer(12, 3, env.spaces)  # 4 slots per environment: it wraps often
    counts = []
    for _ in range(30):
        observations, actions = env.observations, torch.zeros(3, dtype=torch.int64)
        buffer.add(observations, actions, env.step(actions.numpy()))
        counts.append((len(buffer), int(buffer.usable.sum())))
    assert all(running == full for running, full in counts)
    assert {running for running, _ in counts} >= {3, 6}  # it grew and held steady


def test_the_buffer_state_round_trips():
    buffer = filled_buffer("Countdown-v0", steps=9)
    copy = ReplayBuffer(1000, 2, buffer_spaces())
    copy.load_state_dict(buffer.state_dict())
    a = buffer.sample(64, torch.Generator().manual_seed(1), 2, GAMMA)
    b = copy.sample(64, torch.Generator().manual_seed(1), 2, GAMMA)
    for name in ("observations", "actions", "returns", "discounts", "next_observations"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    empty = ReplayBuffer(1000, 2, buffer_spaces(), in_checkpoints=False)
    assert empty.state_dict() == {}


def buffer_spaces():
    return VectorEnv("rlgrad-test/Countdown-v0", 1, seed=0).spaces


def test_dueling_heads_centre_the_advantages():
    spaces = VectorEnv("CartPole-v1", 1, seed=0).spaces
    torch.manual_seed(0)
    network = QNetwork(spaces, (16, 16), "relu", dueling=True)
    observations = torch.randn(5, 4)
    features = network.torso(observations)
    values = network.value_head(features).squeeze(-1)
    advantages = network.advantage_head(features)
    q_values = network(observations)
    torch.testing.assert_close(q_values.mean(dim=-1), values)
    torch.testing.assert_close(
        q_values - values[:, None], advantages - advantages.mean(-1, keepdim=True)
    )


def test_epsilon_falls_linearly_then_stays():
    # D = 0.5 · 1000: 1 → 0.1 over 500 steps, halfway at 250, then constant
    values = [rlgrad.epsilon_schedule(s, 500, 1.0, 0.1) for s in (0, 250, 500, 900)]
    assert values == pytest.approx([1.0, 0.55, 0.1, 0.1])
    assert rlgrad.epsilon_schedule(0, 0, 1.0, 0.1) == pytest.approx(0.1)  # no decay: ε_end
    with pytest.raises(ValueError, match=r"epsilon_schedule\(\): 'start' must lie in \[0, 1\]"):
        rlgrad.epsilon_schedule(0, 10, 1.5, 0.1)
    passed = [offpolicy.times_due(p, s, 4) for p, s in [(0, 3), (3, 4), (6, 14), (7, 8)]]
    assert passed == [0, 1, 2, 1]


def test_the_off_policy_schedule_learns_only_when_due_and_ready():
    schedule = offpolicy.Schedule(
        learning_starts=100, batch_size=32, train_frequency=4, gradient_steps=3,
        target_update_every=10,
    )  # fmt: skip
    # from 96 to 104 steps (8 envs): 104 ≥ learning_starts, multiples of 4 passed: 100, 104
    assert schedule.gradient_steps_due(96, 104, stored=200) == 2 * 3
    assert schedule.gradient_steps_due(88, 96, stored=200) == 0  # before learning_starts
    assert schedule.gradient_steps_due(96, 104, stored=31) == 0  # less than a minibatch stored
    assert schedule.target_update_due(96, 104) and not schedule.target_update_due(101, 104)


def test_the_replay_buffer_keeps_continuous_actions_as_float_vectors():
    env = VectorEnv("Pendulum-v1", 2, seed=0)
    replay = ReplayBuffer(16, 2, env.spaces)
    assert replay.actions.dtype == torch.float32 and replay.actions.shape == (8, 2, 1)
    taken = []
    for i in range(5):
        actions = torch.tensor([[0.25 * i], [-0.5 * i]])
        observations = env.observations
        replay.add(observations, actions, env.step(actions.numpy()))
        taken.append(actions)
    batch = replay.sample(64, torch.Generator().manual_seed(0), n_step=1, gamma=0.9)
    assert batch.actions.dtype == torch.float32 and batch.actions.shape == (64, 1)
    stored = {round(float(a), 6) for a in torch.cat(taken).flatten()}
    assert {round(float(a), 6) for a in batch.actions.flatten()} <= stored
    env.close()


@pytest.mark.parametrize(
    "variant",
    [
        {},
        {"double": True, "dueling": True, "n_step": 3, "loss": "huber"},
        {"tau": 0.05, "num_envs": 4, "gradient_steps": 2},
    ],
)
def test_a_short_run_trains_every_parameter_and_loads_back(variant, tmp_path):
    config = dqn.Config(env="CartPole-v1", **{**TINY, **variant, "keep_checkpoints": 100})
    history = dqn.train(config, tmp_path / "run")
    # the run's own starting weights: its first checkpoint is written before any update
    start = torch.load(tmp_path / "run" / "checkpoints" / "step_0000000000.pt", weights_only=False)
    assert start["steps"] == 0
    initial = start["modules"]["agent"]
    rows = read_rows(tmp_path / "run")
    assert int(rows[-1]["step"]) == config.total_steps and rows[-1]["eval_return_mean"] is not None
    trained_rows = [r for r in rows if r["loss"] is not None]
    assert trained_rows and all(math.isfinite(float(r["loss"])) for r in trained_rows)
    assert rows[0]["loss"] is None  # no gradient step before learning_starts
    assert float(rows[-1]["epsilon"]) < float(rows[0]["epsilon"])
    expected_updates = (config.total_steps - config.learning_starts) // config.train_frequency
    assert float(rows[-1]["total_gradient_steps"]) == pytest.approx(
        expected_updates * config.gradient_steps, abs=config.num_envs * config.gradient_steps
    )
    agent = load_agent(tmp_path / "run")
    names = [name for name, _ in agent.network.named_parameters()]
    assert names and set(names) <= set(initial)
    for key, after in agent.network.named_parameters():
        assert not torch.equal(initial[key], after.detach()), f"{key} did not change"
    action = agent.act(np.zeros(4, np.float32))
    assert action.shape == () and action in (0, 1)
    assert history.summary["threshold"] == 475.0


@pytest.mark.parametrize(
    "env_id, expected", [("Countdown-v0", 10.0), ("CountdownTerminal-v0", 1.0)]
)
def test_dqn_values_a_time_limited_state_as_if_the_task_went_on(env_id, expected, tmp_path):
    # Reward 1 a step, γ = 0.9: with a bootstrapping time limit every state is worth 1/(1 − γ) =
    # 10; when the 5th step terminates, the state before it is worth 1. (The final observation
    # t = 5 is never a training state, so Q there is extrapolated: the tolerance is as PPO's.)
    config = dqn.Config(
        env=f"rlgrad-test/{env_id}",
        gamma=0.9,
        lr=3e-3,
        total_steps=4000,
        num_envs=4,
        learning_starts=200,
        target_update_every=100,
        eval_every=0,
        eval_episodes=2,
        checkpoint_every=0,
    )
    dqn.train(config, tmp_path / "run")
    q_values = load_agent(tmp_path / "run").network(torch.tensor([[0.4, 1.0]]))
    assert q_values.min().item() == pytest.approx(expected, abs=0.15 * expected)
    assert q_values.max().item() == pytest.approx(expected, abs=0.15 * expected)


def test_the_same_seed_gives_the_same_metrics(tmp_path):
    config = dqn.Config(env="CartPole-v1", **TINY, double=True, n_step=2)
    first = dqn.train(config, tmp_path / "a")
    second = dqn.train(config, tmp_path / "b")
    assert without_timing(first.rows) == without_timing(second.rows)
    other = dqn.train(dataclasses_replace(config, seed=1), tmp_path / "c")
    assert without_timing(other.rows) != without_timing(first.rows)


def test_resuming_continues_exactly_with_the_replay_buffer(tmp_path):
    config = dqn.Config(env="CartPole-v1", **TINY, num_envs=2, tau=0.5)
    whole = dqn.train(config, tmp_path / "whole")
    shutil.copytree(tmp_path / "whole", tmp_path / "cut")
    first = sorted((tmp_path / "cut" / "checkpoints").glob("step_*.pt"))[0]
    assert 0 < int(first.stem.split("_")[1]) < config.total_steps
    resumed = resume(tmp_path / "cut", checkpoint=first)
    assert without_timing(resumed.rows) == without_timing(whole.rows)
    a = load_agent(tmp_path / "whole").network.state_dict()
    b = load_agent(tmp_path / "cut").network.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_checkpoint_without_the_buffer_is_smaller_and_still_resumes(tmp_path):
    config = dqn.Config(env="CartPole-v1", **TINY)
    dqn.train(config, tmp_path / "with")
    lean = dataclasses_replace(config, checkpoint_replay=False)
    whole = dqn.train(lean, tmp_path / "without")
    size = {
        name: (tmp_path / name / "checkpoints" / "latest.pt").stat().st_size
        for name in ("with", "without")
    }
    assert size["without"] < size["with"]
    shutil.rmtree(tmp_path / "without" / "checkpoints")
    shutil.copytree(tmp_path / "with" / "checkpoints", tmp_path / "without" / "checkpoints")
    first = sorted((tmp_path / "without" / "checkpoints").glob("step_*.pt"))[0]
    # a checkpoint without the buffer: the run goes on from an empty buffer to the end
    state = torch.load(first, weights_only=False)
    state["modules"]["replay"] = {}
    torch.save(state, first)
    resumed = resume(tmp_path / "without", checkpoint=first)
    assert resumed.rows[-1]["step"] == config.total_steps
    assert len(resumed.rows) == len(whole.rows)


def test_dqn_refuses_continuous_actions_and_a_buffer_smaller_than_a_batch(tmp_path):
    with pytest.raises(ValueError, match=r"Discrete action space.*sac, td3, crossq, ppo or a2c"):
        dqn.train(dqn.Config(env="Pendulum-v1", total_steps=100), tmp_path / "a")
    with pytest.raises(ValueError, match=r"'buffer_size' = 64 is smaller than a batch.*128"):
        dqn.train(dqn.Config(buffer_size=64, batch_size=128), tmp_path / "b")
    with pytest.raises(ValueError, match="'loss' must be one of mse, huber; got 'l1'"):
        dqn.check(dqn.Config(loss="l1"))
    with pytest.raises(ValueError, match="n_step = 8 needs more"):
        dqn.check(dqn.Config(buffer_size=16, batch_size=8, num_envs=2, n_step=8))


def test_summary_names_the_threshold_and_the_final_evaluation(tmp_path):
    # summary.json names the threshold (CartPole-v1's registered reward_threshold, 475, unless
    # eval_threshold replaces it), the last evaluation of metrics.csv, and the first of three
    # evaluations in a row at or above the threshold
    config = dqn.Config(env="CartPole-v1", **{**TINY, "eval_every": 150})
    dqn.train(config, tmp_path / "run")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    evaluations = [r for r in read_rows(tmp_path / "run") if r["eval_return_mean"] is not None]
    returns = [float(r["eval_return_mean"]) for r in evaluations]
    assert [int(r["step"]) for r in evaluations] == [150, 300, 450, 600]
    assert (summary["algorithm"], summary["env"], summary["steps"]) == ("dqn", "CartPole-v1", 600)
    assert summary["threshold"] == 475.0 and summary["solved_step"] is None
    assert summary["final_eval_return_mean"] == returns[-1]
    assert summary["best_eval_return_mean"] == max(returns)
    assert summary["best_eval_step"] == 150 * (returns.index(max(returns)) + 1)
    # every CartPole episode returns at least 1: the first evaluation starts a run of three
    dqn.train(dataclasses_replace(config, eval_threshold=1.0), tmp_path / "low")
    low = json.loads((tmp_path / "low" / "summary.json").read_text())
    assert low["threshold"] == 1.0 and low["solved_step"] == 150
    assert low["final_eval_return_mean"] == returns[-1]  # the threshold does not touch training


def test_a_non_finite_reward_stops_the_run_and_keeps_a_finite_checkpoint(tmp_path):
    config = dqn.Config(
        env="rlgrad-test/CountdownNaN-v0", **{**TINY, "total_steps": 1000, "eval_every": 0}
    )
    with pytest.raises(TrainingError, match=r"at step \d+ .*last good checkpoint"):
        dqn.train(config, tmp_path / "run")
    state = torch.load(tmp_path / "run" / "checkpoints" / "latest.pt", weights_only=False)
    assert state["steps"] < 1000
    assert all(torch.isfinite(p).all() for p in state["modules"]["agent"].values())


# ----- many seeds in one process (issue 32) -----


def cartpole_spaces():
    return VectorEnv("CartPole-v1", 1, seed=0).spaces


@pytest.mark.parametrize("dueling", [False, True], ids=["plain", "dueling"])
def test_a_seed_batched_q_network_is_each_seeds_own_network(dueling):
    # built as a single-seed run builds each seed's (torch.manual_seed(s) first), in float64 so
    # that baddbmm against nn.Linear differ only by summation order (~1e-16)
    spaces = cartpole_spaces()

    def build(seeds):
        return QNetwork(spaces, (8, 8), "relu", dueling, epsilon=0.1, seeds=seeds).double()

    networks = build_seeded(build, [3, 5])
    observations = torch.randn(2, 7, 4, dtype=torch.float64)
    q_values = networks(observations)
    assert q_values.shape == (2, 7, 2) and float(networks.epsilon) == pytest.approx(0.1)
    for index, seed in enumerate([3, 5]):
        torch.manual_seed(seed)
        single = build(None)
        torch.testing.assert_close(q_values[index], single(observations[index]), rtol=0, atol=1e-12)
        assert torch.equal(networks.mode(observations)[index], single.mode(observations[index]))


def test_seed_epsilon_greedy_draws_each_seeds_own_stream_and_spares_an_inactive_one():
    q_values = torch.randn(3, 50, 4)
    generators = [torch.Generator().manual_seed(seed) for seed in (11, 12, 13)]
    actions = seed_epsilon_greedy(q_values, 0.4, generators, active=[True, False, True])
    for index, seed in ((0, 11), (2, 13)):
        # the single-seed draws, in their order: 50 uniforms, then 50 random actions
        generator = torch.Generator().manual_seed(seed)
        uniforms = torch.rand(50, generator=generator)
        random_actions = torch.randint(4, (50,), generator=generator)
        expected = torch.where(uniforms < 0.4, random_actions, q_values[index].argmax(-1))
        assert torch.equal(actions[index], expected)
        assert 5 < int((uniforms < 0.4).sum()) < 45  # both branches are exercised
        assert torch.equal(generators[index].get_state(), generator.get_state())
    # the inactive seed acts greedily and its generator has not moved
    assert torch.equal(actions[1], q_values[1].argmax(-1))
    assert torch.equal(generators[1].get_state(), torch.Generator().manual_seed(12).get_state())


def test_a_seed_replay_buffer_samples_what_each_seeds_own_buffer_samples():
    # two seeds of CartPole with random actions into one SeedReplayBuffer, and each seed into
    # its own ReplayBuffer; seed 1 stops (inactive) after 30 of 40 steps, and its buffer must
    # stay the 30-step one. 16 slots per environment: both wrap, at different positions.
    envs = SeedEnvs([VectorEnv("CartPole-v1", 2, seed=seed) for seed in (4, 6)])
    alone = [VectorEnv("CartPole-v1", 2, seed=seed) for seed in (4, 6)]
    together = SeedReplayBuffer(32, 2, envs.spaces, 2)
    buffers = [ReplayBuffer(32, 2, envs.spaces) for _ in alone]
    actions_generator = torch.Generator().manual_seed(0)
    for step in range(40):
        active = np.array([True, step < 30])
        actions = torch.randint(2, (2, 2), generator=actions_generator)
        observations = envs.observations
        outcome = envs.step(actions, active)
        together.add(observations, actions, outcome, active)
        for s, (env, buffer) in enumerate(zip(alone, buffers, strict=True)):
            if active[s]:
                before = env.observations
                buffer.add(before, actions[s], env.step(actions[s].numpy()))
    assert together.sizes == [16, 16] and together.positions == [40 % 16, 30 % 16]
    for n_step in (1, 3):
        generators = [torch.Generator().manual_seed(seed) for seed in (1, 2)]
        batch = together.sample(256, generators, n_step, 0.9)
        for s, buffer in enumerate(buffers):
            own = buffer.sample(256, torch.Generator().manual_seed(s + 1), n_step, 0.9)
            for name in Batch.__dataclass_fields__:
                assert torch.equal(getattr(batch, name)[s], getattr(own, name)), (n_step, s, name)
        # terminations are sampled, and 3-step windows that stop early at an episode's end
        assert bool(batch.terminated.any())
        assert bool((batch.discounts > 0.9**n_step + 1e-6).any()) == (n_step > 1)
    for s, buffer in enumerate(buffers):
        assert len(buffer) == together.usable_counts[s]
        mine, theirs = together.seed_state(s), buffer.state_dict()
        assert mine.keys() == theirs.keys()
        assert all(torch.equal(mine[k], theirs[k]) for k in mine if torch.is_tensor(mine[k]))
        assert (mine["position"], mine["size"]) == (theirs["position"], theirs["size"])
    # a seed that does not draw keeps its generator
    generators = [torch.Generator().manual_seed(seed) for seed in (1, 2)]
    together.sample(8, generators, 1, 0.9, drawing=np.array([True, False]))
    assert torch.equal(generators[1].get_state(), torch.Generator().manual_seed(2).get_state())


SEEDS_TINY = {**TINY, "num_envs": 2, "n_step": 2, "dueling": True, "tau": 0.5}
AVERAGED = ("loss", "q_taken_mean", "grad_norm")


def assert_same_run(rows, reference):
    """Every count, return, evaluation and ε equal; the averaged metrics equal to float32
    rounding (S seeds in one baddbmm sum in another order than one: ~1e-8 relative)."""
    assert len(rows) == len(reference)
    for row, expected in zip(without_timing(rows), without_timing(reference), strict=True):
        assert row.keys() == expected.keys()
        for name, value in row.items():
            if name in AVERAGED and value is not None:
                assert value == pytest.approx(expected[name], rel=1e-6), (row["step"], name)
            else:
                assert value == expected[name], (row["step"], name)


def test_two_seeds_trained_together_each_equal_their_run_alone(tmp_path):
    config = dqn.Config(env="CartPole-v1", **SEEDS_TINY)
    together = dqn.train_seeds(config, [3, 8], tmp_path / "together")
    for index, seed in enumerate([3, 8]):
        alone = dqn.train(dataclasses_replace(config, seed=seed), tmp_path / f"alone{seed}")
        assert_same_run(together[index].rows, alone.rows)
        assert sum(row["loss"] is not None for row in alone.rows) >= 4
        assert together[index].run_dir == tmp_path / "together" / f"seed{seed}"
        # each seed's checkpoint holds that seed's own replay buffer and counters, exactly, and
        # its networks and optimizer, to float32 rounding, as the run of that seed alone does
        mine = torch.load(together[index].run_dir / "checkpoints" / "latest.pt", weights_only=False)
        theirs = torch.load(alone.run_dir / "checkpoints" / "latest.pt", weights_only=False)
        assert mine["steps"] == theirs["steps"] == config.total_steps
        for name in ("agent", "target", "replay", "counters"):
            a, b = mine["modules"][name], theirs["modules"][name]
            assert a.keys() == b.keys(), name
            for key in a:
                if name in ("agent", "target"):
                    torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)
                elif torch.is_tensor(a[key]):
                    assert torch.equal(a[key], b[key]), (name, key)
                else:
                    assert a[key] == b[key], (name, key)
        assert mine["modules"]["counters"]["gradient_steps"] > 100
        assert len(mine["modules"]["replay"]["rewards"]) == 300  # 600 steps of 2 environments
        a, b = mine["modules"]["optimizer"]["state"], theirs["modules"]["optimizer"]["state"]
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key]["step"], b[key]["step"])
            for field in ("exp_avg", "exp_avg_sq"):
                # float32 rounding moves a moment near 0 by a part in 1e7 of the tensor's scale
                # (measured: 5.6e-9 where the largest is ~0.05), a large fraction of itself
                scale = float(b[key][field].abs().max())
                torch.testing.assert_close(
                    a[key][field], b[key][field], rtol=1e-4, atol=1e-5 * scale
                )
    assert without_timing(together[0].rows) != without_timing(together[1].rows)


def test_a_seed_with_a_non_finite_reward_fails_alone(tmp_path, monkeypatch):
    # seed 8's 120th vector step returns a NaN reward: seed 8 fails there, keeping a finite
    # checkpoint, while seed 3 trains to the end exactly as it does alone
    config = dqn.Config(env="CartPole-v1", **SEEDS_TINY)
    alone = dqn.train(dataclasses_replace(config, seed=3), tmp_path / "alone")
    step, calls = SeedEnvs.step, []

    def poisoned(self, actions, active):
        outcome = step(self, actions, active)
        calls.append(1)
        if len(calls) == 120:
            outcome.rewards[-1, 0] = float("nan")  # the last seed's
        return outcome

    monkeypatch.setattr(SeedEnvs, "step", poisoned)
    healthy, failed = dqn.train_seeds(config, [3, 8], tmp_path / "together")
    assert "failed" not in healthy.summary
    assert_same_run(healthy.rows, alone.rows)
    # step 240 = 120 vector steps of 2 environments; the last row written is the one before
    message = failed.summary["failed"]
    assert re.search(r"a reward became nan at step 200 .*last good checkpoint", message)
    assert failed.rows[-1]["step"] == 200
    state = torch.load(failed.run_dir / "checkpoints" / "latest.pt", weights_only=False)
    assert state["steps"] == 200
    assert all(torch.isfinite(p).all() for p in state["modules"]["agent"].values())
    assert all(torch.isfinite(state["modules"]["replay"]["rewards"]).flatten())
    calls.clear()
    with pytest.raises(TrainingError, match="a reward became nan at step 200"):  # one seed
        dqn.train(dataclasses_replace(config, seed=8), tmp_path / "alone8")


def test_two_seeds_resumed_from_their_checkpoints_equal_an_uninterrupted_run(tmp_path):
    # ε at its end value from the start, so that a 300-step run is the first half of a 600-step
    # one; each seed then continues from its own checkpoint (buffer, counters, generator)
    config = dqn.Config(env="CartPole-v1", **{**SEEDS_TINY, "exploration_fraction": 0.0})
    whole = dqn.train_seeds(config, [3, 8], tmp_path / "whole")
    half = dataclasses_replace(config, total_steps=300)
    dqn.train_seeds(half, [3, 8], tmp_path / "cut")
    resumed = dqn.train_seeds(config, [3, 8], tmp_path / "cut", resume=True)
    for before, after in zip(whole, resumed, strict=True):
        assert after.rows[2]["step"] == 300 and after.rows[3]["loss"] is not None
        assert without_timing(after.rows) == without_timing(before.rows)
