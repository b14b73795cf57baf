"""A replay buffer of preallocated tensors that keeps each environment's stream in time order.

Slot ``t`` of environment ``e`` holds the observation acted on, the action, the reward and the
two end flags of one vector step; the next observation is the observation of slot ``t + 1`` of
the same environment. Each observation is therefore stored once, and because
:class:`~rlgrad.support.envs.VectorEnv` returns the *true final observation* at a done, the next
observation of an episode's last step is that final observation: a time limit bootstraps from the
state the episode was cut in, never from the reset state. The step after a done is Gymnasium's
autoreset step (its action was ignored); it is stored, marked unusable and never sampled.

``terminated`` and ``truncated`` are kept apart: only a termination removes the bootstrap.

n-step windows are read at sampling time, along the stream, and stop at the first end of
episode; a window that reaches the newest stored step stops there and bootstraps from the newest
observation (the stream is cut, as a rollout's last step is). The arithmetic is
:func:`rlgrad.returns.n_step_returns`.

Many seeds: :class:`SeedReplayBuffer` holds S seeds' buffers as one storage with a leading seed
axis, ``[S, slots, N, ...]``, each seed with its own write position and fill, and samples S
minibatches ``[S, B, ...]`` in one gather. Seed s draws its slots from its own generator, exactly
as a buffer of seed s alone draws them (the same calls, in the same order, on the same stream),
so seed s's minibatches are the single-seed run's; and its state in a checkpoint is a single
buffer's. :class:`ReplayBuffer`, one seed's buffer, is the seed-batched one with S = 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from rlgrad.errors import BadInputError
from rlgrad.returns import n_step_returns
from rlgrad.support.envs import SeedStep, Spaces, Step


@dataclass
class Batch:
    """A sampled minibatch; the DQN target is y = returns + discounts·(1 − terminated)·max Q⁻."""

    observations: Tensor  # [B, *obs], s_t
    actions: Tensor  # [B] int64 (Discrete) or [B, *action] float32 (Box)
    returns: Tensor  # [B]: r_t, or the n-step return Σ_{k<K} γ^k r_{t+k}
    discounts: Tensor  # [B]: γ^K
    terminated: Tensor  # [B] bool: the window ended in a termination
    next_observations: Tensor  # [B, *obs], s_{t+K}


_STORED = ("observations", "actions", "rewards", "terminated", "truncated", "usable")


class SeedReplayBuffer:
    """S seeds' replay buffers, ``capacity`` transitions each (``capacity // num_envs`` per
    environment), as storage ``[S, slots, N, ...]``. Seed s has its own write position, fill and
    count of usable transitions: a seed that stops training keeps its buffer exactly as it was.
    With ``in_checkpoints=False`` a seed's state is empty, so checkpoints stay small and a
    resumed run starts from an empty buffer."""

    def __init__(
        self,
        capacity: int,
        num_envs: int,
        spaces: Spaces,
        num_seeds: int,
        in_checkpoints: bool = True,
        device: torch.device | str = "cpu",
    ):
        self.in_checkpoints = in_checkpoints
        self.device = torch.device(device)  # where the storage lives and minibatches are drawn
        self.slots = capacity // num_envs  # per environment
        if self.slots < 2:
            raise BadInputError(
                f"config field 'buffer_size' = {capacity} leaves {self.slots} slot(s) per "
                f"environment for num_envs = {num_envs}; it needs at least 2 · num_envs"
            )
        self.num_seeds, self.num_envs = num_seeds, num_envs
        shape = (num_seeds, self.slots, num_envs)
        on = {"device": self.device}
        self.observations = torch.zeros(*shape, *spaces.observation_shape, **on)
        # actions as the action space has them: integers for Discrete, float vectors for Box
        if spaces.discrete:
            self.actions = torch.zeros(shape, dtype=torch.int64, **on)
        else:
            self.actions = torch.zeros(*shape, *spaces.action_shape, dtype=torch.float32, **on)
        self.rewards = torch.zeros(shape, **on)
        self.terminated = torch.zeros(shape, dtype=torch.bool, **on)
        self.truncated = torch.zeros(shape, dtype=torch.bool, **on)
        # usable[s, t, e]: slot t holds a transition that can be sampled (written, not an
        # autoreset step, and its next observation not yet overwritten)
        self.usable = torch.zeros(shape, dtype=torch.bool, **on)
        self.positions = [0] * num_seeds  # the slot each seed's next step is written to
        self.sizes = [0] * num_seeds  # slots written so far (at most self.slots)
        # usable transitions, kept up to date by add(): counting them over a million slots on
        # every environment step would cost more than the step
        self.usable_counts = [0] * num_seeds
        # the flat row of seed s's first slot in storage viewed [S · slots · N, ...]
        self._seed_offsets = torch.arange(num_seeds, **on) * (self.slots * num_envs)

    def add(self, observations: Tensor, actions: Tensor, step: SeedStep, active=None) -> None:
        """Store one vector step of the seeds that are ``active`` ([S] bool, None for all): the
        observations acted on ``[S, N, *obs]``, the actions ``[S, N, ...]`` and their outcome
        (``[S, N]`` tensors; its observations are the next ones)."""
        writing = [s for s in range(self.num_seeds) if active is None or active[s]]
        if not writing:
            return
        every = len(writing) == self.num_seeds
        seeds = slice(None) if every else torch.tensor(writing)
        rows = torch.tensor(
            [s * self.slots + self.positions[s] for s in writing], device=self.device
        )  # [S_w]: seed s's slot t in storage viewed [S · slots, N, ...]
        following = torch.tensor(
            [s * self.slots + (self.positions[s] + 1) % self.slots for s in writing],
            device=self.device,
        )

        def write(storage: Tensor, where: Tensor, values: Tensor) -> None:
            by_slot = storage.view(-1, *storage.shape[2:])  # [S · slots, N, ...]
            by_slot.index_copy_(0, where, values[seeds].to(self.device, storage.dtype))

        write(self.observations, rows, observations)
        write(self.actions, rows, actions)
        write(self.rewards, rows, step.rewards)
        write(self.terminated, rows, step.terminated)
        write(self.truncated, rows, step.truncated)
        write(self.usable, rows, step.valid)  # slot t was unusable: add() cleared it
        # the next observation goes to the following slot now, so that the newest transition is
        # complete; the oldest transition loses its observation and stops being usable
        write(self.observations, following, step.observations)
        usable = self.usable.view(-1, self.num_envs)
        lost = usable.index_select(0, following).sum(dim=1)  # [S_w]
        usable.index_fill_(0, following, False)
        gained = step.valid[seeds].to(self.device).sum(dim=1)
        # one host sync per step, whatever S is
        for s, change in zip(writing, (gained - lost).tolist(), strict=True):
            self.usable_counts[s] += change
            self.positions[s] = (self.positions[s] + 1) % self.slots
            self.sizes[s] = min(self.sizes[s] + 1, self.slots)

    def sample(
        self,
        batch_size: int,
        generators,
        n_step: int,
        gamma: float,
        drawing=None,
    ) -> Batch:
        """For each seed that is ``drawing`` ([S] bool, None for all), ``batch_size`` usable
        transitions drawn uniformly (with replacement) with ``generators[s]``, with their
        n-step returns: a :class:`Batch` of ``[S, B, ...]`` tensors. A seed that does not draw
        leaves its generator as it was; its rows hold slot 0 of its buffer (finite, unused)."""
        drawing = [s for s in range(self.num_seeds) if drawing is None or drawing[s]]
        empty = [s for s in drawing if self.usable_counts[s] == 0]
        if empty:
            raise BadInputError(
                f"the replay buffer of seed index {empty[0]} holds no usable transition yet"
            )
        slots = self._draw(batch_size, generators, drawing)  # [S, B]
        if n_step == 1:  # a one-step window is the transition itself: r, γ, term, s_{t+1}
            returns, terminated = (
                self._flat(self.rewards, slots),
                self._flat(self.terminated, slots),
            )
            discounts = torch.full_like(returns, gamma)
            steps = 1
        else:
            offsets = torch.arange(n_step, device=self.device)[:, None, None]
            window = self._later(slots, offsets)  # [n, S, B]
            ends = self._flat(self.truncated, window)
            # a window stops where the stream does: before an unusable slot (the write position
            # follows the newest stored step) and at its own last step
            ends[:-1] |= ~self._flat(self.usable, window[1:])
            ends[-1] = True
            outcome = n_step_returns(
                self._flat(self.rewards, window), self._flat(self.terminated, window), ends, gamma
            )
            returns, discounts, terminated = outcome.returns, outcome.discounts, outcome.terminated
            steps = outcome.steps
        return Batch(
            observations=self._flat(self.observations, slots),
            actions=self._flat(self.actions, slots),
            returns=returns,
            discounts=discounts,
            terminated=terminated,
            next_observations=self._flat(self.observations, self._later(slots, steps)),
        )

    def _flat(self, storage: Tensor, slots: Tensor) -> Tensor:
        """``storage[s, t, e]`` for each seed's flat slot numbers t · num_envs + e, ``slots``
        ``[..., S, B]``, of any shape."""
        flat = (slots + self._seed_offsets[:, None]).reshape(-1)
        rows = storage.view(-1, *storage.shape[3:]).index_select(0, flat)
        return rows.view(*slots.shape, *storage.shape[3:])

    def _later(self, slots: Tensor, steps) -> Tensor:
        """The flat slot ``steps`` vector steps after ``slots`` in the same environment's stream."""
        return (slots + steps * self.num_envs) % (self.slots * self.num_envs)

    def _draw(self, batch_size: int, generators, drawing: list[int]) -> Tensor:
        """Flat slots ``[S, B]``, each drawing seed's uniform over its usable ones, by redrawing
        (from that seed's generator) the few draws that land on unusable slots."""
        on = {"device": self.device}
        written = [self.sizes[s] * self.num_envs for s in range(self.num_seeds)]
        draws = {
            s: torch.randint(written[s], (batch_size,), generator=generators[s], **on)
            for s in drawing
        }
        slots = torch.stack(
            [
                draws[s] if s in draws else torch.zeros(batch_size, dtype=torch.int64, **on)
                for s in range(self.num_seeds)
            ]
        )
        while True:
            bad = ~self._flat(self.usable, slots)  # [S, B]
            counts = bad.sum(dim=1).tolist()  # one host sync for every seed
            redraw = [s for s in drawing if counts[s]]
            if not redraw:
                return slots
            for s in redraw:
                slots[s, bad[s]] = torch.randint(
                    written[s], (counts[s],), generator=generators[s], **on
                )

    # checkpoints: a seed's run saves its buffer as one buffer's state_dict

    def seed_state(self, seed_index: int) -> dict:
        """Seed ``seed_index``'s buffer as :meth:`ReplayBuffer.state_dict` writes it (copies)."""
        if not self.in_checkpoints:
            return {}
        size = self.sizes[seed_index]
        state = {name: getattr(self, name)[seed_index, :size].clone() for name in _STORED}
        if size < self.slots:  # the following slot holds the newest next observation
            state["observations"] = self.observations[seed_index, : size + 1].clone()
        return {**state, "position": self.positions[seed_index], "size": size}

    def load_seed_state(self, seed_index: int, state: dict) -> None:
        """Put a buffer's state_dict into seed ``seed_index``'s (an empty one: start empty)."""
        if not state:  # saved without its contents: start empty
            return
        for name in _STORED:
            stored = state[name]
            getattr(self, name)[seed_index, : len(stored)] = stored
        self.positions[seed_index], self.sizes[seed_index] = state["position"], state["size"]
        self.usable_counts[seed_index] = int(self.usable[seed_index].sum())


