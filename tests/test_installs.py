"""A `pip install 'rlgrad[gym]'` has Gymnasium but not MuJoCo: its runs must never touch MuJoCo.

Importing ``gymnasium.envs.mujoco`` without MuJoCo raises ``DependencyNotInstalled``, which is
not an ImportError, so an ``except ImportError`` around it let it through: every CartPole run
died at its first checkpoint. These tests make that import fail the same way in the test
process (whose ``test`` extra does install MuJoCo). The real installs are checked from fresh
virtual environments by ``tests/installs/check.sh``, which ``make test`` runs.
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys

import numpy as np
import pytest

gym = pytest.importorskip("gymnasium")

from rlgrad.support.envs import VectorEnv  # noqa: E402
from rlgrad.trainers import ppo  # noqa: E402


class _NoMujoco(importlib.abc.MetaPathFinder):
    """Fails every import of MuJoCo as gymnasium does when the ``mujoco`` package is missing."""

    def find_spec(self, name, path=None, target=None):
        if name == "mujoco" or name.startswith(("mujoco.", "gymnasium.envs.mujoco")):
            raise gym.error.DependencyNotInstalled(
                'MuJoCo is not installed, run `pip install "gymnasium[mujoco]"`'
            )
        return None


@pytest.fixture
def without_mujoco(monkeypatch):
    for name in list(sys.modules):
        if name == "mujoco" or name.startswith(("mujoco.", "gymnasium.envs.mujoco")):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [_NoMujoco(), *sys.meta_path])
    # the simulation is real: the import the old code made fails exactly as on a [gym] install
    with pytest.raises(gym.error.DependencyNotInstalled):
        importlib.import_module("gymnasium.envs.mujoco")


def _steps(env: VectorEnv, actions: list[int]) -> np.ndarray:
    return np.stack([env.step(np.full(env.num_envs, a)).observations for a in actions])


def test_a_cartpole_vector_env_state_continues_exactly_without_mujoco(without_mujoco):
    env = VectorEnv("CartPole-v1", 3, seed=7)
    _steps(env, [0, 1, 1, 0])  # mid-episode, so the restored episodes must really continue
    state = env.state()
    assert state["env"] is not None and state["physics"] is None
    expected = _steps(env, [1, 0, 0, 1, 1])

    restored = VectorEnv("CartPole-v1", 3, seed=99)  # other episodes until the state is loaded
    assert restored.load_state(state, seed=99) is True
    np.testing.assert_array_equal(_steps(restored, [1, 0, 0, 1, 1]), expected)
    env.close()
    restored.close()


def test_a_cartpole_ppo_run_checkpoints_and_resumes_without_mujoco(without_mujoco, tmp_path):
    config = ppo.Config(
        env="CartPole-v1", total_steps=256, num_envs=2, num_steps=64, eval_every=0, eval_episodes=1
    )
    first = ppo.train(config, tmp_path / "run")
    assert [row["step"] for row in first.rows] == [128, 256]
    longer = config.__class__(**{**config.__dict__, "total_steps": 512})
    resumed = ppo.train(longer, tmp_path / "run", resume=True)
    assert [row["step"] for row in resumed.rows] == [128, 256, 384, 512]
    assert "gymnasium.envs.mujoco" not in sys.modules


class _NoGymnasium(importlib.abc.MetaPathFinder):
    """Fails every import of gymnasium, as on a core install (`pip install rlgrad`)."""

    def find_spec(self, name, path=None, target=None):
        if name == "gymnasium" or name.startswith("gymnasium."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


def test_the_tour_on_a_core_install_skips_its_training_step_in_one_line(monkeypatch, capsys):
    from rlgrad.tour.tour import run_tour

    for name in list(sys.modules):
        if name == "gymnasium" or name.startswith("gymnasium."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [_NoGymnasium(), *sys.meta_path])
    # the old code reached `import gymnasium` inside make_gym_vector_env: a traceback
    assert run_tour(step="taylor-trust") == 2  # nothing was shown
    assert capsys.readouterr().out.strip().splitlines() == [
        "1. taylor-trust-region: Taylor and the trust region (skipped: it trains PPO on "
        "CartPole-v1: pip install 'rlgrad[gym]')"
    ]
