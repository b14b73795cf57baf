"""Many seeds' environments on a device: a grouped torch env's group g is the env of seed g, and
TorchSeedEnvs normalizes, counts, checkpoints and evaluates each seed as a VectorEnv would."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlgrad.envs import ENVIRONMENTS, Discrete, make
from rlgrad.errors import BadInputError
from rlgrad.support import configs
from rlgrad.support import envs as envs_module
from rlgrad.support.envs import SeedEnvs, VectorEnv
from rlgrad.support.evaluation import eval_seed, evaluate_seeds
from rlgrad.support.torch_envs import TorchSeedEnvs, torch_env_spaces

SEEDS = [3, 11, 40]


def random_actions(env_id: str, shape: tuple[int, ...], generator, dtype=torch.float32):
    """Uniform random actions of the task (continuous ones a little past the bounds too)."""
    space = ENVIRONMENTS[env_id].action_space
    if isinstance(space, Discrete):
        return torch.randint(0, space.n, shape, generator=generator)
    low, high = space.low[0], space.high[0]
    draws = torch.rand(*shape, 1, generator=generator, dtype=dtype)
    return low - 0.2 + (high - low + 0.4) * draws


def active_pattern(t: int) -> list[bool]:
    """Seeds 0 and 2 always step; seed 1 pauses on every third step and for a stretch."""
    return [True, t % 3 != 1 and not 100 <= t < 130, True]


# ----- 1. the grouped environment -----


@pytest.mark.parametrize("env_id", sorted(ENVIRONMENTS))
def test_group_g_steps_bit_for_bit_as_the_env_of_seed_g(env_id):
    """Float64, a short time limit (so truncations happen) and random actions (so terminations
    do where the task has them); group 1 is paused at times, and the others must not notice."""
    N, limit = 5, 25
    grouped = make(env_id, N, dtype=torch.float64, seeds=SEEDS, max_episode_steps=limit)
    singles = [make(env_id, N, dtype=torch.float64, seed=s, max_episode_steps=limit) for s in SEEDS]
    first, _ = grouped.reset()
    for g, single in enumerate(singles):
        observations, _ = single.reset()
        assert torch.equal(first.view(3, N, -1)[g], observations)
    generator = torch.Generator().manual_seed(0)
    ends = {"terminated": 0, "truncated": 0}
    for t in range(400):
        actions = random_actions(env_id, (3, N), generator, torch.float64)
        active = active_pattern(t)
        ours = grouped.step(actions.flatten(0, 1), active)[:4]
        for g, single in enumerate(singles):
            if not active[g]:  # a paused group: nothing moves, nothing is paid or flagged
                assert not ours[1].view(3, N)[g].any() and not ours[2].view(3, N)[g].any()
                continue
            theirs = single.step(actions[g])[:4]
            for mine, reference in zip(ours, theirs, strict=True):
                assert torch.equal(mine.view(3, N, *mine.shape[1:])[g], reference)
            ends["terminated"] += int(theirs[2].sum())
            ends["truncated"] += int(theirs[3].sum())
    assert ends["truncated"] > 30
    if env_id == "CartPole-v1":  # random pushes topple the pole well within 25 steps
        assert ends["terminated"] > 100


def test_group_state_moves_one_group_and_only_that_one():
    env = make("CartPole-v1", 4, dtype=torch.float64, seeds=SEEDS, max_episode_steps=10)
    other = make("CartPole-v1", 4, dtype=torch.float64, seeds=[7, 8, 9], max_episode_steps=10)
    env.reset(), other.reset()
    generator = torch.Generator().manual_seed(1)
    for _ in range(13):  # mid-episode, some copies due a reset
        actions = torch.randint(0, 2, (12,), generator=generator)
        env.step(actions), other.step(actions)
    saved = env.group_state(1)
    untouched = [other.group_state(g) for g in (0, 2)]
    other.load_group_state(1, saved)
    for g, before in zip((0, 2), untouched, strict=True):
        after = other.group_state(g)
        assert all(torch.equal(after[k], before[k]) for k in before)
    for _ in range(30):
        actions = torch.randint(0, 2, (12,), generator=generator)
        ours, theirs = env.step(actions), other.step(actions)
        for mine, reference in zip(ours[:4], theirs[:4], strict=True):
            assert torch.equal(mine[4:8], reference[4:8])


def test_grouped_env_refuses_seed_and_seeds_together_and_a_wrong_reset_seed():
    with pytest.raises(BadInputError, match="give seed or seeds, not both"):
        make("CartPole-v1", 2, seed=1, seeds=[1, 2])
    env = make("CartPole-v1", 2, seeds=[1, 2])
    with pytest.raises(BadInputError, match="a list of 2 seeds"):
        env.reset(seed=3)
    with pytest.raises(BadInputError, match="one flag per group"):
        env.step(torch.zeros(4, dtype=torch.long), [True])


# ----- 2. TorchSeedEnvs against VectorEnv's own arithmetic -----


class NumpyTorchEnv:
    """A one-seed torch env as VectorEnv's Gymnasium vector env: NumPy in and out, so that
    VectorEnv's own normalization and counting run on the torch task's raw numbers."""

    def __init__(self, env):
        self.env = env

    def reset(self, seed=None):
        observations, _ = self.env.reset(seed=seed)
        return observations.numpy(), {}

    def step(self, actions):
        observations, rewards, terminated, truncated, _ = self.env.step(torch.as_tensor(actions))
        return (
            observations.numpy(),
            rewards.double().numpy(),
            terminated.numpy(),
            truncated.numpy(),
            {},
        )

    def close(self):
        pass


def reference_envs(monkeypatch, env_id, num_envs, seeds, limit, **options) -> SeedEnvs:
    """SeedEnvs of VectorEnvs whose environments are the torch task of each seed."""
    monkeypatch.setattr(
        envs_module,
        "make_gym_vector_env",
        lambda env_id, n, vectorization, **kw: NumpyTorchEnv(
            make(env_id, n, max_episode_steps=limit)
        ),
    )
    monkeypatch.setattr(envs_module, "spaces_of", lambda env, env_id: torch_env_spaces(env.env))
    return SeedEnvs([VectorEnv(env_id, num_envs, seed, **options) for seed in seeds])


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_normalization_and_counts_equal_vector_envs_on_the_same_raw_stream(monkeypatch, env_id):
    """Observations and rewards to 1e-6 (VectorEnv takes batch means of float32 observations in
    float32, TorchSeedEnvs in float64), flags, valid, episodes and statistics; seed 1 pauses."""
    N, limit = 4, 40
    options = {"normalize_obs": True, "normalize_reward": True, "gamma": 0.95}
    reference = reference_envs(monkeypatch, env_id, N, SEEDS, limit, **options)
    ours = TorchSeedEnvs(env_id, N, SEEDS, **options)
    ours.env.max_episode_steps = limit
    torch.testing.assert_close(ours.observations, reference.observations, rtol=1e-6, atol=1e-6)
    generator = torch.Generator().manual_seed(2)
    for t in range(300):
        actions = random_actions(env_id, (3, N), generator)
        active = np.array(active_pattern(t))
        mine, theirs = ours.step(actions, active), reference.step(actions.numpy(), active)
        torch.testing.assert_close(mine.observations, theirs.observations, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(mine.rewards, theirs.rewards, rtol=1e-6, atol=1e-6)
        for name in ("terminated", "truncated", "valid"):
            assert torch.equal(getattr(mine, name), getattr(theirs, name)), (t, name)
        assert not mine.valid[~torch.as_tensor(active)].any()
    for view, env in zip(ours.envs, reference.envs, strict=True):
        assert len(env.finished) > 5
        # the rewards really were rescaled: the return's variance is far from its prior 1
        assert view.stats_state()["return"]["var"] > 4
        mine_finished, their_finished = np.array(view.finished), np.array(env.finished)
        np.testing.assert_allclose(mine_finished, their_finished, rtol=1e-12)
        for kind in ("obs", "return"):
            mine_stats, their_stats = view.stats_state()[kind], env.stats_state()[kind]
            assert mine_stats["count"] == their_stats["count"]
            for name in ("mean", "var"):
                assert mine_stats[name].dtype == np.float64
                np.testing.assert_allclose(mine_stats[name], their_stats[name], rtol=1e-6)


def test_finished_holds_each_episodes_raw_return_and_length_as_counted_by_hand():
    """Pendulum's rewards differ every step, so a return summed over the wrong steps shows."""
    N, limit = 3, 17
    envs = TorchSeedEnvs("Pendulum-v1", N, [0, 5], normalize_reward=True)
    envs.env.max_episode_steps = limit
    returns = np.zeros((2, N))
    lengths = np.zeros((2, N), int)
    expected: list[list[tuple[float, int]]] = [[], []]
    raw = make("Pendulum-v1", N, seeds=[0, 5], max_episode_steps=limit)
    raw.reset()
    generator = torch.Generator().manual_seed(3)
    for t in range(120):
        actions = random_actions("Pendulum-v1", (2, N), generator)
        active = [True, t % 4 != 0]
        step = envs.step(actions, np.array(active))
        # the raw rewards of the same steps (normalize_reward scales what step returns)
        _, rewards, _, _, _ = raw.step(actions.flatten(0, 1), active)
        rewards = rewards.double().view(2, N).numpy()
        done = (step.terminated | step.truncated).numpy()
        valid = step.valid.numpy()
        for s in range(2):
            for i in range(N):
                returns[s, i] += rewards[s, i]
                lengths[s, i] += valid[s, i]
                if done[s, i]:
                    expected[s].append((returns[s, i], lengths[s, i]))
                if done[s, i] or (not valid[s, i] and active[s]):
                    returns[s, i], lengths[s, i] = 0.0, 0
    for s in range(2):
        finished = list(envs.envs[s].finished)
        assert [n for _, n in finished] == [n for _, n in expected[s]]
        assert all(n == limit for _, n in finished)  # Pendulum ends only by its time limit
        np.testing.assert_allclose([r for r, _ in finished], [r for r, _ in expected[s]], 1e-12)
    assert len(expected[0]) == 120 // (limit + 1) * N


