"""Deterministic evaluation on separately seeded environments."""

from __future__ import annotations

import numpy as np
import torch

from rlgrad.support.envs import VectorEnv

EVAL_SEED_OFFSET = 1_000_003  # evaluation environments never share a seed with training ones
EVAL_SEED_STRIDE = 10_000


def eval_seed(seed: int) -> int:
    """The seed of the first evaluation environment of training seed ``seed``; environment i gets
    ``eval_seed(seed) + i``.

    Consecutive training seeds are 10,000 evaluation seeds apart, so their evaluation sets share
    no episode (for up to 10,000 episodes): with ``seed + offset`` instead, seeds 0 and 1 would
    score 9 of 10 episodes on the same start states, and five seeds would not be five
    independent measurements.
    """
    return EVAL_SEED_OFFSET + EVAL_SEED_STRIDE * seed


def evaluate(
    agent,
    env_id: str,
    episodes: int,
    seed: int,
    *,
    obs_stats: dict | None = None,
    normalize_obs: bool = False,
    deterministic: bool = True,
    max_steps: int = 1_000_000,
) -> np.ndarray:
    """The raw returns of ``episodes`` episodes, one per parallel environment, ``[episodes]``.

    ``agent`` needs ``mode(observations)``, ``sample(observations, generator)`` and
    ``env_actions(actions)``. Every call uses the same environment seeds, so two evaluations of
    the same agent give the same numbers and evaluation never disturbs training's random streams.
    """
    # a SAC or TD3 agent trained on a GPU acts there; every other agent is on the CPU
    parameters = agent.parameters() if isinstance(agent, torch.nn.Module) else iter(())
    device = next(parameters, torch.empty(0)).device
    generator = torch.Generator(device).manual_seed(eval_seed(seed))

    def act(observations: torch.Tensor) -> np.ndarray:  # [1, episodes, *obs] for one seed
        observations = observations[0].to(device)
        if deterministic:
            actions = agent.mode(observations)
        else:
            actions, _ = agent.sample(observations, generator)
        return agent.env_actions(actions)[None]

    stats = [obs_stats] if normalize_obs else None
    return evaluate_seeds(act, env_id, episodes, [seed], obs_stats=stats, max_steps=max_steps)[0]


def evaluate_seeds(
    act,
    env_id: str,
    episodes: int,
    seeds: list[int],
    *,
    obs_stats: list[dict] | None = None,
    max_steps: int = 1_000_000,
) -> np.ndarray:
    """Evaluate S seeds' policies at once: the raw returns ``[S, episodes]``.

    ``act(observations [S, episodes, *obs] tensor)`` returns the environment actions
    ``[S, episodes, ...]`` (a NumPy array); seed s plays on its own environments, seeded from
    :func:`eval_seed` of its seed, and with ``obs_stats`` (one per seed) sees observations
    normalized by its own frozen statistics.
    """
    envs = [VectorEnv(env_id, episodes, eval_seed(seed)) for seed in seeds]
    if obs_stats is not None:
        for env, stats in zip(envs, obs_stats, strict=True):
            env.normalize_obs, env.update_stats = True, False
            env.obs_stats.load_state_dict(stats)
            env.observations = env.normalized(env.observations)
    returns = np.full((len(seeds), episodes), np.nan)
    done = np.zeros((len(seeds), episodes), bool)
    for _ in range(max_steps):
        with torch.inference_mode():
            actions = act(torch.as_tensor(np.stack([env.observations for env in envs])))
        for s, env in enumerate(envs):
            if done[s].all():
                continue
            step = env.step(actions[s])
            finished = (step.terminated | step.truncated) & ~done[s]
            returns[s, finished] = step.episode_returns[finished]
            done[s] |= finished
        if done.all():
            break
    for env in envs:
        env.close()
    return returns
