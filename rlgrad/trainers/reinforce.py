"""REINFORCE (Williams 1992), with or without a learned baseline, read top to bottom.

Each iteration: 1. run every environment until it finishes one complete episode; 2. compute the
reward-to-go G_t of each step (and the advantage G_t − V(s_t) with a baseline); 3. one gradient
step on −mean(Â log π) (+ the value loss with a baseline); 4. log, evaluate and checkpoint.

An episode cut off by a time limit has no Monte-Carlo tail: with a baseline the return
bootstraps from V of the true final observation; without one the tail counts as 0 (the return of
the time-limited task).

    >>> from rlgrad.trainers import reinforce
    >>> config = reinforce.Config(env="CartPole-v1", total_steps=300, eval_every=0,
    ...                           eval_episodes=2)
    >>> reinforce.train(config, run_dir=getfixture("tmp_path") / "run").rows[-1]["step"] >= 300
    True
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from rlgrad.distributions import entropy_loss
from rlgrad.policy import policy_gradient_loss
from rlgrad.returns import discounted_returns, normalize_advantages
from rlgrad.support import configs, training
from rlgrad.support.rollout import Rollout
from rlgrad.support.runs import History
from rlgrad.value import value_loss

ALGORITHM = "reinforce"


@dataclasses.dataclass(frozen=True)
class Config(configs.PolicyConfig):
    """REINFORCE's hyperparameters."""

    num_envs: int = 8
    """Environments stepped together; each update uses one complete episode from each."""
    baseline: bool = True
    """Subtract a learned V(s_t) from the return (variance reduction, no bias)."""
    normalize_advantages: bool = True
    """Normalize each batch's advantages (or returns) to mean 0, std 1."""
    max_episode_steps: int = 1000
    """Longest episode a batch can hold (the environment's own time limit should be shorter)."""
    lr: float = 1e-3
    """Adam learning rate."""
    max_grad_norm: float | None = None
    """Clip the global gradient norm to this (none: no clipping)."""


def check(config: Config) -> None:
    configs.check_policy_config(config)
    configs.positive(config, "max_episode_steps")


def build_agent(config: Config, spaces):
    return training.make_actor_critic(config, spaces, critic=config.baseline)


def make_optimizer(config: Config, agent) -> torch.optim.Optimizer:
    return training.adam(agent.parameters(), lr=config.lr)


def train(config: Config, run_dir: str | Path | None = None, **run_options) -> History:
    """Train REINFORCE; return the metric history (also written to ``run_dir``).

    ``run_options``: ``resume``, ``checkpoint`` and ``progress``, as for :func:`ppo.train`.
    """
    check(config)
    # 0. set up: seeds, environments, networks, optimizer and the run directory (new or resumed)
    setup = training.start(ALGORITHM, config, run_dir, build_agent, make_optimizer, **run_options)
    run, env, agent = setup.run, setup.env, setup.agent
    rollout = Rollout(config.max_episode_steps, config.num_envs, env.spaces)

    while not run.done:
        with run.training():
            lr = training.annealed_lr(setup.optimizer, config, run.progress_fraction())

            # 1. collect one complete episode from each environment
            steps = rollout.collect(env, agent, setup.generator, episodes=True)

            # 2. returns G_t (bootstrapped with V only at a time limit) and advantages G_t − V
            rewards = rollout.rewards[:steps]
            terminated, truncated = rollout.terminated[:steps], rollout.truncated[:steps]
            if config.baseline:
                values, next_values = rollout.values(agent, steps)
                returns = discounted_returns(
                    rewards, terminated, truncated, config.gamma, next_values
                )
                advantages = returns - values
            else:
                returns = discounted_returns(rewards, terminated, truncated, config.gamma)
                advantages = returns

            # 3. update: one step on −mean(Â log π) (+ c_v · ½(V − G)² with a baseline)
            usable = rollout.valid[:steps].flatten().nonzero().squeeze(1)
            observations = rollout.observations[:steps].flatten(0, 1)[usable]
            actions = rollout.actions[:steps].flatten(0, 1)[usable]
            log_probs, entropy = agent.log_prob_and_entropy(observations, actions)
            step_advantages = advantages.flatten()[usable]
            if config.normalize_advantages and len(usable) > 1:
                step_advantages = normalize_advantages(step_advantages)
            policy_loss = policy_gradient_loss(log_probs, step_advantages)
            mean_entropy = entropy.mean()
            loss = policy_loss + entropy_loss(mean_entropy, config.ent_coef)
            if config.baseline:
                critic_loss = value_loss(agent.value(observations), returns.flatten()[usable])
                loss = loss + config.vf_coef * critic_loss
            grad_norm = training.gradient_step(run, setup.optimizer, loss, config.max_grad_norm)

        # 4. log, evaluate and checkpoint
        metrics = {
            "policy_loss": policy_loss.item(),
            "entropy": mean_entropy.item(),
            "grad_norm": grad_norm,
            "lr": lr,
        }
        if config.baseline:
            metrics["value_loss"] = critic_loss.item()
        run.end_iteration(steps * config.num_envs, metrics)
    return run.finish()
