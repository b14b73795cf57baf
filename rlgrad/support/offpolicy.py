"""The pieces DQN, SAC and TD3 share, as plain functions their own loops call: when a metrics row
is due, stepping the environments into the replay buffer, when gradient steps and target updates
are due, exploring before learning starts, target networks, and the counters a resume needs.

Each trainer's ``train`` owns its loop and reads top to bottom: 1. act; 2. step and store;
3. gradient steps when due; 4. targets; 5. log. The replay buffer
(:mod:`rlgrad.support.replay`) stores actions as the action space has them, integers for
``Discrete`` and float vectors for ``Box``. A trainer of many seeds at once (DQN's, TD3's) keeps a
seed axis in its replay buffer, counters and target networks (:class:`SeedCounters`,
:func:`seed_polyak_update`, :func:`seed_explore`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from rlgrad.support.configs import OffPolicyConfig
from rlgrad.support.envs import VectorEnv
from rlgrad.support.replay import ReplayBuffer, SeedReplayBuffer
from rlgrad.support.seeded import SeedGenerators
from rlgrad.value import polyak_update


def frozen_copy(network: torch.nn.Module) -> torch.nn.Module:
    """A target network: a copy of ``network`` that never receives gradients (it moves only by
    :func:`rlgrad.polyak_update`)."""
    return copy.deepcopy(network).requires_grad_(False)


def replay_buffer(
    config: OffPolicyConfig, spaces, learner: torch.nn.Module, seeds: int | None = None
) -> ReplayBuffer | SeedReplayBuffer:
    """The replay buffer a config asks for (its size, environments and checkpointing), on the
    device of the ``learner`` it feeds, so that minibatches are drawn where they are used; with
    ``seeds`` = S, S of them as one :class:`~rlgrad.support.replay.SeedReplayBuffer`."""
    device = next(learner.parameters()).device
    options = (config.buffer_size, config.num_envs, spaces)
    if seeds is None:
        return ReplayBuffer(*options, config.checkpoint_replay, device)
    return SeedReplayBuffer(*options, seeds, config.checkpoint_replay, device)


@torch.no_grad()
def seed_polyak_update(
    targets: torch.nn.Module, sources: torch.nn.Module, tau: float, active: np.ndarray
) -> None:
    """:func:`rlgrad.polyak_update` of seed-batched networks (every parameter ``[S, ...]``),
    θ⁻_s ← τθ_s + (1 − τ)θ⁻_s for the seeds that are ``active`` ([S] bool); the others' targets
    stay as they were. The update is elementwise, so when every seed is active it runs on the
    stacked parameters at once."""
    if active.all():
        polyak_update(targets.parameters(), sources.parameters(), tau)
        return
    for s in np.flatnonzero(active):
        polyak_update(
            [p[s] for p in targets.parameters()], [p[s] for p in sources.parameters()], tau
        )


class Counters:
    """The learner's counts that a resumed run must continue from, saved in every checkpoint
    with the networks (the run passes it to the checkpoint as one of its modules).

    ``gradient_steps`` counts every gradient step of the run; SAC and TD3 update the actor on
    each ``policy_delay``-th, so a resume that lost it would shift their delayed updates.
    """

    def __init__(self) -> None:
        self.gradient_steps = 0

    def state_dict(self) -> dict[str, int]:
        return {"gradient_steps": self.gradient_steps}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.gradient_steps = int(state["gradient_steps"])


class SeedCounters:
    """:class:`Counters` for S seeds trained together: ``gradient_steps`` ``[S]`` (int64, on
    ``device``, added to without a host sync). A seed's run checkpoints its own counts as
    :class:`Counters` does (``seed_state`` / ``load_seed_state``)."""

    def __init__(self, num_seeds: int, device: torch.device | str = "cpu") -> None:
        self.gradient_steps = torch.zeros(num_seeds, dtype=torch.int64, device=device)

    def seed_state(self, seed_index: int) -> dict[str, int]:
        return {"gradient_steps": int(self.gradient_steps[seed_index])}

    def load_seed_state(self, seed_index: int, state: dict[str, int]) -> None:
        self.gradient_steps[seed_index] = int(state["gradient_steps"])


def times_due(previous: int, steps: int, every: int) -> int:
    """How many multiples of ``every`` the step count passed going from ``previous`` to ``steps``
    (a vector step adds num_envs steps, so it can pass several, or none)."""
    return steps // every - previous // every


def iteration_end(run, log_every: int) -> int:
    """The step count at which the next metrics row is due: the next multiple of ``log_every``,
    of ``eval_every`` or of ``checkpoint_every``, or the end of the run, whichever comes first.

    An evaluation or checkpoint is written with a row, so each needs its own boundary: without
    it, an ``eval_every`` smaller than ``log_every`` would evaluate less often than asked.

    From step 120 with rows every 100, evaluations every 150 and no periodic checkpoints, the
    next boundaries are 200 (rows) and 150 (evaluations); 150 comes first:

        >>> from types import SimpleNamespace
        >>> config = SimpleNamespace(eval_every=150, checkpoint_every=0, total_steps=1_000)
        >>> iteration_end(SimpleNamespace(config=config, steps=120), log_every=100)
        150
        >>> iteration_end(SimpleNamespace(config=config, steps=960), log_every=100)  # the end
        1000
    """
    config = run.config
    periods = [p for p in (log_every, config.eval_every, config.checkpoint_every) if p > 0]
    return min(*((run.steps // p + 1) * p for p in periods), config.total_steps)


def step_and_store(
    env: VectorEnv, replay: ReplayBuffer, observations: np.ndarray, actions: torch.Tensor
) -> int:
    """Step the environments with ``actions`` (taken in ``observations``, ``[num_envs, ...]``)
    and store the transitions, with the true final observation of an episode cut by a time
    limit; return the environment steps taken (``num_envs``)."""
    step = env.step(actions.cpu().numpy())
    replay.add(observations, actions, step)
    return env.num_envs


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
    def of(cls, config: OffPolicyConfig, target_update_every: int | None = None) -> Schedule:
        """The schedule of an off-policy config; ``target_update_every`` as for the field."""
        return cls(
            config.learning_starts,
            config.batch_size,
            config.train_frequency,
            config.gradient_steps,
            target_update_every,
        )

    def gradient_steps_due(self, previous: int, steps: int, stored: int) -> int:
        """Gradient steps due going from ``previous`` to ``steps`` with ``stored`` transitions
        in the buffer."""
        if steps < self.learning_starts or stored < self.batch_size:
            return 0
        return times_due(previous, steps, self.train_frequency) * self.gradient_steps

    def target_update_due(self, previous: int, steps: int) -> bool:
        if self.target_update_every is None:
            return False
        return times_due(previous, steps, self.target_update_every) > 0


def uniform_actions(actor, num_envs: int, generator: torch.Generator) -> torch.Tensor:
    """Actions drawn uniformly from the action box of ``actor`` (its ``action_low`` and
    ``action_high``), ``[num_envs, D]``: how SAC and TD3 explore before learning starts."""
    low = actor.action_low
    unit = torch.rand((num_envs, len(low)), generator=generator, device=low.device)
    return low + unit * (actor.action_high - low)


def explore(
    actor, observations: np.ndarray, steps: int, learning_starts: int, generator: torch.Generator
) -> torch.Tensor:
    """SAC's and TD3's actions ``[num_envs, D]`` in ``observations`` ``[num_envs, obs_dim]``:
    uniform in the action box before ``learning_starts`` steps, then ``actor.sample`` (a
    squashed Gaussian sample for SAC, μ(s) plus Gaussian noise for TD3), on the actor's device."""
    if steps < learning_starts:
        return uniform_actions(actor, len(observations), generator)
    with torch.inference_mode():
        on_device = torch.from_numpy(observations).to(actor.action_low.device)
        actions, _ = actor.sample(on_device, generator)
    return actions


