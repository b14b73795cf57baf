"""Soft Actor-Critic (Haarnoja et al. 2018), read top to bottom.

SAC maximizes the return plus α times the policy's entropy. Each environment step: 1. act with
a squashed Gaussian sample (uniformly random actions before ``learning_starts``); 2. store the
transition; 3. when due, take ``gradient_steps`` gradient steps on a replayed minibatch:

    y = r + γ(1 − term)·(min_k Q⁻_k(s′, a′) − α log π(a′|s′)),  a′ ~ π(·|s′)
    L_Q = mean_k ½(Q_k(s, a) − y)²
    L_π = mean(α log π(ã|s) − min_k Q_k(s, ã)),  ã ~ π(·|s) reparameterized
    L_α = −mean(log α · (log π(ã|s) + H̄))      (automatic temperature, target entropy H̄)

4. move the target critics by Polyak averaging, θ⁻ ← τθ + (1 − τ)θ⁻, after every gradient step;
then log, evaluate and checkpoint.

One backward pass and one Adam step per gradient step: the three losses touch disjoint
parameters (the actor's loss reads the critics with detached weights, the targets and the
temperature's bracket are detached), so their sum has exactly each loss's gradient in each
parameter group. The actor therefore sees the critics as they were before this step's update
(SB3 and CleanRL update the critics first); the step is otherwise the same.

    >>> from rlgrad.trainers import sac
    >>> config = sac.Config(env="Pendulum-v1", total_steps=400, learning_starts=200,
    ...                     batch_size=32, hidden_sizes=(32, 32), log_every=200, eval_every=0,
    ...                     eval_episodes=1)
    >>> sac.train(config, run_dir=getfixture("tmp_path") / "run").rows[-1]["step"]
    400
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import NamedTuple

import torch

from rlgrad.continuous import sac_actor_loss, soft_q_targets, temperature_loss
from rlgrad.support import configs, offpolicy, training
from rlgrad.support.continuous_nets import (
    ActorCritics,
    CriticEnsemble,
    SquashedGaussianActor,
    check_continuous,
)
from rlgrad.support.replay import ReplayBuffer
from rlgrad.support.runs import History
from rlgrad.value import polyak_update, value_loss

ALGORITHM = "sac"


@dataclasses.dataclass(frozen=True)
class Config(configs.ContinuousControlConfig):
    """SAC's hyperparameters (the shared ones in ContinuousControlConfig); the defaults are
    SB3's and CleanRL's for MuJoCo."""

    alpha: float | None = None
    """Fixed entropy temperature α (none: learn α to keep the entropy at target_entropy)."""
    alpha_init: float = 1.0
    """The learned α's starting value."""
    target_entropy: float | None = None
    """Target entropy H̄ of the learned α (none: −dim(action space))."""


def check(config: Config) -> None:
    configs.check_continuous_control_config(config)
    configs.positive(config, "alpha_init")
    configs.require(
        config.alpha is None or config.alpha >= 0,
        f"config field 'alpha' must be >= 0 or none (learned); got {config.alpha!r}",
    )


def build_agent(config: Config, spaces) -> ActorCritics:
    check_continuous(spaces, ALGORITHM)
    actor = SquashedGaussianActor(spaces, config.hidden_sizes, config.activation)
    critics = CriticEnsemble(spaces, config.hidden_sizes, config.activation, config.num_critics)
    log_alpha = math.log(config.alpha_init) if config.alpha is None else None
    return ActorCritics(spaces, actor, critics, log_alpha)


def make_optimizer(config: Config, agent: ActorCritics) -> torch.optim.Optimizer:
    """One Adam over three parameter groups: actor, critics and (when learned) log α."""
    groups = [
        {"params": list(agent.actor.parameters()), "lr": config.lr},
        {"params": list(agent.critics.parameters()), "lr": config.critic_lr or config.lr},
    ]
    if config.alpha is None:
        groups.append({"params": [agent.log_alpha], "lr": config.lr})
    return training.adam(groups)


class Companions(NamedTuple):
    """SAC's checkpointed companions of the agent."""

    target_critics: CriticEnsemble  # θ⁻, Polyak averages of the critics
    replay: ReplayBuffer
    counters: offpolicy.Counters  # gradient steps so far: the actor updates on every
    # policy_delay-th


def build_companions(config: Config, spaces, agent: ActorCritics) -> Companions:
    replay = offpolicy.replay_buffer(config, spaces, agent)
    return Companions(offpolicy.frozen_copy(agent.critics), replay, offpolicy.Counters())


def train(config: Config, run_dir: str | Path | None = None, **run_options) -> History:
    """Train SAC; return the metric history (also written to ``run_dir``).

    ``run_options``: ``resume``, ``checkpoint`` and ``progress``, as for :func:`ppo.train`.
    """
    check(config)
    # 0. set up: seeds, environments, actor and critics, target critics, replay buffer, Adam, run
    setup = training.start(
        ALGORITHM,
        config,
        run_dir,
        build_agent,
        make_optimizer,
        build_companions,
        device=config.device,  # SAC and TD3 can train on a GPU
        matmul_precision=config.matmul_precision,
        **run_options,
    )
    run, env, agent, optimizer, generator, (target_critics, replay, counters) = setup
    actor, critics = agent.actor, agent.critics
    target_entropy = entropy_target(config, actor)
    schedule = offpolicy.Schedule.of(config)  # the targets move after every gradient step
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
                        next_q = target_critics(batch.next_observations, next_actions)  # [B, K]
                    targets = soft_q_targets(
                        batch.returns,
                        next_q,
                        next_log_probs,
                        batch.terminated,
                        batch.discounts,
                        alpha,
                    )
                    q_values = critics(batch.observations, batch.actions)  # [B, K]
                    critic_loss = value_loss(q_values, targets[:, None].expand_as(q_values))
                    loss = critic_loss
                    if counters.gradient_steps % config.policy_delay == 0:
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

                    # 4. move the target critics, θ⁻ ← τθ + (1 − τ)θ⁻
                    polyak_update(target_critics.parameters(), critics.parameters(), config.tau)

        # 5. log, evaluate and checkpoint
        gradient_steps = counters.gradient_steps - gradient_steps_before
        row = metrics(config, agent, means, gradient_steps, counters, replay)
        run.end_iteration(steps - run.steps, row)
    return run.finish()


def entropy_target(config: Config, actor: SquashedGaussianActor) -> float:
    """H̄ of the learned α: target_entropy, or −dim(action space) by default."""
    action_dims = len(actor.action_scale)
    return -action_dims if config.target_entropy is None else config.target_entropy


def temperature(config: Config, agent: ActorCritics) -> float | torch.Tensor:
    """α for this gradient step: the learned exp(log α), detached, or the fixed one."""
    return agent.log_alpha.detach().exp() if config.alpha is None else config.alpha


def policy_losses(
    agent: ActorCritics,
    observations: torch.Tensor,
    alpha: float | torch.Tensor,
    target_entropy: float,
    generator: torch.Generator,
    means: training.Means,
) -> torch.Tensor:
    """L_π, plus L_α when α is learned, on the policy's own reparameterized actions ã ~ π(·|s).
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
    """The per-gradient-step values a SAC (or CrossQ) metrics row averages."""
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
