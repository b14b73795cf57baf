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
from rlgrad.returns import discounted_returns, equal_reward_groups, group_advantages
from rlgrad.support import configs, training
from rlgrad.support.rollout import Rollout
from rlgrad.support.runs import History

ALGORITHM = "grpo"
ADVANTAGES = ("return", "reward_to_go")


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


def build_agent(config: Config, spaces):
    return training.make_actor_critic(config, spaces, critic=False)


def make_optimizer(config: Config, agent) -> torch.optim.Optimizer:
    return training.adam(agent.parameters(), lr=config.lr)


def group_seeds(config: Config, generator: torch.Generator) -> list[int]:
    """One fresh reset seed per group, repeated for each of its group_size environments."""
    groups = config.num_envs // config.group_size
    seeds = torch.randint(2**31 - 1, (groups,), generator=generator)
    return seeds.repeat_interleave(config.group_size).tolist()


def step_advantages(config: Config, returns: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``[N]`` episode advantages (``"return"``) or ``[N, T]`` step advantages, group-relative."""
    groups, size = config.num_envs // config.group_size, config.group_size
    if config.advantage == "return":
        episode_returns = returns[0].view(groups, size)  # G_0 of each environment's episode
        return group_advantages(episode_returns, eps=config.std_eps).flatten()
    advantages = torch.zeros_like(returns)
    for group in range(groups):
        columns = slice(group * size, (group + 1) * size)
        mask = valid[:, columns]
        steps_of_group = returns[:, columns][mask]
        advantages[:, columns][mask] = group_advantages(steps_of_group[None], config.std_eps)[0]
    return advantages.T


def train(config: Config, run_dir: str | Path | None = None, **run_options) -> History:
    """Train GRPO; return the metric history (also written to ``run_dir``).

    ``run_options``: ``resume``, ``checkpoint`` and ``progress``, as for :func:`ppo.train`.
    """
    check(config)
    # 0. set up: seeds, environments, the policy (no critic), optimizer and the run directory
    setup = training.start(ALGORITHM, config, run_dir, build_agent, make_optimizer, **run_options)
    run, env, agent = setup.run, setup.env, setup.agent
    rollout = Rollout(config.max_episode_steps, config.num_envs, env.spaces)

    while not run.done:
        with run.training():
            lr = training.annealed_lr(setup.optimizer, config, run.progress_fraction())

            # 1. one episode per environment, each group from its own shared start state
            steps = rollout.collect(
                env,
                agent,
                setup.generator,
                episodes=True,
                reset_seeds=group_seeds(config, setup.generator),
            )

            # 2. group-relative advantages from the returns; no critic
            valid = rollout.valid[:steps]
            returns = discounted_returns(
                rollout.rewards[:steps],
                rollout.terminated[:steps],
                rollout.truncated[:steps],
                config.gamma,
            )
            advantages = step_advantages(config, returns, valid)
            episode_scores = returns[0].view(-1, config.group_size)
            zero_std = equal_reward_groups(episode_scores)

            # 3. update: clipped steps on the stored log-probabilities, episodes × steps = [N, T]
            observations = rollout.observations[:steps].flatten(0, 1)
            actions = rollout.actions[:steps].flatten(0, 1)
            old_log_probs = rollout.log_probs[:steps].T
            mask = valid.T
            for _ in range(config.epochs):
                log_probs, entropy = agent.log_prob_and_entropy(observations, actions)
                log_probs = log_probs.view(steps, config.num_envs).T
                policy_loss = grpo_token_loss(
                    log_probs,
                    old_log_probs,
                    advantages,
                    mask,
                    clip_eps=config.clip_eps,
                    clip_eps_high=config.clip_eps_high,
                    aggregation=config.aggregation,
                    max_length=config.max_episode_steps,
                )
                mean_entropy = masked_mean(entropy.view(steps, config.num_envs).T, mask)
                loss = policy_loss + entropy_loss(mean_entropy, config.ent_coef)
                grad_norm = training.gradient_step(run, setup.optimizer, loss, config.max_grad_norm)
            with torch.no_grad():
                kl = approx_kl(log_probs[mask], old_log_probs[mask])

        # 4. log, evaluate and checkpoint
        run.end_iteration(
            steps * config.num_envs,
            {
                "policy_loss": policy_loss.item(),
                "entropy": mean_entropy.item(),
                "approx_kl": kl.item(),
                "grad_norm": grad_norm,
                "group_return_std": episode_scores.std(dim=-1, correction=0).mean().item(),
                "frac_reward_zero_std": zero_std.float().mean().item(),
                "lr": lr,
            },
        )
    return run.finish()
