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

Many seeds train as one, as in :mod:`rlgrad.trainers.dqn`: the actor, the critics and their
targets have a leading seed axis (all S·K critics one batched matmul per layer), each seed has
its own replay buffer, exploration and smoothing noise, minibatches, gradient clipping and Adam
state, and seed s draws exactly what a run of seed s alone draws. One seed is the same code
with S = 1.

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

import numpy as np
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
from rlgrad.support.replay import SeedReplayBuffer
from rlgrad.support.runs import History, single_history
from rlgrad.value import value_loss

ALGORITHM = "td3"
METRICS = ("critic_loss", "actor_loss", "q_mean", "grad_norm")


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


def build_agent(config: Config, spaces, seeds: int | None = None) -> ActorCritics:
    check_continuous(spaces, ALGORITHM)
    actor = DeterministicActor(
        spaces, config.hidden_sizes, config.activation, config.exploration_noise, seeds
    )
    critics = CriticEnsemble(
        spaces, config.hidden_sizes, config.activation, config.num_critics, seeds=seeds
    )
    return ActorCritics(spaces, actor, critics)


def make_optimizer(config: Config, agents: ActorCritics) -> training.SeedAdam:
    """One Adam over the actor (at lr) and the critics (at critic_lr, or lr): two parameter
    groups of ``torch.optim.Adam``, per seed."""
    actor, critics = list(agents.actor.parameters()), list(agents.critics.parameters())
    critic_lr = config.critic_lr or config.lr
    return training.SeedAdam(
        actor + critics, lr=config.lr, param_lrs=[None] * len(actor) + [critic_lr] * len(critics)
    )


class Companions(NamedTuple):
    """TD3's checkpointed companions of the agents, seed-batched; each seed's run saves its
    slice of each."""

    target_actor: DeterministicActor  # Polyak averages of the actor ...
    target_critics: CriticEnsemble  # ... and of the critics
    replay: SeedReplayBuffer
    counters: offpolicy.SeedCounters  # gradient steps so far: the actor and the targets move
    # on every policy_delay-th


def build_companions(config: Config, spaces, agents: ActorCritics, seeds: int) -> Companions:
    replay = offpolicy.replay_buffer(config, spaces, agents, seeds)
    device = next(agents.parameters()).device
    return Companions(
        offpolicy.frozen_copy(agents.actor),
        offpolicy.frozen_copy(agents.critics),
        replay,
        offpolicy.SeedCounters(seeds, device),
    )


def train(config: Config, run_dir: str | Path | None = None, **run_options) -> History:
    """Train TD3 on ``config.seed``: :func:`rlgrad.trainers.ppo.train` says what it takes."""
    return single_history(train_seeds(config, [config.seed], run_dir, **run_options))


