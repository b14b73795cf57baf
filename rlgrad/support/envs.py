"""Vectorized Gymnasium environments: the one place that knows Gymnasium 1.x's autoreset rules.

Gymnasium 1.x vector environments reset a finished sub-environment on the *next* call to
``step`` ("next-step" autoreset): the step that ends an episode returns the true final
observation, and the following step ignores that sub-environment's action and returns the first
observation of a new episode with reward 0 and no flags. :class:`VectorEnv` keeps that
convention (so ``observations`` after a step at a time limit *is* the final observation to
bootstrap from, and no second forward pass is needed) and marks the reset step ``valid = False``
so that trainers leave it out of their losses.
"""

from __future__ import annotations

import copy
import sys
import warnings
from collections import deque
from dataclasses import dataclass

import numpy as np
import torch

from rlgrad.errors import BadInputError

_NORMALIZED_CLIP = 10.0
_MUJOCO_ENV_MODULE = "gymnasium.envs.mujoco.mujoco_env"  # defines MujocoEnv
# what a VectorEnv must carry through a checkpoint besides its environments and statistics
_COUNTERS = (
    "observations",
    "update_stats",
    "_discounted",
    "_episode_returns",
    "_episode_lengths",
    "_reset_pending",
    "finished",
)  # as SB3's VecNormalize: a few outliers must not dominate a minibatch


def _sub_environments(env) -> list:
    """The single environments of a sync vector environment (a native one is its own)."""
    return list(getattr(env, "envs", [env]))


def _pickles_whole(env) -> bool:
    """Whether pickling a (sync or native) vector environment keeps its state: gymnasium's
    ``EzPickle`` environments pickle only their constructor arguments."""
    from gymnasium.utils import EzPickle

    return not any(isinstance(e.unwrapped, EzPickle) for e in _sub_environments(env))


def _mujoco_environments(env) -> list | None:
    """The unwrapped MuJoCo environments of a sync vector environment, or None when it holds
    any other kind (or MuJoCo is not installed)."""
    # Never import gymnasium's MuJoCo module here: without MuJoCo that raises
    # DependencyNotInstalled (not an ImportError) from a CartPole run's checkpoint. A MuJoCo
    # environment exists only once its module was imported, so when it is absent none is one.
    module = sys.modules.get(_MUJOCO_ENV_MODULE)
    if module is None:
        return None
    found = [e.unwrapped for e in _sub_environments(env)]
    return found if all(isinstance(e, module.MujocoEnv) for e in found) else None


def _physics_states(environments: list) -> list[dict]:
    """What pickling leaves out of each MuJoCo environment: its simulation data (a copy of the
    whole ``MjData``: positions, velocities, the solver's warm start, and the derived quantities
    the next step reads, such as body positions) and its random generator (the reset noise)."""
    return [
        {"data": copy.deepcopy(e.data), "np_random": copy.deepcopy(e.np_random)}
        for e in environments
    ]


def _set_physics_states(environments: list, states: list[dict]) -> None:
    """Copy :func:`_physics_states` into rebuilt environments (``mj_copyData`` into the
    environment's own ``MjData``, which its renderer also holds)."""
    import mujoco

    for e, state in zip(environments, states, strict=True):
        mujoco.mj_copyData(e.data, e.model, state["data"])
        e.np_random = copy.deepcopy(state["np_random"])


@dataclass(frozen=True)
class Spaces:
    """What a network needs to know about an environment."""

    observation_shape: tuple[int, ...]
    discrete: bool
    num_actions: int  # for a discrete action space
    action_shape: tuple[int, ...]  # () for discrete
    action_low: np.ndarray | None  # bounds of a continuous action space
    action_high: np.ndarray | None

    @property
    def observation_size(self) -> int:
        return int(np.prod(self.observation_shape))


@dataclass
class Step:
    """The outcome of one vector step; arrays are ``[N]`` (``[N, *obs]`` for observations)."""

    observations: np.ndarray  # what to act on next; the true final observation at a done
    rewards: np.ndarray  # float32, normalized when reward normalization is on
    terminated: np.ndarray  # bool: the episode ended in a terminal state (no bootstrap)
    truncated: np.ndarray  # bool: the episode was cut off (time limit): bootstrap
    valid: np.ndarray  # bool: False for Gymnasium's autoreset step, which ignored the action
    episode_returns: np.ndarray  # raw return of each episode that ended here, NaN elsewhere


