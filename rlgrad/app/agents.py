"""A trained agent loaded back from its run directory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from rlgrad.app.registry import module, saved_config
from rlgrad.errors import BadInputError
from rlgrad.support.configs import PolicyConfig
from rlgrad.support.envs import RunningMeanStd, make_gym_vector_env, spaces_of
from rlgrad.support.run_format import checkpoint_path


class Agent:
    """Acts like the trained policy: ``act(observations, deterministic=True)``.

    Observations are raw environment observations, one ``[*obs]`` or a batch ``[B, *obs]``; the
    run's observation normalization (if any) is applied here with its saved statistics.
    """

    def __init__(self, network, normalize_obs: bool, obs_stats: dict | None, algorithm: str):
        self.network, self.algorithm = network.eval(), algorithm
        self.normalize_obs = normalize_obs
        self.obs_stats = RunningMeanStd(network.spaces.observation_shape)
        if obs_stats is not None:
            self.obs_stats.load_state_dict(obs_stats)
        self.generator = torch.Generator().manual_seed(0)

    def act(self, observations, deterministic: bool = True) -> np.ndarray:
        observations = np.asarray(observations, np.float32)
        single = observations.shape == self.network.spaces.observation_shape
        batch = observations[None] if single else observations
        if self.normalize_obs:
            scaled = (batch - self.obs_stats.mean) / np.sqrt(self.obs_stats.var + 1e-8)
            batch = np.clip(scaled, -10.0, 10.0).astype(np.float32)
        with torch.inference_mode():
            tensor = torch.as_tensor(batch)
            if deterministic:
                actions = self.network.mode(tensor)
            else:
                actions, _ = self.network.sample(tensor, self.generator)
            actions = self.network.env_actions(actions)
        return actions[0] if single else actions


def load_agent(run_dir: str | Path, checkpoint: str | Path | None = None) -> Agent:
    """The agent of a run directory: ``checkpoint="latest"`` (the default) the weights where
    the run stopped, ``"best"`` those of its best evaluation (checkpoints/best.pt), any other
    value a checkpoint file's path."""
    algorithm, config = saved_config(run_dir)
    path = checkpoint_path(run_dir, checkpoint)
    if not path.exists():
        raise BadInputError(
            f"load_agent(): no checkpoint at {str(path)!r}; has the run saved one yet? "
            "(best.pt is written at the run's first evaluation)"
        )
    state = torch.load(path, weights_only=False, map_location="cpu")  # a GPU run acts on CPU
    env = make_gym_vector_env(config.env, 1)
    spaces = spaces_of(env, config.env)
    env.close()
    network = module(algorithm).build_agent(config, spaces)
    network.load_state_dict(state["modules"]["agent"])
    # only the policy-gradient trainers normalize observations; off-policy ones act on raw ones
    normalize = isinstance(config, PolicyConfig) and config.normalize_obs
    return Agent(network, normalize, state["env_stats"]["obs"], algorithm)