def test_state_and_load_state_continue_bit_for_bit(tmp_path):
    """Checkpoint every seed mid-episode (through torch.save, as a Run does), restore into new
    environments, and both copies step identically from there."""
    options = {"normalize_obs": True, "normalize_reward": True}
    original = TorchSeedEnvs("CartPole-v1", 4, SEEDS, **options)
    generator = torch.Generator().manual_seed(4)
    for t in range(37):
        original.step(random_actions("CartPole-v1", (3, 4), generator), active_pattern(t))
    path = tmp_path / "envs.pt"
    torch.save([view.state() for view in original.envs], path)
    restored = TorchSeedEnvs("CartPole-v1", 4, [100, 101, 102], **options)
    for view, state in zip(restored.envs, torch.load(path, weights_only=False), strict=True):
        assert view.captured_by_checkpoint() and view.load_state(state, seed=0)
    assert torch.equal(restored.observations, original.observations)
    for t in range(37, 150):
        actions = random_actions("CartPole-v1", (3, 4), generator)
        ours = restored.step(actions, active_pattern(t))
        theirs = original.step(actions, active_pattern(t))
        for name in ("observations", "rewards", "terminated", "truncated", "valid"):
            assert torch.equal(getattr(ours, name), getattr(theirs, name)), (t, name)
    for mine, theirs in zip(restored.envs, original.envs, strict=True):
        assert list(mine.finished) == list(theirs.finished) and len(mine.finished) > 3
        assert str(mine.stats_state()) == str(theirs.stats_state())


