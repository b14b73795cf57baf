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
from rlgrad.grpo import masked_mean
from rlgrad.policy import policy_gradient_loss
from rlgrad.returns import normalize_advantages
from rlgrad.support import configs, training
from rlgrad.support.rollout import SeedRollout
from rlgrad.support.runs import History, single_history
from rlgrad.support.seed_rmsprop import SeedRMSprop
from rlgrad.value import explained_variance, value_loss

ALGORITHM = "a2c"
METRICS = ("policy_loss", "value_loss", "entropy", "grad_norm")


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


def build_agent(config: Config, spaces, seeds: int | None = None):
    return training.make_actor_critic(config, spaces, seeds=seeds)


def make_optimizer(config: Config, agents) -> SeedRMSprop:
    return SeedRMSprop(
        agents.parameters(), lr=config.lr, alpha=config.rms_alpha, eps=config.rms_eps
    )


def train(config: Config, run_dir: str | Path | None = None, **run_options) -> History:
    """Train A2C on ``config.seed``: :func:`rlgrad.trainers.ppo.train` says what it takes."""
    return single_history(train_seeds(config, [config.seed], run_dir, **run_options))


def train_seeds(
    config: Config, seeds: list[int], run_dir: str | Path | None = None, **run_options
) -> list[History]:
    """A2C on every seed of ``seeds`` at once, as :func:`rlgrad.trainers.ppo.train_seeds`."""
    check(config)
    # 0. set up: for each seed its environments, networks, optimizer state and run directory;
    # the networks are stacked on a leading seed axis and trained as one batched computation
    setup = training.start_seeds(
        ALGORITHM, config, seeds, run_dir, build_agent, make_optimizer, **run_options
    )
    runs, envs, agents, generators = setup.runs, setup.envs, setup.agents, setup.generators
    device = generators[0].device
    rollout = SeedRollout(config.num_steps, len(seeds), config.num_envs, envs.spaces, device)

    while not runs.done:
        with runs.training():
            lr = training.annealed_lr(setup.optimizer, config, runs.progress_fraction())

            # 1. collect T steps from N environments per seed with each seed's current policy
            rollout.collect(envs, agents, generators, runs.active)

            # 2. advantages: GAE(λ); a truncation bootstraps from V of the true final observation
            runs.fail_non_finite("a reward", rollout.rewards, seed_axis=1)  # that seed alone
            values, advantages, returns = rollout.gae(agents, config.gamma, config.lam, runs.active)

            # 3. update: one step per seed on L = L_π + c_v · ½(V − G)² − β H over its whole
            # rollout; every tensor below is [S, T·N, ...], every loss [S], one per seed
            updating = torch.as_tensor(runs.active, device=device)  # [S]
            # Gymnasium's autoreset steps carry no action; a seed that stopped keeps no sample
            kept = rollout.per_seed(rollout.valid) & updating[:, None]
            observations = rollout.per_seed(rollout.observations)
            log_probs, entropy = agents.log_prob_and_entropy(
                observations, rollout.per_seed(rollout.actions)
            )
            step_advantages, step_returns = rollout.per_seed(advantages), rollout.per_seed(returns)
            if config.normalize_advantages:
                normalized = normalize_advantages(step_advantages, mask=kept, dim=1)
                enough = kept.sum(dim=1, keepdim=True) > 1  # a lone sample stays as is
                step_advantages = torch.where(enough, normalized, step_advantages)
            # per seed: every reduction runs over dim 1, the samples of each seed's row
            policy_loss = policy_gradient_loss(log_probs, step_advantages, mask=kept, dim=1)
            critic_loss = value_loss(agents.value(observations), step_returns, mask=kept, dim=1)
            mean_entropy = masked_mean(entropy, kept, dim=1)
            loss = (
                policy_loss
                + config.vf_coef * critic_loss
                + entropy_loss(mean_entropy, config.ent_coef)
            )
            grad_norm = training.seed_gradient_step(
                runs, setup.optimizer, loss, config.max_grad_norm, updating
            )

        # 4. log, evaluate and checkpoint, each seed in its own run directory
        explained = explained_variance(rollout.per_seed(values), step_returns, mask=kept, dim=1)
        enough = kept.sum(dim=1) > 1  # the variance of fewer than two samples is no number
        # one host sync: a row [policy_loss, ..., explained_variance, enough] per seed
        measured = torch.stack(
            [policy_loss, critic_loss, mean_entropy, grad_norm, explained, enough.to(explained)],
            dim=1,
        ).tolist()
        runs.end_iteration(
            config.num_steps * config.num_envs,
            [
                {
                    **dict(zip(METRICS, numbers, strict=True)),
                    "explained_variance": explained_s if enough_s else None,
                    "lr": lr,
                }
                for *numbers, explained_s, enough_s in measured
            ],
        )
    return runs.finish()
