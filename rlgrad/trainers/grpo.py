"""GRPO on Gymnasium (Shao et al. 2024, critic-free), read top to bottom.

GRPO scores a policy by comparing answers to the *same* question. Here a question is a start
state: each group of ``group_size`` environments is reset with one shared seed, so its episodes
start alike and differ only by the actions sampled. Each iteration: 1. run every environment
through one episode from its group's start state; 2. turn returns into group-relative advantages
(r_i − μ)/(σ + ε) with :func:`rlgrad.returns.group_advantages`, no critic: either the episode's
return for all its steps (``advantage = "return"``, GRPO's outcome supervision) or each step's
reward-to-go against the other steps of its group (``"reward_to_go"``); 3. ``epochs`` clipped
updates on the stored log-probabilities with :func:`rlgrad.grpo.grpo_token_loss`, episodes in
the place of completions and steps in the place of tokens; 4. log, evaluate and checkpoint.

A group whose episodes all score the same (every CartPole episode at 500, say) carries no signal
and gets zero advantages; ``frac_reward_zero_std`` logs how often that happens.

    >>> from rlgrad.trainers import grpo
    >>> config = grpo.Config(env="CartPole-v1", total_steps=300, num_envs=4, group_size=2,
    ...                      eval_every=0, eval_episodes=2)
    >>> grpo.train(config, run_dir=getfixture("tmp_path") / "run").rows[-1]["step"] >= 300
    True
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from rlgrad.distributions import entropy_loss
from rlgrad.grpo import AGGREGATIONS, grpo_token_loss, masked_mean
from rlgrad.policy import approx_kl
from rlgrad.returns import equal_reward_groups, group_advantages
from rlgrad.support import configs, training
from rlgrad.support.rollout import SeedRollout
from rlgrad.support.runs import History, single_history

ALGORITHM = "grpo"
ADVANTAGES = ("return", "reward_to_go")
METRICS = (
    "policy_loss",
    "entropy",
    "approx_kl",
    "grad_norm",
    "group_return_std",
    "frac_reward_zero_std",
    "lr",
)


@dataclasses.dataclass(frozen=True)
class Config(configs.PolicyConfig):
    """GRPO's hyperparameters for Gymnasium tasks."""

    num_envs: int = 64
    """Environments stepped together: num_envs / group_size groups, one episode each."""
    group_size: int = 8
    """Episodes per group (G), all started from the same seeded reset state."""
    vectorization: str = "sync"
    """'sync' or 'async': a group reset needs one seed per environment, which Gymnasium's
    numpy-vectorized environments do not take."""
    advantage: str = "return"
    """'return': the episode's return, normalized within its group, for every step;
    'reward_to_go': each step's reward-to-go, normalized over all steps of its group."""
    gamma: float = 1.0
    """Discount of the returns (1: the episode's score itself)."""
    std_eps: float = 1e-8
    """ε in (r − μ)/(σ + ε)."""
    epochs: int = 4
    """Clipped updates on each batch of episodes (the old log-probabilities stay fixed)."""
    clip_eps: float = 0.2
    """Lower clip range ε of the ratio (and the upper one unless clip_eps_high)."""
    clip_eps_high: float | None = None
    """Upper clip range (DAPO's clip-higher), or none for clip_eps."""
    aggregation: str = "token_mean"
    """How step losses are averaged: token_mean (every step alike), seq_mean (every episode
    alike) or const_norm (sum over max_episode_steps per episode)."""
    max_episode_steps: int = 1000
    """Longest episode a batch can hold (the environment's own time limit should be shorter)."""
    lr: float = 3e-3
    """Adam learning rate."""


def check(config: Config) -> None:
    configs.check_policy_config(config)
    configs.positive(config, "group_size", "epochs", "clip_eps", "max_episode_steps")
    configs.non_negative(config, "std_eps")
    configs.require(
        config.group_size >= 2,
        f"config field 'group_size' must be at least 2 (a group compares episodes); got "
        f"{config.group_size}",
    )
    configs.require(
        config.num_envs % config.group_size == 0,
        f"config field 'num_envs' = {config.num_envs} must be a multiple of group_size = "
        f"{config.group_size}",
    )
    configs.require(
        config.vectorization in ("sync", "async"),
        f"config field 'vectorization' must be 'sync' or 'async' for GRPO's seeded group "
        f"resets; got {config.vectorization!r}",
    )
    configs.require(
        config.advantage in ADVANTAGES,
        f"config field 'advantage' must be one of {', '.join(ADVANTAGES)}; "
        f"got {config.advantage!r}",
    )
    configs.require(
        config.aggregation in AGGREGATIONS,
        f"config field 'aggregation' must be one of {', '.join(AGGREGATIONS)}; "
        f"got {config.aggregation!r}",
    )
    configs.require(
        config.clip_eps_high is None or config.clip_eps_high > 0,
        f"config field 'clip_eps_high' must be > 0 or none; got {config.clip_eps_high!r}",
    )


def build_agent(config: Config, spaces, seeds: int | None = None):
    return training.make_actor_critic(config, spaces, critic=False, seeds=seeds)


def make_optimizer(config: Config, agents) -> training.SeedAdam:
    return training.SeedAdam(agents.parameters(), lr=config.lr)


def group_seeds(config: Config, generator: torch.Generator) -> list[int]:
    """One fresh reset seed per group, repeated for each of its group_size environments."""
    groups = config.num_envs // config.group_size
    seeds = torch.randint(2**31 - 1, (groups,), generator=generator)
    return seeds.repeat_interleave(config.group_size).tolist()


