"""Advantage Actor-Critic (A2C; Mnih et al. 2016, synchronous variant), read top to bottom.

Each iteration: 1. collect a short rollout (T = 5 steps) from N environments; 2. compute GAE(λ)
advantages (λ = 1 gives the n-step return minus V); 3. one gradient step on the policy-gradient
loss, the value loss and the entropy bonus; 4. log, evaluate and checkpoint.

The value loss is ½(V − G)² (the course's convention), so ``vf_coef`` = 0.5 here weighs the critic
like ``vf_coef`` = 0.25 in SB3, whose A2C uses (V − G)² without the ½.

    >>> from rlgrad.trainers import a2c
    >>> config = a2c.Config(env="CartPole-v1", total_steps=400, eval_every=0, eval_episodes=2)
    >>> a2c.train(config, run_dir=getfixture("tmp_path") / "run").rows[-1]["step"]
    400
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from rlgrad.distributions import entropy_loss
from rlgrad.policy import policy_gradient_loss
from rlgrad.returns import normalize_advantages
from rlgrad.support import configs, training
from rlgrad.support.rollout import Rollout
from rlgrad.support.runs import History
from rlgrad.value import explained_variance, value_loss

ALGORITHM = "a2c"


@dataclasses.dataclass(frozen=True)
class Config(configs.PolicyConfig):
    """A2C's hyperparameters; the defaults are SB3's."""

    num_steps: int = 5
    """Steps per environment in each rollout (T)."""
    lam: float = 1.0
    """GAE λ; 1 gives the plain n-step advantage of A2C."""
    lr: float = 7e-4
    """RMSprop learning rate."""
    rms_alpha: float = 0.99
    """RMSprop smoothing constant α."""
    rms_eps: float = 1e-5
    """RMSprop ε."""
    normalize_advantages: bool = False
    """Normalize each rollout's advantages to mean 0, std 1."""


def check(config: Config) -> None:
    configs.check_policy_config(config)
    configs.positive(config, "num_steps", "rms_eps")
    configs.in_unit_interval(config, "lam", "rms_alpha")


def build_agent(config: Config, spaces):
    return training.make_actor_critic(config, spaces)


def make_optimizer(config: Config, agent) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(
        agent.parameters(), lr=config.lr, alpha=config.rms_alpha, eps=config.rms_eps
    )


def train(config: Config, run_dir: str | Path | None = None, **run_options) -> History:
    """Train A2C; return the metric history (also written to ``run_dir``).

    ``run_options``: ``resume``, ``checkpoint`` and ``progress``, as for :func:`ppo.train`.
    """
    check(config)
    # 0. set up: seeds, environments, networks, optimizer and the run directory (new or resumed)
    setup = training.start(ALGORITHM, config, run_dir, build_agent, make_optimizer, **run_options)
    run, env, agent = setup.run, setup.env, setup.agent
    rollout = Rollout(config.num_steps, config.num_envs, env.spaces)

    while not run.done:
        with run.training():
            lr = training.annealed_lr(setup.optimizer, config, run.progress_fraction())

            # 1. collect T steps from N environments with the current policy
            rollout.collect(env, agent, setup.generator)

            # 2. advantages: GAE(λ); a truncation bootstraps from V of the true final observation
            values, advantages, returns = rollout.gae(agent, config.gamma, config.lam)

            # 3. update: one step on L = L_π + c_v · ½(V − G)² − β H over the whole rollout
            usable = rollout.valid_indices()  # Gymnasium's autoreset steps carry no action
            observations = rollout.flat("observations")[usable]
            log_probs, entropy = agent.log_prob_and_entropy(
                observations, rollout.flat("actions")[usable]
            )
            step_advantages = advantages.flatten()[usable]
            if config.normalize_advantages and len(usable) > 1:
                step_advantages = normalize_advantages(step_advantages)
            policy_loss = policy_gradient_loss(log_probs, step_advantages)
            critic_loss = value_loss(agent.value(observations), returns.flatten()[usable])
            mean_entropy = entropy.mean()
            loss = (
                policy_loss
                + config.vf_coef * critic_loss
                + entropy_loss(mean_entropy, config.ent_coef)
            )
            grad_norm = training.gradient_step(run, setup.optimizer, loss, config.max_grad_norm)

        # 4. log, evaluate and checkpoint
        run.end_iteration(
            config.num_steps * config.num_envs,
            {
                "policy_loss": policy_loss.item(),
                "value_loss": critic_loss.item(),
                "entropy": mean_entropy.item(),
                "grad_norm": grad_norm,
                "explained_variance": float(
                    explained_variance(values.flatten()[usable], returns.flatten()[usable])
                ),
                "lr": lr,
            },
        )
    return run.finish()