class RunningMeanStd:
    """Running mean and variance of a stream of batches (Chan et al.'s parallel update)."""

    def __init__(self, shape: tuple[int, ...] = ()):
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = 1e-4

    def update(self, batch: np.ndarray) -> None:
        batch_mean, batch_var, n = batch.mean(axis=0), batch.var(axis=0), batch.shape[0]
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean = self.mean + delta * n / total
        self.var = (
            self.var * self.count + batch_var * n + delta**2 * self.count * n / total
        ) / total
        self.count = total

    def state_dict(self) -> dict:
        return {"mean": self.mean.copy(), "var": self.var.copy(), "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.mean, self.var, self.count = state["mean"].copy(), state["var"].copy(), state["count"]


def _route_mujoco_warnings() -> None:
    """Send MuJoCo's warnings through Python's ``warnings``, which shows each one once.

    By default MuJoCo prints every warning and appends it to MUJOCO_LOG.TXT in the working
    directory. Every evaluation builds its environments anew, so one deprecation warning from a
    model file (v5 HalfCheetah's) would be printed and logged thousands of times in a 1M-step run.
    A handler the user installed is left alone.
    """
    try:
        import mujoco
    except ImportError:  # make_vec then says which extra to install
        return
    if mujoco.get_mju_user_warning() is None:
        mujoco.set_mju_user_warning(_python_warning)


def _python_warning(text: str) -> None:
    # Python's default filter shows a warning once per place; forked async workers inherit the
    # handler and the registry of warnings already shown, so they stay quiet too (tested)
    warnings.warn(f"MuJoCo: {text}", RuntimeWarning, stacklevel=2)


def make_gym_vector_env(env_id: str, num_envs: int, vectorization: str = "auto", **env_kwargs):
    """``gymnasium.make_vec`` with next-step autoreset, or a ValueError that says what to do."""
    import gymnasium as gym
    from gymnasium.vector import AutoresetMode

    try:
        spec = gym.spec(env_id)
    except gym.error.Error as error:
        raise BadInputError(
            f"unknown environment {env_id!r} ({error}); list the registered ones with "
            "`python -c 'import gymnasium; gymnasium.pprint_registry()'`"
        ) from None
    if vectorization == "auto":
        vectorization = "vector_entry_point" if spec.vector_entry_point else "sync"
    if vectorization not in ("vector_entry_point", "sync", "async"):
        raise BadInputError(
            f"'vectorization' must be 'auto', 'vector_entry_point', 'sync' or 'async'; "
            f"got {vectorization!r}"
        )
    if "mujoco" in str(spec.entry_point).lower():
        _route_mujoco_warnings()
    try:
        env = gym.make_vec(env_id, num_envs, vectorization_mode=vectorization, **env_kwargs)
    except gym.error.DependencyNotInstalled as error:
        extra = next((e for e in ("mujoco", "box2d") if e in str(spec.entry_point).lower()), None)
        hint = f"pip install 'rlgrad[{extra}]'" if extra else str(error)
        raise BadInputError(f"environment {env_id!r} needs a missing dependency: {hint}") from None
    mode = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
    if mode != AutoresetMode.NEXT_STEP:
        env.close()
        raise BadInputError(
            f"environment {env_id!r} uses autoreset mode {mode}; rlgrad needs NEXT_STEP"
        )
    return env


def spaces_of(env, env_id: str) -> Spaces:
    """The observation and action spaces of a vector env, refusing what the trainers can't use."""
    import gymnasium as gym

    observation_space, action_space = env.single_observation_space, env.single_action_space
    if not isinstance(observation_space, gym.spaces.Box):
        raise BadInputError(
            f"environment {env_id!r} has {observation_space} observations; rlgrad's trainers "
            "need a Box observation space (wrap it, e.g. with FlattenObservation)"
        )
    if isinstance(action_space, gym.spaces.Discrete):
        return Spaces(observation_space.shape, True, int(action_space.n), (), None, None)
    if isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1:
        low, high = action_space.low.astype(np.float32), action_space.high.astype(np.float32)
        return Spaces(observation_space.shape, False, 0, action_space.shape, low, high)
    raise BadInputError(
        f"environment {env_id!r} has a {action_space} action space; rlgrad's trainers handle "
        "Discrete and 1-D Box action spaces"
    )


class VectorEnv:
    """N copies of a Gymnasium environment stepped together, with optional normalization.

    Observation normalization maps o to clip((o − μ)/√(σ² + 1e-8), ±10) with running statistics;
    reward normalization divides rewards by the running std of the discounted return (as SB3's
    ``VecNormalize``). Episode returns and lengths are tracked on the raw rewards.
    """

    def __init__(
        self,
        env_id: str,
        num_envs: int,
        seed: int,
        *,
        vectorization: str = "auto",
        normalize_obs: bool = False,
        normalize_reward: bool = False,
        gamma: float = 0.99,
        env_kwargs: dict | None = None,
    ):
        self.env_id, self.num_envs, self.gamma = env_id, num_envs, gamma
        self.vectorization = vectorization
        self.env_kwargs = dict(env_kwargs or {})
        self.env = make_gym_vector_env(env_id, num_envs, vectorization, **self.env_kwargs)
        self.spaces = spaces_of(self.env, env_id)
        self.normalize_obs, self.normalize_reward = normalize_obs, normalize_reward
        self.update_stats = True
        self.obs_stats = RunningMeanStd(self.spaces.observation_shape)
        self.return_stats = RunningMeanStd(())
        self._discounted = np.zeros(num_envs)
        self._episode_returns = np.zeros(num_envs)
        self._episode_lengths = np.zeros(num_envs, np.int64)
        self._reset_pending = np.zeros(num_envs, bool)
        self.finished = deque(maxlen=100)  # (return, length) of the most recent episodes
        raw, _ = self.env.reset(seed=seed)
        self.observations = self._observe(raw)

    def _observe(self, raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw, np.float32)
        if not self.normalize_obs:
            return raw
        if self.update_stats:
            self.obs_stats.update(raw)
        return self.normalized(raw)

    def normalized(self, raw: np.ndarray) -> np.ndarray:
        """Observations scaled by the current statistics (unchanged without normalization)."""
        if not self.normalize_obs:
            return np.asarray(raw, np.float32)
        scaled = (raw - self.obs_stats.mean) / np.sqrt(self.obs_stats.var + 1e-8)
        return np.clip(scaled, -_NORMALIZED_CLIP, _NORMALIZED_CLIP).astype(np.float32)

    def reset(self, seeds: list[int] | None = None) -> np.ndarray:
        """Start a new episode in every sub-environment: from their continuing random streams,
        or from ``seeds``, one per sub-environment (equal seeds give equal start states; only
        the sync and async vectorizations take a list)."""
        raw, _ = self.env.reset() if seeds is None else self.env.reset(seed=list(seeds))
        self._episode_returns[:] = 0
        self._episode_lengths[:] = 0
        self._discounted[:] = 0
        self._reset_pending[:] = False
        self.observations = self._observe(raw)
        return self.observations

    def step(self, actions: np.ndarray) -> Step:
        raw, rewards, terminated, truncated, _ = self.env.step(actions)
        valid = ~self._reset_pending
        terminated, truncated = terminated & valid, truncated & valid
        done = terminated | truncated
        rewards = np.asarray(rewards, np.float64)
        self._episode_returns += rewards
        self._episode_lengths += valid
        episode_returns = np.where(done, self._episode_returns, np.nan)
        for i in np.flatnonzero(done):
            self.finished.append((float(self._episode_returns[i]), int(self._episode_lengths[i])))
        self._episode_returns[done | ~valid] = 0
        self._episode_lengths[done | ~valid] = 0
        self._reset_pending = done
        if self.normalize_reward:
            self._discounted = self._discounted * self.gamma + rewards
            # after a time limit shared by all envs, a whole step can be autoreset steps
            if self.update_stats and valid.any():
                self.return_stats.update(self._discounted[valid])
            self._discounted[done] = 0
            rewards = np.clip(
                rewards / np.sqrt(self.return_stats.var + 1e-8), -_NORMALIZED_CLIP, _NORMALIZED_CLIP
            )
        self.observations = self._observe(raw)
        rewards = rewards.astype(np.float32)
        return Step(self.observations, rewards, terminated, truncated, valid, episode_returns)

    def stats_state(self) -> dict:
        return {"obs": self.obs_stats.state_dict(), "return": self.return_stats.state_dict()}

    def load_stats_state(self, state: dict) -> None:
        self.obs_stats.load_state_dict(state["obs"])
        self.return_stats.load_state_dict(state["return"])

    def captured_by_checkpoint(self) -> bool:
        """Whether a checkpoint holds the environments' state, so that a resume continues the
        episodes in progress exactly. Asynchronous environments live in other processes; of
        gymnasium's ``EzPickle`` environments, which pickle only their constructor arguments,
        MuJoCo's are completed by their physics state (:func:`_physics_states`), while Box2D's
        (LunarLander) cannot be."""
        if self.vectorization == "async":
            return False
        return _pickles_whole(self.env) or _mujoco_environments(self.env) is not None

    def state(self) -> dict:
        """Everything needed to continue exactly: the environments themselves (pickled, with
        MuJoCo's physics), the normalization statistics and every counter.

        Environments a checkpoint cannot hold (:meth:`captured_by_checkpoint`) are left out, and
        :meth:`load_state` starts new episodes instead: the run continues with its networks,
        optimizer, statistics and counters, but not bit-identically.
        """
        import cloudpickle

        captured = self.captured_by_checkpoint()
        mujoco_environments = _mujoco_environments(self.env) if captured else None
        return {
            "env": cloudpickle.dumps(self.env) if captured else None,
            "physics": None
            if mujoco_environments is None
            else _physics_states(mujoco_environments),
            "stats": self.stats_state(),
            **{name: copy.deepcopy(getattr(self, name)) for name in _COUNTERS},
        }

    def load_state(self, state: dict, seed: int) -> bool:
        """Continue from :meth:`state`, in place: trainers keep their reference to this object.
        Without the environments (or with pickles that did not hold their state, as
        checkpoints written before MuJoCo's physics were saved have), new environments start
        new episodes from ``seed``. Returns whether the environments continue exactly."""
        import cloudpickle

        self.env.close()
        restored = None if state["env"] is None else cloudpickle.loads(state["env"])
        exact = restored is not None and _pickles_whole(restored)
        physics = state.get("physics")
        if restored is not None and not exact and physics is not None:
            mujoco_environments = _mujoco_environments(restored)
            if mujoco_environments is not None:
                _set_physics_states(mujoco_environments, physics)
                exact = True
        if restored is not None and not exact:
            restored.close()
        self.env = (
            restored
            if exact
            else make_gym_vector_env(
                self.env_id, self.num_envs, self.vectorization, **self.env_kwargs
            )
        )
        self.load_stats_state(state["stats"])
        for name in _COUNTERS:
            setattr(self, name, copy.deepcopy(state[name]))
        if not exact:  # the episodes in progress are gone: nothing of theirs may leak
            self.reset_seeded(seed)
        return exact

    def reset_seeded(self, seed: int) -> np.ndarray:
        """:meth:`reset` from one seed (the sub-environments take seed, seed + 1, ...)."""
        raw, _ = self.env.reset(seed=seed)
        self._episode_returns[:] = 0
        self._episode_lengths[:] = 0
        self._discounted[:] = 0
        self._reset_pending[:] = False
        self.observations = self._observe(raw)
        return self.observations

    def close(self) -> None:
        if self.env is not None:
            self.env.close()


@dataclass
class SeedStep:
    """One step of every seed's environments as tensors ``[S, N]`` (observations
    ``[S, N, *obs]``); the fields mean what :class:`Step`'s do."""

    observations: torch.Tensor
    rewards: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    valid: torch.Tensor


class SeedEnvs:
    """The training environments of S seeds: seed s's own :class:`VectorEnv` (seeded, normalized
    and checkpointed as a single-seed run's), stepped together, read and written as tensors with
    a leading seed axis. A seed that stopped training (``active`` False) is not stepped."""

    def __init__(self, envs: list[VectorEnv]):
        self.envs = envs
        self.spaces = envs[0].spaces
        self.num_seeds, self.num_envs = len(envs), envs[0].num_envs

    @property
    def observations(self) -> torch.Tensor:
        """``[S, N, *obs]`` float32: what each seed's policy acts on next."""
        return torch.as_tensor(np.stack([env.observations for env in self.envs]))

    def reset(self, seeds: list[list[int] | None] | None = None, active=None) -> None:
        """Start a new episode in every environment of the active seeds (``active`` [S] bool;
        all seeds if None): :meth:`VectorEnv.reset` of seed s, from ``seeds[s]`` (one reset
        seed per environment) when given, else from its continuing random streams."""
        for s, env in enumerate(self.envs):
            if active is None or active[s]:
                env.reset(None if seeds is None else seeds[s])

    def step(self, actions, active: np.ndarray) -> SeedStep:
        """Step the active seeds' environments with ``actions [S, N, ...]`` (a tensor on any
        device, or an array); a seed that is not active gets reward 0, no flags and ``valid``
        False."""
        if isinstance(actions, torch.Tensor):
            actions = actions.cpu().numpy()
        S, N = self.num_seeds, self.num_envs
        rewards = np.zeros((S, N), np.float32)
        terminated, truncated, valid = (np.zeros((S, N), bool) for _ in range(3))
        for s, env in enumerate(self.envs):
            if active[s]:
                step = env.step(actions[s])
                rewards[s], terminated[s], truncated[s], valid[s] = (
                    step.rewards,
                    step.terminated,
                    step.truncated,
                    step.valid,
                )
        return SeedStep(
            self.observations,
            torch.as_tensor(rewards),
            torch.as_tensor(terminated),
            torch.as_tensor(truncated),
            torch.as_tensor(valid),
        )

    def close(self) -> None:
        for env in self.envs:
            env.close()
