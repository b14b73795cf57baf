"""TD3 and SAC with a seed axis (issue 32): S seeds trained as one batched computation, each
equal to its run alone; the seed-batched networks and draws they are built from."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from conftest import dataclasses_replace, without_timing

from rlgrad.support.continuous_nets import (
    ActorCritics,
    CriticEnsemble,
    DeterministicActor,
    SquashedGaussianActor,
)
from rlgrad.support.envs import SeedEnvs, Spaces
from rlgrad.support.runs import TrainingError
from rlgrad.support.seeded import SeedGenerators, build_seeded
from rlgrad.trainers import sac, td3

SPACES = Spaces(
    (3,), False, 0, (2,), np.array([-2.0, -1.0], np.float32), np.array([2.0, 1.0], np.float32)
)
TINY = {
    "env": "Pendulum-v1",
    "num_envs": 2,
    "total_steps": 400,
    "learning_starts": 100,
    "batch_size": 16,
    "hidden_sizes": (16, 16),
    "log_every": 50,
    "eval_every": 200,
    "eval_episodes": 1,
    "checkpoint_every": 0,
    "critic_lr": 3e-3,
    "n_step": 2,
}
AVERAGED = ("critic_loss", "actor_loss", "q_mean", "grad_norm")


def test_seed_generators_draw_what_each_seed_draws_alone():
    generators = SeedGenerators([4, 9, 11])
    normal = generators.draw("normal", (5, 2), where=np.array([True, False, True]))
    uniform = generators.draw("uniform", (3,))
    # seed 9 drew nothing the first time: its uniform draw is its stream's first
    for index, seed in enumerate([4, 9, 11]):
        alone = torch.Generator().manual_seed(seed)
        if index != 1:
            assert torch.equal(normal[index], torch.randn(5, 2, generator=alone))
        else:
            assert torch.equal(normal[index], torch.zeros(5, 2))
        assert torch.equal(uniform[index], torch.rand(3, generator=alone))
    with pytest.raises(ValueError, match=r"SeedGenerators.draw\(\): 'kind' must be normal or"):
        generators.draw("gamma", (2,))


def test_seed_batched_actors_and_critics_equal_each_seeds_own_networks():
    seeds = [3, 5, 8]
    actors = build_seeded(lambda n: DeterministicActor(SPACES, (8, 8), "relu", 0.1, n), seeds)
    critics = build_seeded(lambda n: CriticEnsemble(SPACES, (8, 8), "relu", 2, seeds=n), seeds)
    observations = torch.randn(3, 6, 3, generator=torch.Generator().manual_seed(0))
    actions = actors.mode(observations)  # [S, B, D]
    q_values = critics(observations, actions)  # [S, B, K]
    assert actions.shape == (3, 6, 2) and q_values.shape == (3, 6, 2)
    generators = SeedGenerators(seeds)
    noisy, _ = actors.sample(observations, generators)
    # seed s: the networks a run of s alone initializes (each built right after seeding), its
    # exploration noise from its own generator; baddbmm rounds otherwise than nn.Linear (1 ulp)
    close = {"rtol": 1e-6, "atol": 1e-6}
    for index, seed in enumerate(seeds):
        torch.manual_seed(seed)
        actor = DeterministicActor(SPACES, (8, 8), "relu", 0.1)
        torch.manual_seed(seed)
        critic = CriticEnsemble(SPACES, (8, 8), "relu", 2)
        torch.testing.assert_close(actions[index], actor.mode(observations[index]), **close)
        alone = critic(observations[index], actions[index])
        torch.testing.assert_close(q_values[index], alone, **close)
        drawn, _ = actor.sample(observations[index], torch.Generator().manual_seed(seed))
        torch.testing.assert_close(noisy[index], drawn, **close)
    assert not torch.allclose(noisy, actions)  # the noise is there
    with pytest.raises(ValueError, match=r"CriticEnsemble\(\): batch_renorm .* got seeds=2"):
        CriticEnsemble(SPACES, (8,), "relu", 2, batch_renorm={}, seeds=2)


def test_seed_batched_sac_actors_sample_and_score_as_each_seeds_own():
    seeds = [2, 6]

    def build(n):
        actor = SquashedGaussianActor(SPACES, (8,), "tanh", seeds=n)
        critics = CriticEnsemble(SPACES, (8,), "tanh", 2, seeds=n)
        return ActorCritics(SPACES, actor, critics, log_alpha=-0.5, seeds=n)

    agents = build_seeded(build, seeds)
    assert agents.log_alpha.shape == (2,)
    observations = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(1))
    # seed 6 draws nothing (not ready): zeros noise, its generator untouched
    generators = SeedGenerators(seeds)
    actions, log_probs = agents.sample(observations, generators, np.array([True, False]))
    torch.manual_seed(2)
    alone = build(None)
    drawn, drawn_log_probs = alone.sample(observations[0], torch.Generator().manual_seed(2))
    torch.testing.assert_close(actions[0], drawn, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(log_probs[0], drawn_log_probs, rtol=1e-5, atol=1e-5)
    torch.manual_seed(6)
    other = build(None)
    torch.testing.assert_close(actions[1], other.mode(observations[1]), rtol=1e-6, atol=1e-6)
    assert torch.equal(generators[1].get_state(), torch.Generator().manual_seed(6).get_state())
    with pytest.raises(ValueError, match=r"SquashedGaussianActor\(\): batch_renorm .* seeds=2"):
        SquashedGaussianActor(SPACES, (8,), "relu", batch_renorm={}, seeds=2)


def assert_same_run(rows, reference):
    """Every count equal; the averaged metrics and training returns to float32 rounding (S seeds
    in one baddbmm round otherwise than one: measured ≤ 6e-8 relative); evaluation returns within
    5%: a 200-step rollout of the pendulum under the deterministic policy turns a 1e-8 change of
    an action into up to 0.1% of the return on one CPU and 1.2% on another (seed 8's last
    evaluation, TD3: −641.8 against −633.9 alone)."""
    assert len(rows) == len(reference)
    for row, expected in zip(without_timing(rows), without_timing(reference), strict=True):
        assert row.keys() == expected.keys()
        for name, value in row.items():
            if not isinstance(value, float) or expected[name] is None:
                assert value == expected[name], (row["step"], name)
            elif name.startswith("eval_"):
                assert value == pytest.approx(expected[name], rel=5e-2), (row["step"], name)
            else:
                assert value == pytest.approx(expected[name], rel=1e-6, abs=1e-7), (
                    row["step"],
                    name,
                )


TRAINERS = {"td3": td3, "sac": sac}
COMPANIONS = {"td3": ("target_actor", "target_critics"), "sac": ("target_critics",)}


@pytest.mark.parametrize("name", sorted(TRAINERS))
def test_two_seeds_trained_together_each_equal_their_run_alone(name, tmp_path):
    trainer = TRAINERS[name]
    config = trainer.Config(**TINY)
    together = trainer.train_seeds(config, [3, 8], tmp_path / "together")
    for index, seed in enumerate([3, 8]):
        alone = trainer.train(dataclasses_replace(config, seed=seed), tmp_path / f"alone{seed}")
        assert_same_run(together[index].rows, alone.rows)
        assert sum(row["actor_loss"] is not None for row in alone.rows) >= 5
        # one gradient step per environment step from the vector step that reaches 100 on
        assert alone.rows[-1]["total_gradient_steps"] == 302
        mine = torch.load(together[index].run_dir / "checkpoints" / "latest.pt", weights_only=False)
        theirs = torch.load(alone.run_dir / "checkpoints" / "latest.pt", weights_only=False)
        for module in ("agent", *COMPANIONS[name], "replay", "counters"):
            a, b = mine["modules"][module], theirs["modules"][module]
            assert a.keys() == b.keys(), module
            for key in a:
                if torch.is_tensor(a[key]) and a[key].is_floating_point():
                    # the pendulum carries action rounding into the stored states (measured
                    # on one CPU: 5.7e-6 in the last of 400, 3e-5 relative)
                    torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=2e-5)
                elif torch.is_tensor(a[key]):
                    assert torch.equal(a[key], b[key]), (module, key)
                else:
                    assert a[key] == b[key], (module, key)
    assert without_timing(together[0].rows) != without_timing(together[1].rows)


@pytest.mark.parametrize("name", sorted(TRAINERS))
def test_a_seed_with_a_non_finite_reward_fails_alone(name, tmp_path, monkeypatch):
    # seed 8's 150th vector step (steps 298-300) returns a NaN reward: seed 8 fails in the
    # update after its row at step 250, keeping its checkpoint of step 200, while seed 3 trains
    # to the end as it does alone
    trainer = TRAINERS[name]
    config = trainer.Config(**{**TINY, "checkpoint_every": 100})
    alone = trainer.train(dataclasses_replace(config, seed=3), tmp_path / "alone")
    step, calls = SeedEnvs.step, []

    def poisoned(self, actions, active):
        outcome = step(self, actions, active)
        calls.append(1)
        if len(calls) == 150:
            outcome.rewards[-1, 0] = float("nan")  # the last seed's
        return outcome

    monkeypatch.setattr(SeedEnvs, "step", poisoned)
    healthy, failed = trainer.train_seeds(config, [3, 8], tmp_path / "together")
    assert "failed" not in healthy.summary
    assert_same_run(healthy.rows, alone.rows)
    assert re.search(
        r"a reward became nan at step 250 .*last good checkpoint", failed.summary["failed"]
    )
    state = torch.load(failed.run_dir / "checkpoints" / "latest.pt", weights_only=False)
    assert state["steps"] == 200 and failed.rows[-1]["step"] == 250
    assert all(torch.isfinite(p).all() for p in state["modules"]["agent"].values())
    calls.clear()
    with pytest.raises(TrainingError, match="a reward became nan at step 250"):  # one seed
        trainer.train(dataclasses_replace(config, seed=8), tmp_path / "alone8")


@pytest.mark.parametrize("name", sorted(TRAINERS))
def test_two_seeds_resumed_from_their_checkpoints_equal_an_uninterrupted_run(name, tmp_path):
    trainer = TRAINERS[name]
    config = trainer.Config(**TINY)
    whole = trainer.train_seeds(config, [3, 8], tmp_path / "whole")
    cut = dataclasses_replace(config, total_steps=200)
    trainer.train_seeds(cut, [3, 8], tmp_path / "cut")
    resumed = trainer.train_seeds(config, [3, 8], tmp_path / "cut", resume=True)
    for before, after in zip(whole, resumed, strict=True):
        assert after.rows[3]["step"] == 200 and after.rows[4]["actor_loss"] is not None
        assert without_timing(after.rows) == without_timing(before.rows)
