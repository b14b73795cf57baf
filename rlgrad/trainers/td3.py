"""Twin Delayed DDPG (TD3, Fujimoto et al. 2018), read top to bottom.

A deterministic actor a = μ(s) and K critics. Each environment step: 1. act with μ(s) plus
Gaussian exploration noise (uniformly random actions before ``learning_starts``); 2. store the
transition; 3. when due, take ``gradient_steps`` gradient steps on a replayed minibatch:

    a′ = clip(μ⁻(s′) + clip(ε, −c, c), low, high),  ε ~ N(0, σ²)     (target smoothing)
    y = r + γ(1 − term)·min_k Q⁻_k(s′, a′)                           (clipped double Q)
    L_Q = mean_k ½(Q_k(s, a) − y)²
    L_μ = −mean Q_1(s, μ(s))          on every policy_delay-th step only (delayed updates)

4. after each actor update, move the target actor and critics by Polyak averaging; then log,
evaluate and checkpoint. As in :mod:`rlgrad.trainers.sac`, one backward pass and one Adam step
serve both losses (the actor's loss reads the critics with detached weights), so the actor sees
the critics as they were before this step's update.

    >>> from rlgrad.trainers import td3
    >>> config = td3.Config(env="Pendulum-v1", total_steps=400, learning_starts=200,
    ...                     batch_size=32, hidden_sizes=(32, 32), log_every=200, eval_every=0,
    ...                     eval_episodes=1)
    >>> td3.train(config, run_dir=getfixture("tmp_path") / "run").rows[-1]["step"]
    400
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import NamedTuple

import torch

from rlgrad.continuous import (
    clipped_double_q_targets,
    deterministic_policy_loss,
    smoothed_target_actions,
)
from rlgrad.support import configs, offpolicy, training
from rlgrad.support.continuous_nets import (
    ActorCritics,
    CriticEnsemble,
    DeterministicActor,
    check_continuous,
)
from rlgrad.support.replay import ReplayBuffer
from rlgrad.support.runs import History
from rlgrad.value import polyak_update, value_loss

ALGORITHM = "td3"


@dataclasses.dataclass(frozen=True)
class Config(configs.ContinuousControlConfig):
    """TD3's hyperparameters (the shared ones in ContinuousControlConfig); the defaults are the
    paper's, SB3's and CleanRL's."""

    lr: float = 1e-3
    """Adam learning rate of the actor."""
    learning_starts: int = 25_000
    policy_delay: int = 2
    """Update the actor and the target networks on every policy_delay-th gradient step."""
    exploration_noise: float = 0.1
    """Std of the Gaussian exploration noise, as a fraction of the action scale (high − low)/2."""
    policy_noise: float = 0.2
    """Std σ of the target smoothing noise, as a fraction of the action scale."""
    noise_clip: float = 0.5
    """Clip c of the target smoothing noise, as a fraction of the action scale."""


def check(config: Config) -> None:
    configs.check_continuous_control_config(config)
    configs.non_negative(config, "exploration_noise", "policy_noise", "noise_clip")


def build_agent(config: Config, spaces) -> ActorCritics:
    check_continuous(spaces, ALGORITHM)
    actor = DeterministicActor(
        spaces, config.hidden_sizes, config.activation, config.exploration_noise
    )
    critics = CriticEnsemble(spaces, config.hidden_sizes, config.activation, config.num_critics)
    return ActorCritics(spaces, actor, critics)


def make_optimizer(config: Config, agent: ActorCritics) -> torch.optim.Optimizer:
    """One Adam over two parameter groups: the actor and the critics."""
    return training.adam(
        [
            {"params": list(agent.actor.parameters()), "lr": config.lr},
            {"params": list(agent.critics.parameters()), "lr": config.critic_lr or config.lr},
        ]
    )


class Companions(NamedTuple):
    """TD3's checkpointed companions of the agent."""

    target_actor: DeterministicActor  # Polyak averages of the actor ...
    target_critics: CriticEnsemble  # ... and of the critics
    replay: ReplayBuffer
    counters: offpolicy.Counters  # gradient steps so far: the actor and the targets move on
    # every policy_delay-th


