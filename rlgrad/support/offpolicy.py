"""What every off-policy trainer shares (DQN today; SAC and TD3 next): a target network, the
schedule of updates, and the act → store → learn-when-due step.

A trainer keeps only its own parts: how it acts (ε-greedy, a sampled squashed Gaussian, ...), its
losses and which networks have targets. The replay buffer (:mod:`rlgrad.support.replay`) stores
actions as the action space has them, integers for ``Discrete`` and float vectors for ``Box``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from rlgrad.support.envs import VectorEnv
from rlgrad.support.replay import ReplayBuffer


def frozen_copy(network: torch.nn.Module) -> torch.nn.Module:
    """A target network: a copy of ``network`` that never receives gradients (it moves only by
    :func:`rlgrad.polyak_update`)."""
    return copy.deepcopy(network).requires_grad_(False)


def replay_buffer(config, spaces, learner: torch.nn.Module) -> ReplayBuffer:
    """The replay buffer a config asks for (its size, environments and checkpointing), on the
    device of the ``learner`` it feeds, so that minibatches are drawn where they are used."""
    device = next(learner.parameters()).device
    return ReplayBuffer(
        config.buffer_size, config.num_envs, spaces, config.checkpoint_replay, device
    )


def times_due(previous: int, steps: int, every: int) -> int:
    """How many multiples of ``every`` the step count passed going from ``previous`` to ``steps``
    (a vector step adds num_envs steps, so it can pass several, or none)."""
    return steps // every - previous // every


@dataclass(frozen=True)
class Schedule:
    """When an off-policy learner updates, in environment steps."""

    learning_starts: int  # no gradient step before this many steps ...
    batch_size: int  # ... nor before the buffer holds a minibatch (after a resume without it)
    train_frequency: int  # every this many steps,
    gradient_steps: int  # take this many gradient steps;
    target_update_every: int | None  # move the target networks every this many steps (None:
    # the trainer moves them itself after its gradient steps, as SAC and TD3 do)

    @classmethod
    def of(cls, config) -> Schedule:
        """The schedule of a config; one without ``target_update_every`` (SAC, TD3) moves its
        targets itself."""
        return cls(
            config.learning_starts,
            config.batch_size,
            config.train_frequency,
            config.gradient_steps,
            getattr(config, "target_update_every", None),
        )

    def gradient_steps_due(self, previous: int, steps: int, stored: int) -> int:
        if steps < self.learning_starts or stored < self.batch_size:
            return 0
        return times_due(previous, steps, self.train_frequency) * self.gradient_steps

    def target_update_due(self, previous: int, steps: int) -> bool:
        if self.target_update_every is None:
            return False
        return times_due(previous, steps, self.target_update_every) > 0


class Stepped(NamedTuple):
    """What :func:`act_store_learn` did in one vector step."""

    steps: int  # the step count after it
    gradient_steps: int  # how many batches ``learn`` received


def act_store_learn(
    env: VectorEnv,
    replay: ReplayBuffer,
    schedule: Schedule,
    steps: int,
    act: Callable[[np.ndarray, int], torch.Tensor],
    learn: Callable[[], None],
    update_targets: Callable[[], None] | None = None,
) -> Stepped:
    """One vector step of an off-policy learner, in its fixed order.

    1. ``act(observations, steps)`` picks the actions; 2. the environments step and the buffer
    stores the transitions (with the true final observation of a cut episode); 3. ``learn()``
    runs once per gradient step due (it samples its own minibatch); 4. ``update_targets()`` runs
    when the target networks are due to move (never when the schedule leaves that to ``learn``).
    """
    observations = env.observations
    actions = act(observations, steps)
    step = env.step(actions.cpu().numpy())
    replay.add(observations, actions, step)
    previous, steps = steps, steps + env.num_envs
    due = schedule.gradient_steps_due(previous, steps, len(replay))
    for _ in range(due):
        learn()
    if update_targets is not None and schedule.target_update_due(previous, steps):
        update_targets()
    return Stepped(steps, due)


def collect_and_learn(
    run,
    env: VectorEnv,
    replay: ReplayBuffer,
    schedule: Schedule,
    steps: int,
    log_every: int,
    act: Callable[[np.ndarray, int], torch.Tensor],
    learn: Callable[[], None],
    update_targets: Callable[[], None] | None = None,
) -> int:
    """:func:`act_store_learn` until the next metrics row is due, timed as training; returns the
    step count. A row is due at the next multiple of ``log_every``, of ``eval_every`` and of
    ``checkpoint_every`` (an evaluation or checkpoint is written with a row: without its own
    boundary, an ``eval_every`` smaller than ``log_every`` would evaluate less often than
    asked), or at the end of the run."""
    config = run.config
    periods = [p for p in (log_every, config.eval_every, config.checkpoint_every) if p > 0]
    iteration_end = min(*((steps // p + 1) * p for p in periods), config.total_steps)
    with run.training():
        while steps < iteration_end:
            steps, _ = act_store_learn(env, replay, schedule, steps, act, learn, update_targets)
    return steps


def uniform_actions(actor, num_envs: int, generator: torch.Generator) -> torch.Tensor:
    """Actions drawn uniformly from the action box of ``actor`` (its ``action_low`` and
    ``action_high``), ``[num_envs, D]``: how SAC and TD3 explore before learning starts."""
    low = actor.action_low
    unit = torch.rand((num_envs, len(low)), generator=generator, device=low.device)
    return low + unit * (actor.action_high - low)


def mean_of(values: list[torch.Tensor]) -> float | None:
    """The mean of a list of 0-dim tensors as a float (None for an empty list): trainers keep
    their per-step metrics as tensors and convert once per metrics row."""
    return float(torch.stack(values).mean()) if values else None
