"""Learning tests: each trainer reaches its threshold at a fixed seed (minutes; `make test` runs
them too). The presets are the tuned ones that `rlgrad train` uses."""

from __future__ import annotations

import pytest

from rlgrad.app.presets import preset_config
from rlgrad.app.registry import module

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "algorithm, env_id, threshold",
    [
        ("ppo", "CartPole-v1", 475.0),
        ("a2c", "CartPole-v1", 475.0),
        ("reinforce", "CartPole-v1", 475.0),
        ("ppo", "Pendulum-v1", -200.0),
        ("dqn", "CartPole-v1", 475.0),
        ("grpo", "CartPole-v1", 475.0),
    ],
)
def test_the_preset_solves_the_task(algorithm, env_id, threshold, tmp_path):
    config = preset_config(algorithm, env_id, seed=0, checkpoint_every=0)
    history = module(algorithm).train(config, tmp_path / "run")
    evals = history.column("eval_return_mean")
    assert history.summary["final_eval_return_mean"] >= threshold, evals
