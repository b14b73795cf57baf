"""Many seeds collecting whole episodes in one process (REINFORCE, GRPO on Gymnasium): each seed
is stepped, and draws, exactly as its single-seed run; a seed's batch lasts as long as its own
episodes; a seed that diverges fails alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import without_timing

from rlgrad.errors import BadInputError
from rlgrad.support import training
from rlgrad.support.envs import SeedEnvs, Spaces, VectorEnv
from rlgrad.support.nets import ActorCritic
from rlgrad.support.rollout import Rollout, SeedRollout
from rlgrad.support.runs import TrainingError
from rlgrad.support.seeded import SeedGenerators, build_seeded
from rlgrad.trainers import grpo, reinforce

CARTPOLE = Spaces((4,), True, 2, (), None, None)
SEEDS = [3, 11, 40]
NUM_ENVS = 3
EXACT = (
    "episode_return_mean",
    "episode_length_mean",
    "eval_return_mean",
    "eval_return_std",
    "group_return_std",
    "frac_reward_zero_std",
    "lr",
)
TINY = {
    "env": "CartPole-v1",
    "eval_episodes": 2,
    "checkpoint_every": 0,
    "hidden_sizes": (16,),
}
TRAINERS = {
    "reinforce": (reinforce, {**TINY, "num_envs": 2, "total_steps": 300, "eval_every": 100}),
    "grpo": (
        grpo,
        {
            **TINY,
            "num_envs": 4,
            "group_size": 2,
            "max_episode_steps": 500,
            "total_steps": 500,
            "eval_every": 200,
        },
    ),
}


def assert_rows_close(rows: list[dict], expected: list[dict]) -> None:
    """Metric rows (timing left out) equal: counts, returns and evaluations exactly, averaged
    metrics to float32 rounding (a batched matmul and a padded masked mean sum in another
    order). The policy loss is a sum of terms of size ~1 that nearly cancel (normalized
    advantages have mean 0), so its rounding is absolute, ~1e-7, not relative to its value."""
    rows, expected = without_timing(rows), without_timing(expected)
    assert len(rows) == len(expected) >= 3
    for row, reference in zip(rows, expected, strict=True):
        assert row.keys() == reference.keys()
        for column, value in reference.items():
            if isinstance(value, float) and column not in EXACT:
                assert row[column] == pytest.approx(value, rel=1e-6, abs=1e-6), column
            else:
                assert row[column] == value, column


def single_agent(seed: int) -> ActorCritic:
    torch.manual_seed(seed)
    return ActorCritic(CARTPOLE, (8,), "tanh")


def test_episode_mode_steps_and_draws_each_seed_as_its_single_seed_rollout():
    """Two batches of episodes of 3 seeds, the second seed inactive in the first batch, the
    third resetting from reset seeds of its own: each active seed's rows equal a single-seed
    Rollout's on the same environments, policy and generator, through its own step count; the
    rows after it hold no valid step; the inactive seed neither steps nor draws."""
    agents = build_seeded(lambda n: ActorCritic(CARTPOLE, (8,), "tanh", seeds=n), SEEDS)
    envs = SeedEnvs([VectorEnv("CartPole-v1", NUM_ENVS, s, vectorization="sync") for s in SEEDS])
    generators = SeedGenerators(SEEDS)
    rollout = SeedRollout(500, len(SEEDS), NUM_ENVS, CARTPOLE)
    singles = [
        (
            VectorEnv("CartPole-v1", NUM_ENVS, s, vectorization="sync"),
            single_agent(s),
            torch.Generator().manual_seed(s),
        )
        for s in SEEDS
    ]
    reset_seeds = [None, None, [5, 5, 6]]
    for active in (np.array([True, False, True]), np.array([True, True, True])):
        steps = rollout.collect(envs, agents, generators, active, episodes=True,
                                reset_seeds=reset_seeds)  # fmt: skip
        assert max(steps) == max(steps[s] for s in np.flatnonzero(active))
        for s, (env, agent, generator) in enumerate(singles):
            if not active[s]:
                assert steps[s] == 0 and not rollout.valid[: max(steps), s].any()
                # its generator did not advance: it draws next what a fresh one draws first
                fresh = torch.Generator().manual_seed(SEEDS[s])
                assert torch.equal(generators[s].get_state(), fresh.get_state())
                continue
            single = Rollout(500, NUM_ENVS, CARTPOLE)
            taken = single.collect(env, agent, generator, episodes=True,
                                   reset_seeds=reset_seeds[s])  # fmt: skip
            assert steps[s] == taken
            for name in ("actions", "rewards", "terminated", "truncated", "valid"):
                assert torch.equal(getattr(rollout, name)[:taken, s], getattr(single, name)[:taken])
            assert torch.equal(
                rollout.observations[: taken + 1, s], single.observations[: taken + 1]
            )
            torch.testing.assert_close(rollout.log_probs[:taken, s], single.log_probs[:taken])
            # after its episodes: no valid step, and its final observation stays in place
            assert not rollout.valid[taken : max(steps), s].any()
            assert not rollout.rewards[taken : max(steps), s].any()
            assert torch.equal(rollout.observations[max(steps), s], single.observations[taken])
    # the batches are long enough to matter: the seeds' episodes end at different steps
    assert len(set(steps)) > 1
    envs.close()


def test_valid_samples_are_each_seeds_valid_indices_padded():
    rollout = SeedRollout(3, 2, 2, CARTPOLE)
    rollout.valid[:] = torch.tensor(
        [
            [[True, True], [False, True]],
            [[True, False], [False, False]],
            [[False, True], [True, False]],
        ]
    )  # [T, S, N]: seed 0 keeps samples t·N + i = 0, 1, 2, 5; seed 1 keeps 1, 4
    indices, kept = rollout.valid_samples()
    assert indices.tolist() == [[0, 1, 2, 5], [1, 4, 0, 0]]
    assert kept.tolist() == [[True, True, True, True], [True, True, False, False]]


def test_episode_mode_refuses_an_episode_longer_than_the_rollout():
    agents = build_seeded(lambda n: ActorCritic(CARTPOLE, (8,), "tanh", seeds=n), [0])
    envs = SeedEnvs([VectorEnv("CartPole-v1", 2, 0)])
    rollout = SeedRollout(3, 1, 2, CARTPOLE)
    with pytest.raises(BadInputError, match=r"longer than 3 steps.*max_episode_steps"):
        rollout.collect(envs, agents, SeedGenerators([0]), np.array([True]), episodes=True)
    envs.close()


@pytest.mark.parametrize(
    "anneal_lr, backend",
    [(False, "gymnasium"), (True, "gymnasium"), (False, "torch")],
    ids=["constant_lr", "annealed_lr", "torch_envs"],
)
@pytest.mark.parametrize("name", sorted(TRAINERS))
def test_a_seed_of_a_batch_equals_its_single_seed_run(name, anneal_lr, backend, tmp_path):
    """train_seeds([7, 2]): each seed's rows equal train(seed=s)'s, though the seeds' episodes,
    and so their step counts (and an annealed lr), part ways; on the torch environments too,
    whose groups reset one seed at a time."""
    trainer, fields = TRAINERS[name]
    fields = {**fields, "anneal_lr": anneal_lr, "env_backend": backend}
    batch = trainer.train_seeds(trainer.Config(**fields), [7, 2], tmp_path / "batch")
    for seed, together in zip((7, 2), batch, strict=True):
        single = trainer.train(trainer.Config(**fields, seed=seed), tmp_path / f"alone{seed}")
        assert_rows_close(together.rows, single.rows)
    assert [r["step"] for r in batch[0].rows] != [r["step"] for r in batch[1].rows]
    if anneal_lr:
        assert [r["lr"] for r in batch[0].rows] != [r["lr"] for r in batch[1].rows]


@pytest.mark.parametrize("name", sorted(TRAINERS))
def test_a_seed_with_a_nan_reward_fails_alone(name, tmp_path, monkeypatch):
    """Seed 2's environments return a NaN reward at its 60th step: it stops with its last good
    checkpoint and a summary that says so, and seed 7 trains on exactly as it does alone."""
    trainer, fields = TRAINERS[name]
    config = trainer.Config(**fields)
    alone = trainer.train(trainer.Config(**fields, seed=7), tmp_path / "alone")
    make_env = training.make_env

    def poisoned(config):
        env = make_env(config)
        if config.seed == 2:
            step, calls = env.step, []

            def step_with_nan(actions):
                outcome = step(actions)
                calls.append(1)
                if len(calls) == 60:
                    outcome.rewards[0] = np.nan
                return outcome

            env.step = step_with_nan
        return env

    monkeypatch.setattr(training, "make_env", poisoned)
    healthy, failed = trainer.train_seeds(config, [7, 2], tmp_path / "batch")
    assert "a reward" in failed.summary["failed"]
    assert "failed" not in healthy.summary
    assert 0 < failed.rows[-1]["step"] < healthy.rows[-1]["step"]
    assert_rows_close(healthy.rows, alone.rows)
    with pytest.raises(TrainingError, match="a reward"):
        trainer.train(trainer.Config(**fields, seed=2), tmp_path / "single")