def build_companions(config: Config, spaces, agent: ActorCritics) -> Companions:
    replay = offpolicy.replay_buffer(config, spaces, agent)
    target_actor = offpolicy.frozen_copy(agent.actor)
    return Companions(
        target_actor, offpolicy.frozen_copy(agent.critics), replay, offpolicy.Counters()
    )


def train(config: Config, run_dir: str | Path | None = None, **run_options) -> History:
    """Train TD3; return the metric history (also written to ``run_dir``).

    ``run_options``: ``resume``, ``checkpoint`` and ``progress``, as for :func:`ppo.train`.
    """
    check(config)
    # 0. set up: seeds, environments, actor and critics, their targets, replay buffer, Adam, run
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
    run, env, agent, optimizer, generator, companions = setup
    target_actor, target_critics, replay, counters = companions
    actor, critics = agent.actor, agent.critics
    scale = actor.action_scale  # the noise fields are fractions of it
    schedule = offpolicy.Schedule.of(config)  # the targets move with the delayed actor
    steps = run.steps

    while not run.done:
        means = training.Means("critic_loss", "actor_loss", "q_mean", "grad_norm")
        gradient_steps_before = counters.gradient_steps
        row_due = offpolicy.iteration_end(run, config.log_every)
        with run.training():
            while steps < row_due:
                # 1. act (uniformly random before learning starts, then μ(s) + exploration noise),
                # 2. step and store (the buffer keeps the true final observation of a cut episode)
                previous = steps
                steps += offpolicy.explore_and_store(
                    env, replay, actor, steps, config.learning_starts, generator
                )

                # 3. gradient steps when due: the critics, and the actor when delayed due
                for _ in range(schedule.gradient_steps_due(previous, steps, len(replay))):
                    batch = replay.sample(config.batch_size, generator, config.n_step, config.gamma)
                    with torch.no_grad():
                        next_actions = smoothed_target_actions(
                            target_actor.mode(batch.next_observations),
                            config.policy_noise * scale,
                            config.noise_clip * scale,
                            actor.action_low,
                            actor.action_high,
                            generator,
                        )
                        next_q = target_critics(batch.next_observations, next_actions)  # [B, K]
                    targets = clipped_double_q_targets(
                        batch.returns, next_q, batch.terminated, batch.discounts
                    )
                    q_values = critics(batch.observations, batch.actions)  # [B, K]
                    critic_loss = value_loss(q_values, targets[:, None].expand_as(q_values))
                    loss = critic_loss
                    update_actor = counters.gradient_steps % config.policy_delay == 0
                    if update_actor:
                        # the first critic judges the actor (Fujimoto et al.), weights detached
                        q_policy = critics(
                            batch.observations, actor.mode(batch.observations), frozen=True
                        )
                        actor_loss = deterministic_policy_loss(q_policy[:, 0])
                        loss = loss + actor_loss
                        means.add(actor_loss=actor_loss.detach())
                    grad_norm = training.gradient_step(run, optimizer, loss, config.max_grad_norm)
                    means.add(
                        critic_loss=critic_loss.detach(),
                        q_mean=q_values.detach().mean(),
                        grad_norm=grad_norm,
                    )
                    counters.gradient_steps += 1

                    # 4. after an actor update, move the targets, θ⁻ ← τθ + (1 − τ)θ⁻
                    if update_actor:
                        polyak_update(target_critics.parameters(), critics.parameters(), config.tau)
                        polyak_update(target_actor.parameters(), actor.parameters(), config.tau)

        # 5. log, evaluate and checkpoint
        run.end_iteration(
            steps - run.steps,
            {
                **means.means(),
                "gradient_steps": counters.gradient_steps - gradient_steps_before,
                "total_gradient_steps": counters.gradient_steps,
                "buffer_transitions": len(replay),
            },
        )
    return run.finish()
