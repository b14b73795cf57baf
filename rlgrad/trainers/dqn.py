"""Deep Q-Networks (Mnih et al. 2015) and the variants people ask for, read top to bottom.

Each iteration (``log_every`` environment steps): 1. act ε-greedily in N environments; 2. store
the transitions in the replay buffer; 3. every ``train_frequency`` steps take ``gradient_steps``
gradient steps on the TD loss of sampled minibatches,

    y = r + γ(1 − term)·max_a' Q_θ⁻(s', a'),    L = mean ½(Q_θ(s, a) − y)²  (or Huber);

4. move the target network θ⁻ towards θ every ``target_update_every`` steps (a copy, or Polyak
averaging with τ < 1); then log, evaluate and checkpoint. Switches: ``double`` (the online network
picks a', the target network values it), ``dueling`` heads, ``n_step`` returns (stopped at the
first end of episode; a truncation still bootstraps from its true final observation).

Many seeds train as one: every network has a leading seed axis, each seed has its own replay
buffer (one storage ``[S, slots, N, ...]``), ε-greedy draws, minibatches, gradient clipping,
Adam state, target updates and run directory, and seed s draws exactly what a run of seed s
alone draws. One seed is the same code with S = 1.

    >>> from rlgrad.trainers import dqn
    >>> config = dqn.Config(env="CartPole-v1", total_steps=600, learning_starts=200,
    ...                     log_every=200, eval_every=0, eval_episodes=2)
    >>> dqn.train(config, run_dir=getfixture("tmp_path") / "run").rows[-1]["step"]
    600
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from rlgrad.support import configs, offpolicy, training
from rlgrad.support.nets import QNetwork, seed_epsilon_greedy
from rlgrad.support.replay import Batch, SeedReplayBuffer
from rlgrad.support.runs import History, single_history
from rlgrad.value import dqn_loss, dqn_targets, epsilon_schedule

ALGORITHM = "dqn"
LOSSES = ("mse", "huber")
METRICS = ("loss", "q_taken_mean", "grad_norm")


@dataclasses.dataclass(frozen=True)
class Config(configs.OffPolicyConfig):
    """DQN's hyperparameters (the shared ones in OffPolicyConfig); the defaults are close to
    CleanRL's for classic control."""

    lr: float = 2.5e-4
    anneal_lr: bool = False
    """Decay the learning rate linearly to 0 over total_steps."""
    max_grad_norm: float | None = 10.0
    buffer_size: int = 100_000
    batch_size: int = 128
    learning_starts: int = 1_000
    train_frequency: int = 4
    target_update_every: int = 500
    """Update the target network every this many environment steps."""
    tau: float = 1.0
    epsilon_start: float = 1.0
    """Exploration ε at the start of the linear schedule."""
    epsilon_end: float = 0.05
    """Exploration ε at the end of the schedule and after it; also the ε of a loaded agent's
    act(obs, deterministic=False)."""
    exploration_fraction: float = 0.5
    """Fraction of total_steps over which ε falls linearly from epsilon_start to epsilon_end."""
    loss: str = "mse"
    """TD loss: 'mse' is ½(Q − y)² (the course's loss), 'huber' is Huber with δ = 1 (SB3's)."""
    double: bool = False
    """Double DQN: the online network picks argmax_a' Q_θ(s', a'), the target network values it."""
    dueling: bool = False
    """Dueling heads: Q(s, a) = V(s) + A(s, a) − mean_a' A(s, a')."""


def check(config: Config) -> None:
    configs.check_off_policy_config(config)
    configs.positive(config, "target_update_every")
    configs.non_negative(config, "exploration_fraction")
    configs.in_unit_interval(config, "epsilon_start", "epsilon_end")
    configs.require(
        config.buffer_size >= config.batch_size,
        f"config field 'buffer_size' = {config.buffer_size} is smaller than a batch "
        f"(batch_size = {config.batch_size}); raise buffer_size or lower batch_size",
    )
    configs.require(
        config.buffer_size // config.num_envs > config.n_step,
        f"config field 'buffer_size' = {config.buffer_size} holds "
        f"{config.buffer_size // config.num_envs} steps per environment for num_envs = "
        f"{config.num_envs}; n_step = {config.n_step} needs more",
    )
    configs.require(
        config.loss in LOSSES,
        f"config field 'loss' must be one of {', '.join(LOSSES)}; got {config.loss!r}",
    )


def build_agent(config: Config, spaces, seeds: int | None = None) -> QNetwork:
    return QNetwork(
        spaces, config.hidden_sizes, config.activation, config.dueling, config.epsilon_end, seeds
    )


def make_optimizer(config: Config, q_networks: QNetwork) -> training.SeedAdam:
    return training.SeedAdam(q_networks.parameters(), lr=config.lr)


class Companions(NamedTuple):
    """DQN's checkpointed companions of the Q-networks, seed-batched; each seed's run saves its
    slice of each."""

    target: QNetwork  # θ⁻, a frozen copy of θ
    replay: SeedReplayBuffer
    counters: offpolicy.SeedCounters  # gradient steps so far