class ReplayBuffer:
    """One seed's replay buffer: ``capacity`` transitions in all, ``capacity // num_envs`` per
    environment, overwriting the oldest first; storage ``[slots, N, ...]``, the seed-batched
    buffer's (:class:`SeedReplayBuffer`) with S = 1. With ``in_checkpoints=False`` its
    state_dict is empty, so checkpoints stay small and a resumed run starts from an empty
    buffer."""

    def __init__(
        self,
        capacity: int,
        num_envs: int,
        spaces: Spaces,
        in_checkpoints: bool = True,
        device: torch.device | str = "cpu",
    ):
        self.seeds = SeedReplayBuffer(capacity, num_envs, spaces, 1, in_checkpoints, device)
        self.in_checkpoints, self.device = in_checkpoints, self.seeds.device
        self.slots, self.num_envs = self.seeds.slots, num_envs

    def __len__(self) -> int:
        return self.seeds.usable_counts[0]

    def __getattr__(self, name: str):  # the stored tensors, [slots, N, ...]
        if name in _STORED:
            return getattr(self.seeds, name)[0]
        raise AttributeError(f"'ReplayBuffer' object has no attribute {name!r}")

    @property
    def position(self) -> int:
        return self.seeds.positions[0]

    @property
    def size(self) -> int:
        return self.seeds.sizes[0]

    def add(self, observations: np.ndarray, actions: Tensor, step: Step) -> None:
        """Store one vector step: the observations acted on, the actions and their outcome."""
        outcome = SeedStep(
            *(
                torch.from_numpy(getattr(step, name))[None]
                for name in ("observations", "rewards", "terminated", "truncated", "valid")
            )
        )
        self.seeds.add(torch.from_numpy(observations)[None], actions[None], outcome)

    def sample(
        self, batch_size: int, generator: torch.Generator, n_step: int, gamma: float
    ) -> Batch:
        """``batch_size`` usable transitions drawn uniformly (with replacement), with their
        n-step returns."""
        if len(self) == 0:
            raise BadInputError("the replay buffer holds no usable transition yet")
        batch = self.seeds.sample(batch_size, [generator], n_step, gamma)
        return Batch(*(getattr(batch, name)[0] for name in Batch.__dataclass_fields__))

    # checkpoints: Run saves every module through state_dict / load_state_dict

    def state_dict(self) -> dict:
        return self.seeds.seed_state(0)

    def load_state_dict(self, state: dict) -> None:
        self.seeds.load_seed_state(0, state)