def train_seeds(
    config: Config, seeds: list[int], run_dir: str | Path | None = None, **run_options
) -> list[History]:
    """TD3 on every seed of ``seeds`` at once, as :func:`rlgrad.trainers.ppo.train_seeds`."""
    check(config)
    # 0. set up: for each seed its environments, actor and critics, their targets, replay
    # buffer, optimizer state and run directory; networks and buffers stacked on a seed axis
    setup = training.start_seeds(
        ALGORITHM,
        config,
        seeds,
        run_dir,
        build_agent,
        make_optimizer,
        build_companions,
        device=config.device,  # SAC and TD3 can train on a GPU
        matmul_precision=config.matmul_precision,
        **run_options,
    )
    runs, envs, agents, optimizer, generators = setup[:5]
    target_actor, target_critics, replay, counters = setup.extras
    actor, critics = agents.actor, agents.critics
    S, device = len(seeds), generators[0].device
    scale = actor.action_scale  # the noise fields are fractions of it
    schedule = offpolicy.Schedule.of(config)  # the targets move with the delayed actor

    while not runs.done:
        active = runs.active  # [S] bool: the seeds still training (a failure drops one below)
        steps = runs.steps  # every seed still training has taken the same steps
        means = training.SeedMeans(S, *METRICS, device=device)
        gradient_steps_before = counters.gradient_steps.clone()
        row_due = offpolicy.iteration_end(runs, config.log_every)
        with runs.training():
            while steps < row_due and active.any():
                # 1. act (uniformly random before learning starts, then μ(s) + exploration
                # noise), each seed from its own generator
                observations = envs.observations  # [S, N, *obs]
                actions = offpolicy.seed_explore(
                    actor, observations, steps, config.learning_starts, generators, active
                )

                # 2. step and store (the buffer keeps the true final observation of a cut
                # episode); a seed whose reward is not finite fails before its buffer holds it
                active = offpolicy.seed_step_and_store(
                    runs, envs, replay, observations, actions, active
                )
                previous, steps = steps, steps + envs.num_envs

                # 3. gradient steps when due and a seed's buffer holds a minibatch: the critics,
                # and the actor when delayed due
                ready = active & (np.array(replay.usable_counts) >= config.batch_size)
                due = schedule.gradient_steps_due(previous, steps, stored=config.batch_size)
                for _ in range(due if ready.any() else 0):
                    batch = replay.sample(
                        config.batch_size, generators, config.n_step, config.gamma, ready
                    )
                    with torch.no_grad():
                        next_actions = smoothed_target_actions(
                            target_actor.mode(batch.next_observations),
                            config.policy_noise * scale,
                            config.noise_clip * scale,
                            actor.action_low,
                            actor.action_high,
                            noise=generators.draw("normal", batch.actions.shape[1:], ready),
                        )
                        next_q = target_critics(batch.next_observations, next_actions)  # [S, B, K]
                    targets = clipped_double_q_targets(
                        batch.returns, next_q, batch.terminated, batch.discounts
                    )  # [S, B]
                    q_values = critics(batch.observations, batch.actions)  # [S, B, K]
                    critic_loss = value_loss(
                        q_values.flatten(1),
                        targets[..., None].expand_as(q_values).flatten(1),
                        dim=1,
                    )  # [S]
                    losses = critic_loss
                    updating = torch.as_tensor(ready, device=device)
                    # the seeds of a batch take their gradient steps together, so one count
                    # decides for all of them
                    update_actor = (
                        int(counters.gradient_steps[ready.argmax()]) % config.policy_delay == 0
                    )
                    if update_actor:
                        # the first critic judges the actor (Fujimoto et al.), weights detached
                        q_policy = critics(
                            batch.observations, actor.mode(batch.observations), frozen=True
                        )
                        actor_loss = deterministic_policy_loss(q_policy[..., 0], dim=1)  # [S]
                        losses = losses + actor_loss
                        means.add(updating, actor_loss=actor_loss)
                    grad_norms = training.seed_gradient_step(
                        runs, optimizer, losses, config.max_grad_norm, updating
                    )
                    means.add(
                        updating,
                        critic_loss=critic_loss,
                        q_mean=q_values.detach().mean(dim=(1, 2)),
                        grad_norm=grad_norms,
                    )
                    counters.gradient_steps += updating
                    active, ready = active & ~runs.failed, ready & ~runs.failed

                    # 4. after an actor update, move each seed's targets, θ⁻ ← τθ + (1 − τ)θ⁻
                    if update_actor:
                        offpolicy.seed_polyak_update(target_critics, critics, config.tau, ready)
                        offpolicy.seed_polyak_update(target_actor, actor, config.tau, ready)

        # 5. log, evaluate and checkpoint, each seed in its own run directory
        counts = offpolicy.seed_counts(counters, gradient_steps_before, replay)
        runs.end_iteration(
            steps - runs.steps,
            [
                {**seed_means, **seed_counts}
                for seed_means, seed_counts in zip(means.means(), counts, strict=True)
            ],
        )
    return runs.finish()