def step_advantages(config: Config, returns: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Group-relative advantages from the reward-to-go ``returns`` and ``valid`` flags, both
    ``[T, *S, N]`` (``S``: seeds, when many train at once): ``[*S, N]`` episode advantages
    (``"return"``) or ``[*S, N, T]`` step advantages (``"reward_to_go"``)."""
    groups, size = config.num_envs // config.group_size, config.group_size
    if config.advantage == "return":
        episode_returns = returns[0].unflatten(-1, (groups, size))  # G_0: [*S, groups, size]
        return group_advantages(episode_returns, eps=config.std_eps).flatten(-2)
    # each group's valid steps, time-major as [T, size] would list them: [*S, groups, T·size]
    T = returns.shape[0]
    by_group = returns.unflatten(-1, (groups, size)).movedim(0, -2).flatten(-2)
    kept = valid.unflatten(-1, (groups, size)).movedim(0, -2).flatten(-2)
    advantages = torch.zeros_like(by_group)
    # group_advantages takes no mask and the groups keep different numbers of steps: one call
    # per group (of every seed)
    for index in kept.flatten(0, -2).any(dim=1).nonzero().flatten().tolist():
        group, mask = by_group.flatten(0, -2)[index], kept.flatten(0, -2)[index]
        advantages.view(-1, T * size)[index, mask] = group_advantages(
            group[mask][None], config.std_eps
        )[0]
    # [*S, groups, T·size] -> [*S, groups, size, T] -> [*S, N, T]
    return advantages.unflatten(-1, (T, size)).transpose(-2, -1).flatten(-3, -2)


def train(config: Config, run_dir: str | Path | None = None, **run_options) -> History:
    """Train GRPO on ``config.seed``: :func:`rlgrad.trainers.ppo.train` says what it takes."""
    return single_history(train_seeds(config, [config.seed], run_dir, **run_options))


def train_seeds(
    config: Config, seeds: list[int], run_dir: str | Path | None = None, **run_options
) -> list[History]:
    """GRPO on every seed of ``seeds`` at once, as :func:`rlgrad.trainers.ppo.train_seeds`."""
    check(config)
    # 0. set up: for each seed its environments, policy (no critic), optimizer state and run
    # directory; the policies are stacked on a leading seed axis and trained as one
    setup = training.start_seeds(
        ALGORITHM, config, seeds, run_dir, build_agent, make_optimizer, **run_options
    )
    runs, envs, agents, generators = setup.runs, setup.envs, setup.agents, setup.generators
    S, N = len(seeds), config.num_envs
    device = generators[0].device
    rollout = SeedRollout(config.max_episode_steps, S, N, envs.spaces, device)

    while not runs.done:
        with runs.training():
            # each seed's own lr: its episodes, and so its progress, are its own
            lr = training.annealed_seed_lrs(setup.optimizer, config, runs.progress_fractions())

            # 1. one episode per environment, each group from its own shared start state (a
            # seed draws its groups' reset seeds first, then its actions, as a single run)
            active = runs.active
            reset_seeds = [
                group_seeds(config, generators[s]) if active[s] else None for s in range(S)
            ]
            seed_steps = rollout.collect(
                envs, agents, generators, active, episodes=True, reset_seeds=reset_seeds
            )
            steps = max(seed_steps)

            # 2. group-relative advantages from the returns, within each seed; no critic
            runs.fail_non_finite("a reward", rollout.rewards[:steps], seed_axis=1)  # alone
            active = runs.active
            if not active.any():  # every seed failed on its rewards
                continue
            valid = rollout.valid[:steps]  # [T, S, N]
            _, returns = rollout.returns(config.gamma, active, steps)
            advantages = step_advantages(config, returns, valid)  # [S, N] or [S, N, T]
            episode_scores = returns[0].unflatten(-1, (-1, config.group_size))  # [S, groups, G]
            zero_std = equal_reward_groups(episode_scores)

            # 3. update: clipped steps on the stored log-probabilities, per seed episodes ×
            # steps = [S, N, T]
            observations = rollout.per_seed(rollout.observations, steps)  # [S, T·N, *obs]
            actions = rollout.per_seed(rollout.actions, steps)
            old_log_probs = rollout.log_probs[:steps].permute(1, 2, 0)
            mask = valid.permute(1, 2, 0)
            for _ in range(config.epochs):
                updating = torch.as_tensor(runs.active, device=device)
                log_probs, entropy = agents.log_prob_and_entropy(observations, actions)
                log_probs = log_probs.view(S, steps, N).transpose(1, 2)
                policy_loss = grpo_token_loss(
                    log_probs,
                    old_log_probs,
                    advantages,
                    mask,
                    clip_eps=config.clip_eps,
                    clip_eps_high=config.clip_eps_high,
                    aggregation=config.aggregation,
                    max_length=config.max_episode_steps,
                )  # [S]
                mean_entropy = masked_mean(
                    entropy.view(S, steps, N).transpose(1, 2).flatten(1), mask.flatten(1), dim=1
                )
                loss = policy_loss + entropy_loss(mean_entropy, config.ent_coef)
                grad_norm = training.seed_gradient_step(
                    runs, setup.optimizer, loss, config.max_grad_norm, updating
                )
            with torch.no_grad():
                kl = approx_kl(
                    log_probs.flatten(1), old_log_probs.flatten(1), mask=mask.flatten(1), dim=1
                )
            metrics = training.SeedMeans(S, *METRICS, device=device)
            metrics.add(
                updating,
                policy_loss=policy_loss,
                entropy=mean_entropy,
                approx_kl=kl,
                grad_norm=grad_norm,
                group_return_std=episode_scores.std(dim=-1, correction=0).mean(dim=-1),
                frac_reward_zero_std=zero_std.float().mean(dim=-1),
                lr=lr,
            )

        # 4. log, evaluate and checkpoint, each seed in its own run directory
        runs.end_iteration([n * N for n in seed_steps], metrics.means())
    return runs.finish()
