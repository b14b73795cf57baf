"""CrossQ (Bhatt et al., ICLR 2024), read top to bottom: SAC without target networks.

CrossQ is SAC with three changes: 1. no target critics: the soft target is read off the critics
themselves; 2. batch renormalisation before every linear layer of the critics and the actor;
3. the critics evaluate (s, a) and (s′, a′), a′ ~ π(·|s′), in one joint pass, so that both halves
are normalised with the statistics of their mixture (:func:`rlgrad.joint_soft_q_targets`). With
no lagging target, a larger learning rate, Adam β₁ = 0.5 and a policy delay of 3 are its
defaults (the paper's and sb3-contrib's). Each environment step: 1. act with a squashed Gaussian
sample of the actor in evaluation mode (uniformly random actions before ``learning_starts``);
2. store the transition; 3. when due, take ``gradient_steps`` gradient steps on a replayed
minibatch:

    [Q_k(s, a); Q_k(s′, a′)] = Q_k([s; s′], [a; a′])      (training mode: batch statistics)
    y = r + γ(1 − term)·(min_k stop_grad(Q_k(s′, a′)) − α log π(a′|s′))
    L_Q = mean_k ½(Q_k(s, a) − y)²
    L_π = mean(α log π(ã|s) − min_k Q_k(s, ã)),  ã ~ π(·|s)   (critics in evaluation mode)
    L_α = −mean(log α · (log π(ã|s) + H̄))

then log, evaluate and checkpoint. Nothing moves by Polyak averaging: there is nothing to move.

Training and evaluation modes matter here, as with any batch norm. The networks stay in
evaluation mode (running statistics) and switch to training mode only inside
:func:`~rlgrad.support.batch_renorm.batch_statistics`: the critics for the joint pass, the
actor for the pass of its own loss. The next actions a′, the critics in the actor's loss, acting
and evaluation all use the running statistics, as in sb3-contrib.

One backward pass and one Adam step per gradient step, as in :mod:`rlgrad.trainers.sac`: the
actor's loss reads the critics with detached weights (and the running statistics, which it
does not change), so the sum of the losses has each loss's gradient in each parameter group.
The actor therefore sees the critics as they were before this step's update (sb3-contrib updates
the critics first).

    >>> from rlgrad.trainers import crossq
    >>> config = crossq.Config(env="Pendulum-v1", total_steps=400, learning_starts=200,
    ...                        batch_size=32, hidden_sizes=(32, 32), critic_hidden_sizes=(32, 32),
    ...                        log_every=200, eval_every=0, eval_episodes=1)
    >>> crossq.train(config, run_dir=getfixture("tmp_path") / "run").rows[-1]["step"]
    400
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import NamedTuple

import torch

from rlgrad.continuous import joint_soft_q_targets, sac_actor_loss, temperature_loss
from rlgrad.support import configs, offpolicy, training
from rlgrad.support.batch_renorm import batch_statistics
from rlgrad.support.continuous_nets import (
    ActorCritics,
    CriticEnsemble,
    SquashedGaussianActor,
    check_continuous,
)
from rlgrad.support.replay import ReplayBuffer
from rlgrad.support.runs import History
from rlgrad.trainers import sac
from rlgrad.value import value_loss

ALGORITHM = "crossq"


@dataclasses.dataclass(frozen=True)
class Config(sac.Config):
    """CrossQ's hyperparameters: SAC's (:class:`rlgrad.trainers.sac.Config`) with what CrossQ
    changes. The defaults are sb3-contrib's CrossQ, except the critics' width (1,024 there), which
    costs hours per 100k steps on a CPU: set ``critic_hidden_sizes`` to (1024, 1024) or the
    paper's (2048, 2048) on a GPU."""

    lr: float = 1e-3
    """Adam learning rate of the actor, the critics (unless critic_lr) and the temperature."""
    adam_betas: tuple[float, float] = (0.5, 0.999)
    """Adam's (β₁, β₂); CrossQ's β₁ = 0.5 forgets old gradients sooner than the usual 0.9."""
    policy_delay: int = 3
    """Update the actor and α on every policy_delay-th gradient step (the critics on each)."""
    critic_hidden_sizes: tuple[int, ...] = (256, 256)
    """Hidden layer widths of each critic (the actor's are hidden_sizes)."""
    batch_renorm_momentum: float = 0.01
    """m of the running statistics, μ ← (1 − m)μ + m·μ_B (torch's BatchNorm1d convention)."""
    batch_renorm_eps: float = 1e-3
    """ε inside the square roots of the batch and running standard deviations."""
    batch_renorm_r_max: float = 3.0
    """The largest correction r = σ_B/σ of the batch's scale (and 1/r_max the smallest)."""
    batch_renorm_d_max: float = 5.0
    """The largest correction |d| = |μ_B − μ|/σ of the batch's shift."""
    batch_renorm_warmup: int = 100_000
    """Training passes of each batch-renorm layer as plain batch norm (r = 1, d = 0) before the
    corrections apply (the critics take one a gradient step, the actor one per actor update)."""
    tau: float = 1.0
    """CrossQ has no target networks: the only value is 1 (the target critic is the critic)."""


