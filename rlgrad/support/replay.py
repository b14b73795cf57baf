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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from rlgrad.errors import BadInputError
from rlgrad.returns import n_step_returns
from rlgrad.support.envs import Spaces, Step


@dataclass
class Batch:
    """A sampled minibatch; the DQN target is y = returns + discounts·(1 − terminated)·max Q⁻."""

    observations: Tensor  # [B, *obs], s_t
    actions: Tensor  # [B] int64 (Discrete) or [B, *action] float32 (Box)
    returns: Tensor  # [B]: r_t, or the n-step return Σ_{k<K} γ^k r_{t+k}
    discounts: Tensor  # [B]: γ^K
    terminated: Tensor  # [B] bool: the window ended in a termination
    next_observations: Tensor  # [B, *obs], s_{t+K}


class ReplayBuffer:
    """``capacity`` transitions in all, ``capacity // num_envs`` per environment, overwriting the
    oldest first. With ``in_checkpoints=False`` its state_dict is empty, so checkpoints stay
    small and a resumed run starts from an empty buffer."""

    def __init__(
        self,
        capacity: int,
        num_envs: int,
        spaces: Spaces,
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
        self.num_envs = num_envs
        shape = (self.slots, num_envs)
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
        # usable[t, e]: slot t holds a transition that can be sampled (written, not an autoreset
        # step, and its next observation not yet overwritten)
        self.usable = torch.zeros(shape, dtype=torch.bool, **on)
        self.position = 0  # the slot the next step is written to
        self.size = 0  # slots written so far (at most self.slots)
        # usable transitions, kept up to date by add(): counting them over a million slots on
        # every environment step would cost more than the step
        self.usable_count = 0

    def __len__(self) -> int:
        return self.usable_count

    def add(self, observations: np.ndarray, actions: Tensor, step: Step) -> None:
        """Store one vector step: the observations acted on, the actions and their outcome."""
        t, following = self.position, (self.position + 1) % self.slots
        self.observations[t] = torch.from_numpy(observations)
        self.actions[t] = actions
        self.rewards[t] = torch.from_numpy(step.rewards)
        self.terminated[t] = torch.from_numpy(step.terminated)
        self.truncated[t] = torch.from_numpy(step.truncated)
        self.usable[t] = torch.from_numpy(step.valid)  # slot t was unusable: add() cleared it
        # the next observation goes to the following slot now, so that the newest transition is
        # complete; the oldest transition loses its observation and stops being usable
        self.observations[following] = torch.from_numpy(step.observations)
        lost = int(self.usable[following].sum())  # a host sync on a GPU, but only once per step
        self.usable[following] = False
        self.usable_count += int(step.valid.sum()) - lost
        self.position, self.size = following, min(self.size + 1, self.slots)

    def sample(
        self, batch_size: int, generator: torch.Generator, n_step: int, gamma: float
    ) -> Batch:
        """``batch_size`` usable transitions drawn uniformly (with replacement), with their
        n-step returns."""
        if self.usable_count == 0:
            raise BadInputError("the replay buffer holds no usable transition yet")
        slots = self._draw(batch_size, generator)
        if n_step == 1:  # a one-step window is the transition itself: r, γ, term, s_{t+1}
            returns, terminated = (
                self._flat(self.rewards, slots),
                self._flat(self.terminated, slots),
            )
            discounts = torch.full_like(returns, gamma)
            steps = 1
        else:
            offsets = torch.arange(n_step, device=self.device)[:, None]
            window = self._later(slots, offsets)  # [n, B]
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
        """``storage[t, e]`` for flat slot numbers t · num_envs + e, of any shape."""
        rows = storage.view(-1, *storage.shape[2:]).index_select(0, slots.reshape(-1))
        return rows.view(*slots.shape, *storage.shape[2:])

    def _later(self, slots: Tensor, steps) -> Tensor:
        """The flat slot ``steps`` vector steps after ``slots`` in the same environment's stream."""
        return (slots + steps * self.num_envs) % (self.slots * self.num_envs)

    def _draw(self, batch_size: int, generator: torch.Generator) -> Tensor:
        """Flat slots uniform over the usable ones, by redrawing the few draws that land on
        unusable slots."""
        written = self.size * self.num_envs
        slots = torch.randint(written, (batch_size,), generator=generator, device=self.device)
        while True:
            bad = (~self._flat(self.usable, slots)).nonzero().squeeze(-1)
            if len(bad) == 0:
                return slots
            slots[bad] = torch.randint(
                written, (len(bad),), generator=generator, device=self.device
            )

    # checkpoints: Run saves every module through state_dict / load_state_dict

    def state_dict(self) -> dict:
        if not self.in_checkpoints:
            return {}
        names = ("observations", "actions", "rewards", "terminated", "truncated", "usable")
        state = {name: getattr(self, name)[: self.size].clone() for name in names}
        if self.size < self.slots:  # the following slot holds the newest next observation
            state["observations"] = self.observations[: self.size + 1].clone()
        return {**state, "position": self.position, "size": self.size}

    def load_state_dict(self, state: dict) -> None:
        if not state:  # saved without its contents: start empty
            return
        for name in ("observations", "actions", "rewards", "terminated", "truncated", "usable"):
            stored = state[name]
            getattr(self, name)[: len(stored)] = stored
        self.position, self.size = state["position"], state["size"]
        self.usable_count = int(self.usable.sum())