def build_companions(config: Config, spaces, q_networks: QNetwork, seeds: int) -> Companions:
    replay = offpolicy.replay_buffer(config, spaces, q_networks, seeds)
    device = next(q_networks.parameters()).device
    return Companions(
        offpolicy.frozen_copy(q_networks), replay, offpolicy.SeedCounters(seeds, device)
    )


def td_loss(config: Config, q_networks, target_networks, batch: Batch):
    """The TD loss of each seed's minibatch ``[S]`` (the formula layer's targets and loss) and
    Q(s, a) ``[S, B]``."""
    with torch.no_grad():
        next_q_target = target_networks(batch.next_observations)
        next_q_online = q_networks(batch.next_observations) if config.double else None
    targets = dqn_targets(
        batch.returns, next_q_target, batch.terminated, batch.discounts, next_q_online
    )
    q_values = q_networks(batch.observations)
    taken = q_values.gather(-1, batch.actions[..., None]).squeeze(-1)
    return dqn_loss(q_values, batch.actions, targets, config.loss, dim=1), taken


def train(config: Config, run_dir: str | Path | None = None, **run_options) -> History:
    """Train DQN on ``config.seed``: :func:`rlgrad.trainers.ppo.train` says what it takes."""
    return single_history(train_seeds(config, [config.seed], run_dir, **run_options))


def train_seeds(
    config: Config, seeds: list[int], run_dir: str | Path | None = None, **run_options
) -> list[History]:
    """DQN on every seed of ``seeds`` at once, as :func:`rlgrad.trainers.ppo.train_seeds`."""
    check(config)
    # 0. set up: for each seed its environments, Q-network, target network, replay buffer,
    # optimizer state and run directory; networks and buffers are stacked on a seed axis
    setup = training.start_seeds(
        ALGORITHM,
        config,
        seeds,
        run_dir,
        build_agent,
        make_optimizer,
        build_companions,
        **run_options,
    )
    runs, envs, q_networks, optimizer, generators = setup[:5]
    target_networks, replay, counters = setup.extras
    S, device = len(seeds), generators[0].device
    schedule = offpolicy.Schedule.of(config, config.target_update_every)
    decay_steps = config.exploration_fraction * config.total_steps
    epsilon = config.epsilon_start

    while not runs.done:
        active = runs.active  # [S] bool: the seeds still training (a failure drops one below)
        steps = runs.steps  # every seed still training has taken the same steps
        means = training.SeedMeans(S, *METRICS, device=device)
        gradient_steps_before = counters.gradient_steps.clone()
        lr = training.annealed_lr(optimizer, config, runs.progress_fraction())
        row_due = offpolicy.iteration_end(runs, config.log_every)
        with runs.training():
            while steps < row_due and active.any():
                # 1. act ε-greedily with each seed's online network and generator (ε is a
                # function of the step count, the same for every seed)
                epsilon = epsilon_schedule(
                    steps, decay_steps, config.epsilon_start, config.epsilon_end
                )
                observations = envs.observations  # [S, N, *obs]
                with torch.inference_mode():
                    q_values = q_networks(observations.to(device))  # [S, N, A]
                actions = seed_epsilon_greedy(q_values, epsilon, generators, active)

                # 2. step and store (the buffer keeps the true final observation of a cut
                # episode); a seed whose reward is not finite fails before its buffer holds it
                active = offpolicy.seed_step_and_store(
                    runs, envs, replay, observations, actions, active
                )
                previous, steps = steps, steps + envs.num_envs

                # 3. gradient steps on the TD loss of each seed's replayed minibatches, when due
                # and its buffer holds a minibatch (a resume without the buffer refills it first)
                ready = active & (np.array(replay.usable_counts) >= config.batch_size)
                due = schedule.gradient_steps_due(previous, steps, stored=config.batch_size)
                for _ in range(due if ready.any() else 0):
                    batch = replay.sample(
                        config.batch_size, generators, config.n_step, config.gamma, ready
                    )
                    losses, taken = td_loss(config, q_networks, target_networks, batch)
                    updating = torch.as_tensor(ready, device=device)
                    grad_norms = training.seed_gradient_step(
                        runs, optimizer, losses, config.max_grad_norm, updating
                    )
                    means.add(
                        updating, loss=losses, q_taken_mean=taken.mean(dim=1), grad_norm=grad_norms
                    )
                    counters.gradient_steps += updating
                    active, ready = active & ~runs.failed, ready & ~runs.failed

                # 4. θ⁻ ← τθ + (1 − τ)θ⁻ (a copy for τ = 1) for each seed, when due
                if schedule.target_update_due(previous, steps):
                    offpolicy.seed_polyak_update(target_networks, q_networks, config.tau, active)

        # 5. log, evaluate and checkpoint, each seed in its own run directory
        counts = offpolicy.seed_counts(counters, gradient_steps_before, replay)
        runs.end_iteration(
            steps - runs.steps,
            [
                {**seed_means, "epsilon": epsilon, "lr": lr, **seed_counts}
                for seed_means, seed_counts in zip(means.means(), counts, strict=True)
            ],
        )
    return runs.finish()