def check(config: Config) -> None:
    sac.check(config)
    configs.require(
        config.tau == 1.0,
        f"config field 'tau' must be 1: crossq has no target networks to average; got "
        f"{config.tau!r} (use sac for Polyak-averaged targets)",
    )
    configs.require(
        len(config.adam_betas) == 2 and all(0.0 <= b < 1.0 for b in config.adam_betas),
        f"config field 'adam_betas' must be two numbers in [0, 1); got {config.adam_betas!r}",
    )
    configs.require(
        bool(config.critic_hidden_sizes) and all(w >= 1 for w in config.critic_hidden_sizes),
        "config field 'critic_hidden_sizes' must be one or more widths >= 1; got "
        f"{config.critic_hidden_sizes!r}",
    )
    configs.require(
        config.batch_size >= 2,
        f"config field 'batch_size' must be >= 2 (batch statistics); got {config.batch_size}",
    )
    configs.positive(config, "batch_renorm_eps")
    configs.in_unit_interval(config, "batch_renorm_momentum")
    configs.non_negative(config, "batch_renorm_d_max", "batch_renorm_warmup")
    configs.require(
        config.batch_renorm_r_max >= 1.0,
        f"config field 'batch_renorm_r_max' must be >= 1; got {config.batch_renorm_r_max!r}",
    )


def batch_renorm_options(config: Config) -> dict:
    """The keyword arguments of every :class:`~rlgrad.support.batch_renorm.BatchRenorm` layer."""
    return {
        "momentum": config.batch_renorm_momentum,
        "eps": config.batch_renorm_eps,
        "r_max": config.batch_renorm_r_max,
        "d_max": config.batch_renorm_d_max,
        "warmup_steps": config.batch_renorm_warmup,
    }


def build_agent(config: Config, spaces) -> ActorCritics:
    check_continuous(spaces, ALGORITHM)
    renorm = batch_renorm_options(config)
    actor = SquashedGaussianActor(spaces, config.hidden_sizes, config.activation, renorm)
    critics = CriticEnsemble(
        spaces, config.critic_hidden_sizes, config.activation, config.num_critics, renorm
    )
    log_alpha = math.log(config.alpha_init) if config.alpha is None else None
    # evaluation mode (running statistics) unless a pass asks for batch statistics
    return ActorCritics(spaces, actor, critics, log_alpha).eval()


def make_optimizer(config: Config, agent: ActorCritics) -> torch.optim.Optimizer:
    """One Adam with CrossQ's betas over three parameter groups: actor, critics and log α."""
    groups = [
        {"params": list(agent.actor.parameters()), "lr": config.lr},
        {"params": list(agent.critics.parameters()), "lr": config.critic_lr or config.lr},
    ]
    if config.alpha is None:
        groups.append({"params": [agent.log_alpha], "lr": config.lr})
    return training.adam(groups, betas=tuple(config.adam_betas))


class Companions(NamedTuple):
    """CrossQ's checkpointed companions of the agent (no target critics)."""

    replay: ReplayBuffer
    counters: offpolicy.Counters  # gradient steps so far: the actor updates on every
    # policy_delay-th


def build_companions(config: Config, spaces, agent: ActorCritics) -> Companions:
    return Companions(offpolicy.replay_buffer(config, spaces, agent), offpolicy.Counters())