def test_loading_one_seed_leaves_the_others_alone():
    envs = TorchSeedEnvs("CartPole-v1", 2, SEEDS, normalize_obs=True)
    fresh = TorchSeedEnvs("CartPole-v1", 2, SEEDS, normalize_obs=True)
    donor = TorchSeedEnvs("CartPole-v1", 2, [9, 9, 9], normalize_obs=True)
    generator = torch.Generator().manual_seed(5)
    for _ in range(20):
        donor.step(random_actions("CartPole-v1", (3, 2), generator), [True] * 3)
    envs.envs[1].load_state(donor.envs[1].state(), seed=0)
    for s in (0, 2):
        assert str(envs.envs[s].state()) == str(fresh.envs[s].state())
    assert str(envs.envs[1].state()) == str(donor.envs[1].state())


def test_step_refuses_actions_and_flags_of_the_wrong_shape():
    envs = TorchSeedEnvs("CartPole-v1", 2, [0, 1])
    with pytest.raises(BadInputError, match=r"'actions' must have shape \(2, 2, \.\.\.\)"):
        envs.step(torch.zeros(4, dtype=torch.long), np.ones(2, bool))
    with pytest.raises(BadInputError, match="'active' must hold 2 flags; got 3"):
        envs.step(torch.zeros(2, 2, dtype=torch.long), np.ones(3, bool))
    with pytest.raises(BadInputError, match="must be one of"):
        TorchSeedEnvs("LunarLander-v3", 2, [0])