def seed_explore(
    actors,
    observations: torch.Tensor,
    steps: int,
    learning_starts: int,
    generators: SeedGenerators,
    active: np.ndarray,
) -> torch.Tensor:
    """:func:`explore` for S seeds at once: ``actors`` seed-batched, ``observations``
    ``[S, N, *obs]``, actions ``[S, N, D]``. Seed s draws from generator s what a run of s alone
    draws; a seed that is not ``active`` ([S] bool) draws nothing (its actions are filler)."""
    low = actors.action_low
    if steps < learning_starts:
        unit = generators.draw("uniform", (observations.shape[1], len(low)), active)
        return low + unit * (actors.action_high - low)
    with torch.inference_mode():
        actions, _ = actors.sample(observations.to(low.device), generators, active)
    return actions


def seed_step_and_store(runs, envs, replay: SeedReplayBuffer, observations, actions, active):
    """Step the ``active`` seeds' environments with ``actions`` (taken in ``observations``)
    and store the transitions, the true final observation of a cut episode included; a seed
    whose reward is not finite fails before its buffer holds it. Returns the seeds still
    active ([S] bool)."""
    step = envs.step(actions, active)
    runs.fail_non_finite("a reward", step.rewards)
    active = active & ~runs.failed
    replay.add(observations, actions, step, active)
    return active


def seed_counts(counters: SeedCounters, before: torch.Tensor, replay: SeedReplayBuffer) -> list:
    """Each seed's counts for its metrics row: gradient steps this row (since ``before``), in
    all, and the transitions its buffer holds (one read to the host)."""
    totals, earlier = counters.gradient_steps.tolist(), before.tolist()
    return [
        {
            "gradient_steps": total - start,
            "total_gradient_steps": total,
            "buffer_transitions": held,
        }
        for total, start, held in zip(totals, earlier, replay.usable_counts, strict=True)
    ]


def explore_and_store(
    env: VectorEnv,
    replay: ReplayBuffer,
    actor,
    steps: int,
    learning_starts: int,
    generator: torch.Generator,
) -> int:
    """One environment step of SAC, TD3 and CrossQ: act in the current observations with
    :func:`explore`, then :func:`step_and_store`; the environment steps taken (``num_envs``)."""
    observations = env.observations
    actions = explore(actor, observations, steps, learning_starts, generator)
    return step_and_store(env, replay, observations, actions)