def train(config: Config, run_dir: str | Path | None = None, **run_options) -> History:
    """Train CrossQ; return the metric history (also written to ``run_dir``).

    ``run_options``: ``resume``, ``checkpoint`` and ``progress``, as for :func:`ppo.train`.
    """
    check(config)
    # 0. set up: seeds, environments, actor and critics, replay buffer, Adam, run
    setup = training.start(
        ALGORITHM,
        config,
        run_dir,
        build_agent,
        make_optimizer,
        build_companions,
        device=config.device,
        matmul_precision=config.matmul_precision,
        **run_options,
    )
    run, env, agent, optimizer, generator, (replay, counters) = setup
    actor, critics = agent.actor, agent.critics
    target_entropy = sac.entropy_target(config, actor)
    schedule = offpolicy.Schedule.of(config)
    steps = run.steps

    while not run.done:
        means = new_means()
        gradient_steps_before = counters.gradient_steps
        row_due = offpolicy.iteration_end(run, config.log_every)
        with run.training():
            while steps < row_due:
                # 1. act (uniformly random before learning starts, then samples of the policy),
                # 2. step and store (the buffer keeps the true final observation of a cut episode)
                previous = steps
                steps += offpolicy.explore_and_store(
                    env, replay, actor, steps, config.learning_starts, generator
                )

                # 3. gradient steps when due: the critics, and the actor and α when delayed due
                for _ in range(schedule.gradient_steps_due(previous, steps, len(replay))):
                    batch = replay.sample(config.batch_size, generator, config.n_step, config.gamma)
                    alpha = temperature(config, agent)
                    with torch.no_grad():
                        next_actions, next_log_probs = actor.sample(
                            batch.next_observations, generator
                        )
                    # one pass over [s; s′] and [a; a′], normalised with their joint statistics
                    with batch_statistics(critics):
                        joint_q = critics(
                            torch.cat([batch.observations, batch.next_observations]),
                            torch.cat([batch.actions, next_actions]),
                        )  # [2B, K]
                    q_values, targets = joint_soft_q_targets(
                        joint_q,
                        batch.returns,
                        next_log_probs,
                        batch.terminated,
                        batch.discounts,
                        alpha,
                    )
                    critic_loss = value_loss(q_values, targets[:, None].expand_as(q_values))
                    loss = critic_loss
                    if counters.gradient_steps % config.policy_delay == 0:
                        # SAC's actor and α losses; the actor's own pass sees batch statistics,
                        # the critics judge with their running ones (and detached weights)
                        with batch_statistics(actor):
                            loss = loss + policy_losses(
                                agent, batch.observations, alpha, target_entropy, generator, means
                            )
                    grad_norm = training.gradient_step(run, optimizer, loss, config.max_grad_norm)
                    means.add(
                        critic_loss=critic_loss.detach(),
                        q_mean=q_values.detach().mean(),
                        grad_norm=grad_norm,
                    )
                    counters.gradient_steps += 1

        # 4. log, evaluate and checkpoint
        gradient_steps = counters.gradient_steps - gradient_steps_before
        row = metrics(config, agent, means, gradient_steps, counters, replay)
        run.end_iteration(steps - run.steps, row)
    return run.finish()


def temperature(config: Config, agent: ActorCritics) -> float | torch.Tensor:
    """α for this gradient step: the learned exp(log α), detached, or the fixed one (SAC's,
    for one seed)."""
    return agent.log_alpha.detach().exp() if config.alpha is None else config.alpha


def policy_losses(
    agent: ActorCritics,
    observations: torch.Tensor,
    alpha: float | torch.Tensor,
    target_entropy: float,
    generator: torch.Generator,
    means: training.Means,
) -> torch.Tensor:
    """SAC's L_π, plus L_α when α is learned, on the policy's own reparameterized actions
    ã ~ π(·|s), for one seed.
    The critics judge ã with detached weights, by the pessimistic min_k as in the targets, so
    only the actor (and log α) get gradients; adds both to ``means`` with the entropy."""
    own_actions, log_probs = agent.actor.sample(observations, generator)
    q_policy = agent.critics(observations, own_actions, frozen=True)  # [B, K]
    actor_loss = sac_actor_loss(log_probs, q_policy.min(dim=-1).values, alpha)
    means.add(actor_loss=actor_loss.detach(), entropy=-log_probs.detach().mean())
    if not hasattr(agent, "log_alpha"):  # α is fixed
        return actor_loss
    alpha_loss = temperature_loss(agent.log_alpha, log_probs, target_entropy)
    means.add(alpha_loss=alpha_loss.detach())
    return actor_loss + alpha_loss


def new_means() -> training.Means:
    """The per-gradient-step values a CrossQ metrics row averages (SAC's columns)."""
    return training.Means(
        "critic_loss", "actor_loss", "alpha_loss", "entropy", "q_mean", "grad_norm"
    )


def metrics(
    config: Config,
    agent: ActorCritics,
    means: training.Means,
    gradient_steps: int,
    counters: offpolicy.Counters,
    replay: ReplayBuffer,
) -> dict:
    """A metrics row: the averaged losses, α, the entropy and Q, and the counts."""
    averaged = means.means()
    return {
        "critic_loss": averaged["critic_loss"],
        "actor_loss": averaged["actor_loss"],
        "alpha_loss": averaged["alpha_loss"],
        "alpha": float(temperature(config, agent)),
        "entropy": averaged["entropy"],
        "q_mean": averaged["q_mean"],
        "grad_norm": averaged["grad_norm"],
        "gradient_steps": gradient_steps,
        "total_gradient_steps": counters.gradient_steps,
        "buffer_transitions": len(replay),
    }
