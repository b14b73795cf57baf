"""Tiny Gymnasium environments whose every number is known, for end-to-end trainer tests."""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class Countdown(gym.Env):
    """Observation [t / 10, 1]; reward 1 per step; the action is ignored.

    ``continuous`` gives it a Box action space (for SAC and TD3). With ``terminate_at`` the
    episode terminates after that many steps; otherwise only the
    TimeLimit of the registration ends it (a truncation). ``nan_reward_at`` makes the reward of
    that global step NaN, to test how a trainer stops on non-finite numbers.
    """

    def __init__(
        self,
        terminate_at: int | None = None,
        nan_reward_at: int | None = None,
        continuous: bool = False,
    ):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
        if continuous:  # a torque-like action in [−2, 2], ignored like the discrete one
            self.action_space = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)
        else:
            self.action_space = gym.spaces.Discrete(2)
        self.terminate_at, self.nan_reward_at = terminate_at, nan_reward_at
        self.t = 0
        self.total_steps = 0

    def _observation(self) -> np.ndarray:
        return np.array([self.t / 10, 1.0], np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._observation(), {}

    def step(self, action):
        self.t += 1
        self.total_steps += 1
        reward = float("nan") if self.total_steps == self.nan_reward_at else 1.0
        terminated = self.terminate_at is not None and self.t >= self.terminate_at
        return self._observation(), reward, terminated, False, {}


def register() -> None:
    if "rlgrad-test/Countdown-v0" not in gym.registry:
        gym.register("rlgrad-test/Countdown-v0", entry_point=Countdown, max_episode_steps=5)
        gym.register(
            "rlgrad-test/CountdownTerminal-v0",
            entry_point=Countdown,
            max_episode_steps=50,
            kwargs={"terminate_at": 5},
        )
        gym.register(
            "rlgrad-test/CountdownNaN-v0",
            entry_point=Countdown,
            max_episode_steps=5,
            kwargs={"nan_reward_at": 300},
        )
        for name, kwargs in (
            ("CountdownBox-v0", {}),
            ("CountdownBoxTerminal-v0", {"terminate_at": 5}),
            ("CountdownBoxNaN-v0", {"nan_reward_at": 300}),
        ):
            gym.register(
                f"rlgrad-test/{name}",
                entry_point=Countdown,
                max_episode_steps=50 if "terminate_at" in kwargs else 5,
                kwargs={**kwargs, "continuous": True},
            )
