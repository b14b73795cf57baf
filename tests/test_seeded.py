"""Many seeds in one process: the stacked agent, per-seed random streams, environments and
evaluation equal S single-seed ones, seed for seed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlgrad.errors import BadInputError
from rlgrad.support.envs import SeedEnvs, Spaces, VectorEnv
from rlgrad.support.evaluation import evaluate, evaluate_seeds
from rlgrad.support.nets import ActorCritic
from rlgrad.support.seeded import (
    SeedGenerators,
    build_seeded,
    load_seed_state_dict,
    non_finite_seeds,
    seed_agent,
    seed_state_dict,
    zero_seed,
)
from rlgrad.support.training import SeedMeans

DISCRETE = Spaces((4,), True, 2, (), None, None)
BOX = Spaces((3,), False, 0, (1,), np.array([-2.0], np.float32), np.array([2.0], np.float32))
SEEDS = [3, 11, 40]
# a PPO run of a few updates and two evaluations
TINY_PPO = {
    "env": "CartPole-v1",
    "num_envs": 2,
    "num_steps": 32,
    "minibatch_size": 32,
    "epochs": 2,
    "eval_every": 256,
    "eval_episodes": 2,
    "hidden_sizes": (16,),
}


def single(spaces, seed, hidden_sizes=(8, 8), **options):
    """Seed ``seed``'s agent as a single-seed run builds it."""
    torch.manual_seed(seed)
    return ActorCritic(spaces, hidden_sizes, "tanh", **options)


@pytest.mark.parametrize("spaces", [DISCRETE, BOX], ids=["categorical", "gaussian"])
def test_build_seeded_initializes_each_seed_as_a_single_run_would(spaces):
    agents = build_seeded(lambda n: ActorCritic(spaces, (8, 8), "tanh", seeds=n), SEEDS)
    for i, seed in enumerate(SEEDS):
        reference = single(spaces, seed).state_dict()
        stacked = seed_state_dict(agents, i)
        assert stacked.keys() == reference.keys()
        for name in reference:
            torch.testing.assert_close(stacked[name], reference[name], rtol=0, atol=0)


@pytest.mark.parametrize("spaces", [DISCRETE, BOX], ids=["categorical", "gaussian"])
def test_call_equals_each_seeds_own_agent(spaces):
    torch.manual_seed(0)
    agents = build_seeded(
        lambda n: ActorCritic(spaces, (8, 8), "tanh", log_std_init=-0.3, seeds=n), SEEDS
    )
    observations = torch.randn(len(SEEDS), 5, *spaces.observation_shape)
    if spaces.discrete:
        actions = torch.randint(2, (len(SEEDS), 5))
    else:
        actions = torch.randn(len(SEEDS), 5, 1)
    log_probs, entropy = agents.log_prob_and_entropy(observations, actions)
    values = agents.value(observations)
    for i, seed in enumerate(SEEDS):
        own = single(spaces, seed, log_std_init=-0.3)
        expected_log_probs, expected_entropy = own.log_prob_and_entropy(observations[i], actions[i])
        torch.testing.assert_close(log_probs[i], expected_log_probs)
        torch.testing.assert_close(entropy[i], expected_entropy)
        torch.testing.assert_close(values[i], own.value(observations[i]))


def test_gradients_of_the_summed_losses_are_each_seeds_own():
    agents = build_seeded(lambda n: ActorCritic(DISCRETE, (8,), "tanh", seeds=n), SEEDS)
    observations = torch.randn(len(SEEDS), 6, 4)
    returns = torch.randn(len(SEEDS), 6)
    losses = ((agents.value(observations) - returns) ** 2).mean(dim=1)
    losses.sum().backward()
    gradients = {name: p.grad for name, p in agents.named_parameters()}
    for i, seed in enumerate(SEEDS):
        torch.manual_seed(seed)
        own = ActorCritic(DISCRETE, (8,), "tanh")
        ((own.value(observations[i]) - returns[i]) ** 2).mean().backward()
        for name, parameter in own.named_parameters():
            if parameter.grad is None:  # the actor: no gradient from a value loss
                assert gradients[name] is None or not gradients[name][i].any()
            else:
                torch.testing.assert_close(gradients[name][i], parameter.grad)