def test_spaces_are_those_gymnasium_gives():
    gymnasium = pytest.importorskip("gymnasium")
    from rlgrad.support.envs import spaces_of

    for env_id in ("CartPole-v1", "MountainCarContinuous-v0"):
        gym_env = gymnasium.make_vec(env_id, 1)
        theirs, ours = spaces_of(gym_env, env_id), torch_env_spaces(make(env_id))
        gym_env.close()
        assert ours.observation_shape == theirs.observation_shape
        assert (ours.discrete, ours.num_actions, ours.action_shape) == (
            theirs.discrete,
            theirs.num_actions,
            theirs.action_shape,
        )
        for name in ("action_low", "action_high"):
            np.testing.assert_array_equal(getattr(ours, name), getattr(theirs, name))


# ----- 3. evaluation on the torch backend -----


def by_hand(env_id, episodes, seed, policy, stats=None) -> np.ndarray:
    """Each copy's first return, stepping seed ``seed``'s evaluation environments alone."""
    env = make(env_id, episodes, seed=eval_seed(seed))
    observations, _ = env.reset()
    returns, running = np.full(episodes, np.nan), np.zeros(episodes)
    while np.isnan(returns).any():
        seen = observations.numpy().astype(np.float64)
        if stats is not None:
            seen = np.clip((seen - stats["mean"]) / np.sqrt(stats["var"] + 1e-8), -10, 10)
        observations, rewards, terminated, truncated, _ = env.step(policy(seen))
        running += rewards.double().numpy()
        ended = (terminated | truncated).numpy() & np.isnan(returns)
        returns[ended] = running[ended]
    return returns


def test_torch_backend_evaluation_equals_the_policy_played_by_hand():
    """A fixed CartPole policy (push towards the pole's angular velocity, after a shift that
    only normalization by these statistics undoes) on two seeds' evaluation environments."""
    stats = [
        {
            "mean": np.array([0.0, 0.0, 0.0, 0.3]),
            "var": np.array([1.0, 1.0, 1.0, 4.0]),
            "count": 5.0,
        },
        {"mean": np.array([0.0, 0.0, 0.0, -0.2]), "var": np.ones(4), "count": 9.0},
    ]
    seeds = [0, 4]

    def act(observations):  # [S, E, 4] -> [S, E]
        return (observations[..., 3] > 0).long()

    plain = evaluate_seeds(act, "CartPole-v1", 3, seeds, backend="torch")
    normalized = evaluate_seeds(act, "CartPole-v1", 3, seeds, obs_stats=stats, backend="torch")
    for s, seed in enumerate(seeds):

        def policy(seen):
            return torch.as_tensor(seen[:, 3] > 0).long()

        np.testing.assert_array_equal(plain[s], by_hand("CartPole-v1", 3, seed, policy))
        np.testing.assert_array_equal(
            normalized[s], by_hand("CartPole-v1", 3, seed, policy, stats[s])
        )
    assert (plain > 100).all()  # the policy balances: these are long episodes
    assert not np.array_equal(plain, normalized)
    with pytest.raises(BadInputError, match="'backend' must be one of gymnasium, torch"):
        evaluate_seeds(act, "CartPole-v1", 3, seeds, backend="jax")


