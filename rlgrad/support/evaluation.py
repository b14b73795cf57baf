"""Deterministic evaluation on separately seeded environments."""

from __future__ import annotations

import numpy as np
import torch

from rlgrad.envs import make
from rlgrad.errors import BadInputError
from rlgrad.support.envs import VectorEnv
from rlgrad.support.torch_envs import normalized

ENV_BACKENDS = ("gymnasium", "torch")
_DONE_CHECK_EVERY = 32  # torch backend: steps between the host's looks at "all episodes over?"

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
    backend: str = "gymnasium",
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Evaluate S seeds' policies at once: the raw returns ``[S, episodes]``.

    ``act(observations [S, episodes, *obs] tensor)`` returns the environment actions
    ``[S, episodes, ...]`` (a NumPy array or a tensor); seed s plays on its own environments,
    seeded from :func:`eval_seed` of its seed, and with ``obs_stats`` (one per seed) sees
    observations normalized by its own frozen statistics. Each environment's first episode
    counts. ``backend`` 'torch' plays on the :mod:`rlgrad.envs` task on ``device`` (seed s's
    ``episodes`` copies are group s, on a generator seeded with ``eval_seed(seed)``), where
    observations and actions stay tensors on the device.
    """
    if backend not in ENV_BACKENDS:
        raise BadInputError(
            f"evaluate_seeds(): 'backend' must be one of {', '.join(ENV_BACKENDS)}; got {backend!r}"
        )
    if backend == "torch":
        return _evaluate_seeds_on_device(act, env_id, episodes, seeds, obs_stats, max_steps, device)
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


def _evaluate_seeds_on_device(act, env_id, episodes, seeds, obs_stats, max_steps, device):
    """:func:`evaluate_seeds` on the torch task: every step is tensors on ``device``; the host
    looks whether every episode is over only every few steps (the extra steps count nowhere)."""
    S, E = len(seeds), episodes
    env = make(env_id, E, device, seeds=[eval_seed(seed) for seed in seeds])
    raw, _ = env.reset()
    if obs_stats is not None:  # [S, *obs] each, frozen
        mean, var = (
            torch.as_tensor(np.stack([stats[name] for stats in obs_stats]), device=env.device)
            for name in ("mean", "var")
        )
    running = torch.zeros(S, E, dtype=torch.float64, device=env.device)
    returns = torch.full_like(running, float("nan"))
    done = torch.zeros(S, E, dtype=torch.bool, device=env.device)
    for t in range(max_steps):
        observations = raw.view(S, E, *raw.shape[1:])
        if obs_stats is not None:
            observations = normalized(observations, mean, var)
        with torch.inference_mode():
            actions = torch.as_tensor(act(observations), device=env.device)
        raw, rewards, terminated, truncated, _ = env.step(actions.flatten(0, 1))
        running = running + rewards.view(S, E)
        ended = (terminated | truncated).view(S, E) & ~done
        returns = torch.where(ended, running, returns)
        done = done | ended
        if t % _DONE_CHECK_EVERY == _DONE_CHECK_EVERY - 1 and bool(done.all()):
            break
    return returns.cpu().numpy()