def test_seed_state_round_trip_and_seed_agent():
    agents = build_seeded(lambda n: ActorCritic(BOX, (8,), "tanh", seeds=n), SEEDS)
    state = seed_state_dict(agents, 2)
    load_seed_state_dict(agents, 0, state)
    for tensor in agents.parameters():
        torch.testing.assert_close(tensor[0], tensor[2], rtol=0, atol=0)
    own = seed_agent(agents, 1, lambda n: ActorCritic(BOX, (8,), "tanh", seeds=n))
    observations = torch.randn(4, 3)
    expected = single(BOX, SEEDS[1], (8,)).value(observations)
    torch.testing.assert_close(own.value(observations), expected)
    with pytest.raises(BadInputError, match="lacks"):
        load_seed_state_dict(agents, 0, {})


def test_non_finite_seeds_and_zero_seed():
    agents = build_seeded(lambda n: ActorCritic(DISCRETE, (8,), "tanh", seeds=n), SEEDS)
    assert non_finite_seeds(agents).tolist() == [False, False, False]
    with torch.no_grad():
        agents.actor[0].weight[1, 3, 2] = float("nan")
    assert non_finite_seeds(agents).tolist() == [False, True, False]
    zero_seed(agents, 1)
    assert non_finite_seeds(agents).tolist() == [False, False, False]
    assert not any(p[1].any() for p in agents.parameters())
    assert all(p[0].any() for name, p in agents.named_parameters() if "weight" in name)


def test_sampling_draws_each_seeds_own_stream():
    """Seed s's actions come from generator s alone: the same as a single-seed agent's
    ``sample`` with a generator seeded alike, whatever the other seeds are."""
    agents = build_seeded(lambda n: ActorCritic(DISCRETE, (8,), "tanh", seeds=n), SEEDS)
    generators = SeedGenerators(SEEDS)
    observations = torch.randn(len(SEEDS), 7, 4)
    for _ in range(3):
        heads = agents.policy_head(observations)
        draws = torch.stack([agents.draw(heads[s], generators[s]) for s in range(len(SEEDS))])
        actions, log_probs = agents.act(heads, draws)
    for i, seed in enumerate(SEEDS):
        own, generator = single(DISCRETE, seed, (8,)), torch.Generator().manual_seed(seed)
        for _ in range(3):
            expected_actions, expected_log_probs = own.sample(observations[i], generator)
        torch.testing.assert_close(actions[i], expected_actions)
        torch.testing.assert_close(log_probs[i], expected_log_probs)


def test_permutations_are_each_seeds_randperm_padded():
    generators = SeedGenerators(SEEDS)
    orders, filled = generators.permutations([5, 0, 3])
    assert orders.shape == filled.shape == (3, 5)
    assert filled.sum(dim=1).tolist() == [5, 0, 3]
    expected = torch.randperm(5, generator=torch.Generator().manual_seed(SEEDS[0]))
    torch.testing.assert_close(orders[0], expected)
    expected = torch.randperm(3, generator=torch.Generator().manual_seed(SEEDS[2]))
    torch.testing.assert_close(orders[2, :3], expected)


def test_seed_envs_step_each_seeds_own_environments():
    envs = SeedEnvs([VectorEnv("CartPole-v1", 2, seed) for seed in SEEDS])
    singles = [VectorEnv("CartPole-v1", 2, seed) for seed in SEEDS]
    rng = np.random.default_rng(0)
    active = np.array([True, False, True])
    for _ in range(40):
        actions = rng.integers(0, 2, size=(3, 2))
        step = envs.step(actions, active)
        for i, env in enumerate(singles):
            if not active[i]:
                assert not step.valid[i].any() and not step.rewards[i].any()
                continue
            expected = env.step(actions[i])
            np.testing.assert_array_equal(step.observations[i].numpy(), expected.observations)
            np.testing.assert_array_equal(step.rewards[i].numpy(), expected.rewards)
            np.testing.assert_array_equal(step.terminated[i].numpy(), expected.terminated)
            np.testing.assert_array_equal(step.truncated[i].numpy(), expected.truncated)
            np.testing.assert_array_equal(step.valid[i].numpy(), expected.valid)
    envs.close()


def test_evaluate_seeds_equals_each_seeds_evaluation():
    agents = [single(DISCRETE, seed) for seed in SEEDS]

    def act(observations):
        return np.stack(
            [a.env_actions(a.mode(o)) for a, o in zip(agents, observations, strict=True)]
        )

    returns = evaluate_seeds(act, "CartPole-v1", 3, SEEDS)
    for i, seed in enumerate(SEEDS):
        np.testing.assert_array_equal(returns[i], evaluate(agents[i], "CartPole-v1", 3, seed))


def test_seed_means_average_where_each_seed_stepped():
    means = SeedMeans(2, "loss", "kl")
    means.add(torch.tensor([True, False]), loss=torch.tensor([1.0, 100.0]))
    means.add(torch.tensor([True, True]), loss=torch.tensor([2.0, 4.0]), kl=0.5)
    assert means.means() == [{"loss": 1.5, "kl": 0.5}, {"loss": 4.0, "kl": 0.5}]
    with pytest.raises(BadInputError, match="unknown metric"):
        means.add(torch.tensor([True, True]), lost=1.0)