# ----- 4. configuration -----


def test_env_backend_is_checked_in_one_line():
    configs.check_run_config(configs.RunConfig(env_backend="torch"))
    with pytest.raises(BadInputError, match="'env_backend' must be gymnasium or torch; got 'jax'"):
        configs.check_run_config(configs.RunConfig(env_backend="jax"))
    with pytest.raises(BadInputError, match=r"Acrobot-v1, CartPole-v1.*got env 'LunarLander-v3'"):
        configs.check_run_config(configs.RunConfig(env="LunarLander-v3", env_backend="torch"))


def test_start_seeds_builds_torch_seed_envs_for_the_torch_backend():
    training = pytest.importorskip(
        "rlgrad.support.training", reason="needs rlgrad.support.seed_adam (another branch)"
    )
    config = configs.PolicyConfig(env_backend="torch", num_envs=3, normalize_obs=True)
    envs = training.make_seed_envs(config, [1, 2], "cpu")
    assert isinstance(envs, TorchSeedEnvs) and envs.normalize_obs
    assert envs.observations.shape == (2, 3, 4)


# ----- 5. on a GPU -----


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_cuda_groups_equal_separate_envs_and_a_checkpoint_continues_exactly():
    N = 64
    grouped = make("CartPole-v1", N, "cuda", torch.float64, seeds=SEEDS, max_episode_steps=30)
    singles = [
        make("CartPole-v1", N, "cuda", torch.float64, seed=s, max_episode_steps=30) for s in SEEDS
    ]
    grouped.reset(), [single.reset() for single in singles]
    generator = torch.Generator().manual_seed(6)
    for _ in range(200):
        actions = torch.randint(0, 2, (3, N), generator=generator).cuda()
        ours = grouped.step(actions.flatten(0, 1))
        for g, single in enumerate(singles):
            for mine, theirs in zip(ours[:4], single.step(actions[g])[:4], strict=True):
                assert torch.equal(mine.view(3, N, *mine.shape[1:])[g], theirs)
    options = {"normalize_obs": True, "normalize_reward": True, "device": "cuda"}
    original = TorchSeedEnvs("CartPole-v1", N, SEEDS, **options)
    for _ in range(50):
        step = original.step(torch.randint(0, 2, (3, N), generator=generator).cuda(), [True] * 3)
    assert step.observations.is_cuda and step.rewards.is_cuda and step.valid.is_cuda
    restored = TorchSeedEnvs("CartPole-v1", N, [0, 0, 0], **options)
    for view, theirs in zip(restored.envs, original.envs, strict=True):
        view.load_state(theirs.state(), seed=0)
    for _ in range(100):
        actions = torch.randint(0, 2, (3, N), generator=generator).cuda()
        ours, theirs = restored.step(actions, [True] * 3), original.step(actions, [True] * 3)
        assert torch.equal(ours.observations, theirs.observations)
        assert torch.equal(ours.rewards, theirs.rewards)
    assert list(restored.envs[2].finished) == list(original.envs[2].finished)
    returns = evaluate_seeds(
        lambda o: (o[..., 3] > 0).long(), "CartPole-v1", 4, [0, 1], backend="torch", device="cuda"
    )
    assert returns.shape == (2, 4) and (returns > 100).all()


