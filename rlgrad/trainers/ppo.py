"""Proximal Policy Optimization (Schulman et al. 2017), read top to bottom.

Each iteration: 1. collect T steps from N environments; 2. compute GAE(λ) advantages; 3. run
``epochs`` passes of minibatch gradient steps on the clipped surrogate, the value loss and the
entropy bonus; 4. log, evaluate and checkpoint. Every formula comes from the formula layer.

    >>> from rlgrad.trainers import ppo
    >>> config = ppo.Config(env="CartPole-v1", total_steps=512, num_envs=4, num_steps=64,
    ...                     eval_every=0, eval_episodes=2)
    >>> history = ppo.train(config, run_dir=getfixture("tmp_path") / "run")
    >>> history.rows[-1]["step"]
    512
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from rlgrad.distributions import entropy_loss
from rlgrad.policy import approx_kl, clip_fraction, ppo_clip_loss
from rlgrad.returns import normalize_advantages
from rlgrad.support import configs, taylor, training
from rlgrad.support.rollout import Rollout
from rlgrad.support.runs import History
from rlgrad.value import explained_variance, value_loss

ALGORITHM = "ppo"
METRICS = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "grad_norm")


@dataclasses.dataclass(frozen=True)
class Config(configs.PolicyConfig):
    """PPO's hyperparameters; the defaults are CleanRL's for classic control."""

    num_envs: int = 4
    """Environments stepped together (gymnasium.make_vec)."""
    num_steps: int = 128
    """Steps per environment in each rollout (T); a rollout holds num_steps · num_envs samples."""
    lam: float = 0.95
    """GAE λ: 0 is the one-step TD error, 1 the Monte-Carlo return minus V."""
    epochs: int = 4
    """Passes over each rollout."""
    minibatch_size: int = 128
    """Samples per gradient step; at most num_steps · num_envs."""
    clip_eps: float = 0.2
    """Clip range ε of the probability ratio, clip(r, 1 − ε, 1 + ε)."""
    clip_value_eps: float | None = None
    """Clip the value update to ±this around the old values (none: unclipped value loss)."""
    normalize_advantages: bool = True
    """Normalize advantages to mean 0, std 1 within each minibatch."""
    target_kl: float | None = None
    """Stop the epochs of an update once the approximate KL exceeds 1.5 × this (none: never)."""
    anneal_lr: bool = True
    """Decay the learning rate linearly to 0 over total_steps."""
    lr: float = 2.5e-4
    """Adam learning rate."""
    taylor_every: int = 0
    """Every this many updates, log the update's Taylor diagnostics: predicted against actual
    surrogate change, KL and probability ratios (taylor_* columns; 0: never)."""


def check(config: Config) -> None:
    configs.check_policy_config(config)
    configs.positive(config, "num_steps", "epochs", "minibatch_size", "clip_eps")
    configs.non_negative(config, "taylor_every")
    configs.in_unit_interval(config, "lam")
    rollout_size = config.num_steps * config.num_envs
    configs.require(
        config.minibatch_size <= rollout_size,
        f"config field 'minibatch_size' = {config.minibatch_size} is larger than a rollout of "
        f"num_steps · num_envs = {rollout_size} samples; lower it or raise num_steps",
    )
    for name in ("clip_value_eps", "target_kl"):
        value = getattr(config, name)
        configs.require(
            value is None or value > 0, f"config field '{name}' must be > 0 or none; got {value!r}"
        )


def build_agent(config: Config, spaces):
    return training.make_actor_critic(config, spaces)


def make_optimizer(config: Config, agent) -> torch.optim.Optimizer:
    return training.adam(agent.parameters(), lr=config.lr, eps=1e-5)


def train(config: Config, run_dir: str | Path | None = None, **run_options) -> History:
    """Train PPO; return the metric history (also written to ``run_dir``).

    ``run_options``: ``resume=True`` continues the run in ``run_dir`` from its latest checkpoint
    (or ``checkpoint=PATH``); ``progress=True`` shows a progress bar.
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

            # 3. update: epochs of minibatch steps on the clipped surrogate, value loss and entropy
            observations, actions = rollout.flat("observations"), rollout.flat("actions")
            old_log_probs, old_values = rollout.flat("log_probs"), values.flatten()
            flat_advantages, flat_returns = advantages.flatten(), returns.flatten()
            usable = rollout.valid_indices()  # Gymnasium's autoreset steps carry no action
            means = training.Means(*METRICS)  # summed over minibatches, no host sync
            minibatches = 0
            kl_exceeded = False
            # θ_old, when this update's Taylor diagnostics are due (else None)
            policy_before = taylor.snapshot(agent, config.taylor_every, run.updates)
            for _ in range(config.epochs):
                order = usable[torch.randperm(len(usable), generator=setup.generator)]
                for batch in order.split(config.minibatch_size):
                    log_probs, entropy = agent.log_prob_and_entropy(
                        observations[batch], actions[batch]
                    )
                    kl = approx_kl(log_probs.detach(), old_log_probs[batch])
                    if config.target_kl is not None and kl > 1.5 * config.target_kl:
                        kl_exceeded = True  # the policy moved far enough: end this update
                        break
                    batch_advantages = flat_advantages[batch]
                    if config.normalize_advantages and len(batch) > 1:
                        batch_advantages = normalize_advantages(batch_advantages)
                    policy_loss = ppo_clip_loss(
                        log_probs, old_log_probs[batch], batch_advantages, config.clip_eps
                    )
                    critic_loss = value_loss(
                        agent.value(observations[batch]),
                        flat_returns[batch],
                        old_values[batch] if config.clip_value_eps is not None else None,
                        config.clip_value_eps,
                    )
                    mean_entropy = entropy.mean()
                    loss = (
                        policy_loss
                        + config.vf_coef * critic_loss
                        + entropy_loss(mean_entropy, config.ent_coef)
                    )
                    grad_norm = training.gradient_step(
                        run, setup.optimizer, loss, config.max_grad_norm
                    )
                    ratios = torch.exp(log_probs.detach() - old_log_probs[batch])
                    means.add(
                        policy_loss=policy_loss.detach(),
                        value_loss=critic_loss.detach(),
                        entropy=mean_entropy.detach(),
                        approx_kl=kl,
                        clip_fraction=clip_fraction(ratios, config.clip_eps),
                        grad_norm=grad_norm,
                    )
                    minibatches += 1
                if kl_exceeded:
                    break

            # the update's Taylor models against what it did (empty cells between taylor_every)
            diagnosed = {}
            if config.taylor_every:
                diagnosed = taylor.diagnostics(
                    agent,
                    policy_before,
                    observations[usable],
                    actions[usable],
                    old_log_probs[usable],
                    flat_advantages[usable],
                    normalize=config.normalize_advantages,
                )

        # 4. log, evaluate and checkpoint
        valid = rollout.valid.flatten()
        run.end_iteration(
            config.num_steps * config.num_envs,
            {
                **means.means(),
                "explained_variance": float(
                    explained_variance(old_values[valid], flat_returns[valid])
                ),
                "lr": lr,
                "minibatches": minibatches,
                **diagnosed,
            },
        )
    return run.finish()
