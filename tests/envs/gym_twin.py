"""Gymnasium's vector environment kept in the torch environment's state, for step-by-step checks.

Both sides reset with their own random generators, so after every reset (the first one and each
autoreset) Gymnasium's copies are put in the torch copies' states; between resets both run free
from the same state on the same actions. A task describes how to do that with two functions:
``set_state(env, row)`` puts an unwrapped Gymnasium environment in a torch state row and
``observation(env)`` is that environment's observation of its current state.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

gymnasium = pytest.importorskip("gymnasium")


def set_state_array(env, row: np.ndarray) -> None:
    """Tasks whose Gymnasium state is the float64 array ``env.state`` (CartPole, MountainCar,
    Pendulum, Acrobot)."""
    env.state = np.array(row, dtype=np.float64)


def state_as_float32(env) -> np.ndarray:
    """Tasks whose observation is their state in float32 (CartPole, MountainCar)."""
    return np.asarray(env.state, dtype=np.float32)


class GymTwin:
    def __init__(
        self,
        env_id,
        num_envs,
        set_state=set_state_array,
        observation=state_as_float32,
        **make_kwargs,
    ):
        """``make_kwargs`` go to ``gymnasium.make`` (e.g. Pendulum's ``g``)."""
        self.set_state = set_state
        self.observation = observation
        self.vector = gymnasium.vector.SyncVectorEnv(
            [lambda: gymnasium.make(env_id, **make_kwargs)] * num_envs,
            autoreset_mode=gymnasium.vector.AutoresetMode.NEXT_STEP,
        )

    def reset_like(self, torch_env, seed: int = 0) -> None:
        self.vector.reset(seed=seed)
        self._copy_states(torch_env, np.ones(torch_env.num_envs, dtype=bool))

    def _copy_states(self, torch_env, which: np.ndarray) -> None:
        rows = torch_env.state.detach().cpu().double().numpy()
        for i in np.flatnonzero(which):
            self.set_state(self.vector.envs[i].unwrapped, rows[i])

    def states(self) -> np.ndarray:
        """Gymnasium's current states, ``[num_envs, state size]`` in float64."""
        return np.array([np.asarray(env.unwrapped.state, np.float64) for env in self.vector.envs])

    def step_like(self, torch_env, actions: torch.Tensor):
        """Step both with the same actions: ``(ours, theirs)``, each (obs, reward, terminated,
        truncated) as NumPy arrays. Copies that started a new episode on this step are put in
        the torch copies' new states, and their Gymnasium observation is taken from it."""
        pending = torch_env.reset_pending.cpu().numpy().copy()
        observations, rewards, terminated, truncated, _ = torch_env.step(actions)
        ours = tuple(t.cpu().numpy() for t in (observations, rewards, terminated, truncated))
        gym_obs, gym_rewards, gym_terminated, gym_truncated, _ = self.vector.step(
            actions.cpu().numpy()
        )
        if pending.any():
            self._copy_states(torch_env, pending)
            gym_obs = gym_obs.copy()
            for i in np.flatnonzero(pending):
                gym_obs[i] = self.observation(self.vector.envs[i].unwrapped)
        return ours, (gym_obs, gym_rewards, gym_terminated, gym_truncated)