def test_ppo_on_the_torch_backend_resumes_bit_for_bit(tmp_path):
    """Through start_seeds and SeedRuns: two seeds trained to 512 steps in one go, or to 256
    and resumed from their checkpoints to 512, write the same metrics (evaluations included)."""
    from conftest import without_timing

    from rlgrad.trainers import ppo

    options = {
        "env_backend": "torch",
        "num_envs": 4,
        "num_steps": 32,
        "eval_every": 256,
        "eval_episodes": 2,
        "anneal_lr": False,  # the schedule would follow total_steps, which the resume raises
        "normalize_obs": True,
        "normalize_reward": True,
    }
    whole = ppo.train_seeds(ppo.Config(total_steps=512, **options), [0, 1], tmp_path / "whole")
    ppo.train_seeds(ppo.Config(total_steps=256, **options), [0, 1], tmp_path / "split")
    resumed = ppo.train_seeds(
        ppo.Config(total_steps=512, **options), [0, 1], tmp_path / "split", resume=True
    )
    for one, other in zip(whole, resumed, strict=True):
        assert "failed" not in other.summary
        assert without_timing(one.rows) == without_timing(other.rows)
        assert sum(row["eval_return_mean"] is not None for row in other.rows) == 2
    assert without_timing(whole[0].rows) != without_timing(whole[1].rows)


def test_reset_groups_restarts_the_active_groups_from_their_own_streams_only():
    """Group 0 reset on its own draws what a lone env of its seed draws when reset after the
    same steps (every step draws, for the autoreset); group 1's state, clock, pending reset and
    generator do not move."""
    grouped = make("CartPole-v1", 3, seeds=[3, 5])
    grouped.reset()
    for _ in range(4):  # move the clocks and states away from the start
        grouped.step(torch.ones(6, dtype=torch.int64))
    before = grouped.group_state(1)
    observations, _ = grouped.reset_groups([True, False])
    alone = make("CartPole-v1", 3, seed=3)
    alone.reset()
    for _ in range(4):
        alone.step(torch.ones(3, dtype=torch.int64))
    second, _ = alone.reset()
    assert torch.equal(observations[:3], second)
    assert grouped.elapsed[:3].tolist() == [0, 0, 0] and grouped.elapsed[3:].tolist() == [4] * 3
    after = grouped.group_state(1)
    assert all(torch.equal(before[k], after[k]) for k in ("state", "elapsed", "reset_pending"))
    assert torch.equal(before["generator"], after["generator"])


def test_reset_groups_with_seeds_gives_equal_seeds_equal_starts_and_spares_the_streams():
    grouped = make("Pendulum-v1", 2, seeds=[0, 1])
    grouped.reset()
    streams = [g.get_state() for g in grouped.generators]
    kept = grouped.state[2:].clone()
    observations, _ = grouped.reset_groups([True, False], [7, 7, None, None])
    assert torch.equal(observations[0], observations[1])
    assert torch.equal(grouped.state[2:], kept)  # group 1 is not active
    again, _ = grouped.reset_groups([True, True], [7, 8, 7, 8])
    assert torch.equal(again[0], observations[0]) and torch.equal(again[0], again[2])
    assert not torch.equal(again[0], again[1])
    generators = zip(streams, grouped.generators, strict=True)
    assert all(torch.equal(a, g.get_state()) for a, g in generators)
    with pytest.raises(BadInputError, match=r"reset_groups: seeds must hold one seed per copy"):
        grouped.reset_groups([True, True], [1, 2])
    with pytest.raises(BadInputError, match=r"every copy of an active group needs a seed"):
        grouped.reset_groups([True, True], [1, 2, 3, None])


def test_torch_seed_envs_reset_zeroes_the_active_seeds_counters_and_keeps_the_others():
    envs = TorchSeedEnvs("CartPole-v1", 2, [0, 1], normalize_obs=True)
    for _ in range(3):
        envs.step(torch.ones(2, 2, dtype=torch.int64), [True, True])
    kept = envs.observations[1].clone()
    stats = envs.obs_stats.count.clone()
    envs.reset([[4, 4], None], [True, False])
    assert envs._episode_lengths.tolist() == [[0, 0], [3, 3]]
    assert torch.equal(envs.observations[1], kept)
    assert torch.equal(envs.observations[0, 0], envs.observations[0, 1])  # equal reset seeds
    assert envs.obs_stats.count[0] == stats[0] + 2 and envs.obs_stats.count[1] == stats[1]
    with pytest.raises(BadInputError, match=r"seeds\[0\] must hold 2 seeds"):
        envs.reset([[4], None], [True, False])