def test_build_seeded_refuses_no_seeds_and_keeps_parameters_stacked():
    with pytest.raises(BadInputError, match="at least one seed"):
        build_seeded(lambda n: ActorCritic(DISCRETE, seeds=n), [])
    agents = build_seeded(lambda n: ActorCritic(BOX, (8,), "tanh", seeds=n), SEEDS)
    shapes = [tuple(p.shape) for p in agents.parameters()]
    assert shapes and all(shape[0] == len(SEEDS) for shape in shapes)
    torch.testing.assert_close(agents.action_low, torch.tensor([-2.0]))  # shared buffer


def test_a_stop_request_mid_update_records_that_update_and_resumes_exactly(tmp_path, monkeypatch):
    """Ctrl-C lands while the seeds collect: the update still ends with its row and a
    checkpoint for every seed, and resuming the directory of seeds continues as if nothing had
    happened (the checkpoint's rows and state belong to the same step)."""
    import os
    import signal

    from conftest import without_timing

    from rlgrad.app.registry import resume_seeds, seed_run_dirs
    from rlgrad.support.rollout import SeedRollout
    from rlgrad.trainers import ppo

    config = ppo.Config(**TINY_PPO, total_steps=768, checkpoint_every=0)
    whole = ppo.train_seeds(config, [4, 9], tmp_path / "whole")
    collect, calls = SeedRollout.collect, []

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 5:  # in the middle of the fifth update
            os.kill(os.getpid(), signal.SIGINT)
        return collect(self, *args, **kwargs)

    monkeypatch.setattr(SeedRollout, "collect", interrupted)
    stopped = ppo.train_seeds(config, [4, 9], tmp_path / "cut")
    assert [h.rows[-1]["step"] for h in stopped] == [320, 320]
    assert all(h.summary["interrupted"] for h in stopped)
    monkeypatch.setattr(SeedRollout, "collect", collect)
    resumed = resume_seeds(tmp_path / "cut", seed_run_dirs(tmp_path / "cut"))
    for before, after in zip(whole, resumed, strict=True):
        assert without_timing(after.rows) == without_timing(before.rows)


def test_one_seed_diverging_fails_alone_and_is_reported_failed(tmp_path, monkeypatch):
    """Seed 9's rewards turn NaN in its third step: its run stops with its last good
    checkpoint and a summary that says why (a report counts it failed); seed 4 trains on, with
    the numbers it has when no seed beside it fails, to float32 rounding: once a seed is out,
    SeedAdam steps the others by its general path instead of torch's fused kernel, which rounds
    the last bits otherwise (every count and episode identical; measured: losses within
    1e-7 absolute: the policy loss, ~1e-5 in size, moves by 1.9e-3 of itself)."""
    from conftest import without_timing

    from rlgrad.app.report import read_runs
    from rlgrad.support.envs import SeedEnvs
    from rlgrad.support.run_format import finished
    from rlgrad.trainers import ppo

    config = ppo.Config(**TINY_PPO, total_steps=512)
    healthy = ppo.train_seeds(config, [4, 9], tmp_path / "healthy")
    step, calls = SeedEnvs.step, []

    def poisoned(self, actions, active):
        outcome = step(self, actions, active)
        calls.append(1)
        if len(calls) == 3:
            outcome.rewards[1, 0] = float("nan")
        return outcome

    monkeypatch.setattr(SeedEnvs, "step", poisoned)
    histories = ppo.train_seeds(config, [4, 9], tmp_path / "poisoned")
    assert "a reward" in histories[1].summary["failed"]
    assert not finished(tmp_path / "poisoned" / "seed9")
    assert finished(tmp_path / "poisoned" / "seed4")
    assert histories[1].rows == []  # it failed in its first update, before any row
    rows, reference = without_timing(histories[0].rows), without_timing(healthy[0].rows)
    assert len(rows) == len(reference) == 8
    for row, expected in zip(rows, reference, strict=True):
        for name, value in row.items():
            if name in ("step", "update", "episode_return_mean", "episode_length_mean"):
                assert value == expected[name], (row["step"], name)
            elif value is not None:
                assert value == pytest.approx(expected[name], rel=1e-5, abs=1e-7), name
    states = {run.files.config["seed"]: run.state for run in read_runs([tmp_path / "poisoned"])}
    assert states == {4: "done", 9: "failed"}
