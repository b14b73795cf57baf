"""What every batched torch environment shares: spaces, seeding, time limits and Gymnasium 1.x's
next-step autoreset.

An environment here is N copies of one task, held as tensors on one device and stepped together:
``step`` takes an action per copy and returns tensors of shape ``[N, ...]``, with no NumPy and no
Python loop over copies. The rules a trainer relies on are Gymnasium 1.x's for its vector
environments:

- ``truncated`` is set when an episode reaches ``max_episode_steps`` (as Gymnasium's TimeLimit
  sets it, even on a step that also terminates);
- *next-step autoreset*: the step that ends an episode returns its true final observation; the
  next ``step`` ignores that copy's action, starts a new episode and returns its first
  observation with reward 0 and both flags false.

*Groups*: built with ``seeds=[s₀, s₁, ...]`` instead of ``seed``, the environment holds G groups
of ``num_envs`` copies, G·num_envs rows in all, group g in rows g·N … g·N + N − 1 with its own
generator seeded with s_g. Every task's copies are independent rows and group g draws its reset
states from generator g alone, so group g steps bit for bit as a separate environment built with
``seed=s_g`` (the trick that trains many seeds at once, each on its own environments). A step is
still one batch of tensor ops, plus one small draw per group.

A subclass supplies the task: :meth:`TorchVectorEnv.initial_states` (the reset distribution),
:meth:`TorchVectorEnv.transition` (dynamics, reward, termination) and
:meth:`TorchVectorEnv.observe` (state → observation). Its physics runs in ``dtype``: float64
reproduces Gymnasium's NumPy arithmetic, float32 is the fast choice on a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlgrad.errors import BadInputError


@dataclass(frozen=True)
class Discrete:
    """Actions 0, 1, ..., n − 1 (Gymnasium's ``Discrete(n)``)."""

    n: int


@dataclass(frozen=True)
class Box:
    """Real vectors between ``low`` and ``high`` (Gymnasium's ``Box``), bounds as float tuples."""

    low: tuple[float, ...]
    high: tuple[float, ...]

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.low),)


class TorchVectorEnv:
    """``num_envs`` copies of a task stepped as one batch of tensors on ``device``.

    Args:
        num_envs: copies N ≥ 1.
        device: where the state lives and every step runs.
        dtype: the physics' float type (``torch.float64`` matches Gymnasium's arithmetic).
        seed: seeds the environment's own ``torch.Generator`` (reset noise); ``None`` draws one.
        max_episode_steps: the time limit (Gymnasium's registered one by default).
        seeds: instead of ``seed``, G seeds: G groups of ``num_envs`` copies, group g drawing
            from its own generator seeded with ``seeds[g]`` (``generators[g]``); ``num_envs``
            then counts all G·N copies and ``group_size`` the N of one group.
    """

    id: str = ""
    observation_space: Box
    action_space: Discrete | Box
    default_max_episode_steps: int = 0
    state_size: int = 0

    def __init__(
        self,
        num_envs: int = 1,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        seed: int | None = None,
        max_episode_steps: int | None = None,
        *,
        seeds: list[int] | None = None,
    ):
        if not isinstance(num_envs, int) or isinstance(num_envs, bool) or num_envs < 1:
            raise BadInputError(f"{self.id}: num_envs must be an int ≥ 1; got {num_envs!r}")
        if dtype not in (torch.float32, torch.float64):
            raise BadInputError(
                f"{self.id}: dtype must be torch.float32 or torch.float64; got {dtype}"
            )
        limit = self.default_max_episode_steps if max_episode_steps is None else max_episode_steps
        if not isinstance(limit, int) or limit < 1:
            raise BadInputError(f"{self.id}: max_episode_steps must be an int ≥ 1; got {limit!r}")
        if seeds is not None:
            if seed is not None:
                raise BadInputError(
                    f"{self.id}: give seed or seeds, not both; got seed={seed!r}, seeds={seeds!r}"
                )
            if not isinstance(seeds, (list, tuple)) or not seeds:
                raise BadInputError(f"{self.id}: seeds must be a non-empty list; got {seeds!r}")
        self.num_groups = 1 if seeds is None else len(seeds)
        self.group_size = num_envs
        self.num_envs = self.num_groups * num_envs
        self.device = torch.device(device)
        self.dtype = dtype
        self.max_episode_steps = limit
        self.generators = [torch.Generator(device=self.device) for _ in range(self.num_groups)]
        self.generator = self.generators[0]
        self._bounds: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}  # see uniform()
        self._drawing: list[bool] | None = None  # the groups that draw in this step; see step()
        self._row_generators: list | None = None  # one per copy, in reset_groups(seeds=...)
        self._row_masks: dict[tuple[bool, ...], torch.Tensor] = {}  # see _active_rows()
        if seeds is None:
            self._seed(seed)
        else:
            for generator, group_seed in zip(self.generators, seeds, strict=True):
                self._seed(group_seed, generator)
        num_envs = self.num_envs
        self.state = torch.zeros(num_envs, self.state_size, dtype=dtype, device=self.device)
        self.elapsed = torch.zeros(num_envs, dtype=torch.long, device=self.device)
        self.reset_pending = torch.zeros(num_envs, dtype=torch.bool, device=self.device)

    # --- the task: a subclass writes these three ------------------------------------------

    def initial_states(self, n: int) -> torch.Tensor:
        """``[n, state_size]`` states drawn from the reset distribution with ``self.generator``."""
        raise NotImplementedError

    def transition(self, state: torch.Tensor, action: torch.Tensor):
        """``(next_state, reward, terminated)`` for a batch of states and actions."""
        raise NotImplementedError

    def observe(self, state: torch.Tensor) -> torch.Tensor:
        """The observation of each state, ``[n, *observation_space.shape]``."""
        raise NotImplementedError

    # --- the shared rules --------------------------------------------------------------------

    def _seed(self, seed: int | None, generator: torch.Generator | None = None) -> None:
        generator = self.generator if generator is None else generator
        if seed is None:
            generator.seed()
        elif isinstance(seed, int) and not isinstance(seed, bool):
            generator.manual_seed(seed)
        else:
            raise BadInputError(f"{self.id}: seed must be an int or None; got {seed!r}")

    def uniform(self, n: int, low, high) -> torch.Tensor:
        """``[n, len(low)]`` draws from U(low, high) with the environment's generator.

        Runs on every step (fresh states for the copies due a reset), so each pair of bounds is
        made a tensor on the device once, not copied there from the host every step. With G
        groups, ``n`` is a multiple of G and group g's n/G rows come from generator g; a group
        that is not stepped (:meth:`step`'s ``active``) draws nothing and gets zeros.
        """
        key = (tuple(low), tuple(high))
        if key not in self._bounds:
            self._bounds[key] = tuple(
                torch.as_tensor(bound, dtype=self.dtype, device=self.device) for bound in key
            )
        low, high = self._bounds[key]
        if self._row_generators is not None:  # each copy from its own generator (or zeros)
            if n != len(self._row_generators):
                raise BadInputError(
                    f"{self.id}.uniform: n must be {len(self._row_generators)}, one draw per "
                    f"copy; got {n}"
                )
            row = (1, low.numel())
            draws = torch.cat(
                [
                    torch.zeros(row, dtype=self.dtype, device=self.device)
                    if generator is None
                    else torch.rand(row, generator=generator, dtype=self.dtype, device=self.device)
                    for generator in self._row_generators
                ]
            )
            return low + (high - low) * draws
        if self.num_groups == 1:
            draws = torch.rand(
                n, low.numel(), generator=self.generator, dtype=self.dtype, device=self.device
            )
            return low + (high - low) * draws
        if n % self.num_groups:
            raise BadInputError(
                f"{self.id}.uniform: n must be a multiple of the {self.num_groups} groups; got {n}"
            )
        rows = (n // self.num_groups, low.numel())
        drawing = self._drawing or [True] * self.num_groups
        draws = torch.cat(
            [
                torch.rand(rows, generator=generator, dtype=self.dtype, device=self.device)
                if draws_now
                else torch.zeros(rows, dtype=self.dtype, device=self.device)
                for generator, draws_now in zip(self.generators, drawing, strict=True)
            ]
        )  # [n, len(low)], group g's rows from generator g
        return low + (high - low) * draws

    def reset(self, seed: int | list[int] | None = None):
        """Start a new episode in every copy: ``(observations, {})``. ``seed`` reseeds the
        generator first (with groups: a list of one seed per group)."""
        if seed is not None and self.num_groups > 1:
            if not isinstance(seed, (list, tuple)) or len(seed) != self.num_groups:
                raise BadInputError(
                    f"{self.id}.reset: seed must be a list of {self.num_groups} seeds, one per "
                    f"group; got {seed!r}"
                )
            for generator, group_seed in zip(self.generators, seed, strict=True):
                self._seed(group_seed, generator)
        elif seed is not None:
            self._seed(seed)
        self.state = self.initial_states(self.num_envs)
        self.elapsed.zero_()
        self.reset_pending.zero_()
        return self.observe(self.state), {}

    def reset_groups(self, active: list[bool], seeds: list[int | None] | None = None):
        """Start a new episode in every copy of the ``active`` groups (host booleans, one per
        group) and leave the other groups as they are: ``(observations, {})`` of all copies.

        The fresh states come from each active group's continuing generator, or, with ``seeds``
        (one per copy, ``num_envs`` long; None for a copy of a group that is not active), each
        copy's from a generator seeded with its own seed, which the groups' generators do not
        feel: equal seeds give equal start states (GRPO's groups share one)."""
        rows = self._active_rows(active)  # [num_envs] bool
        if seeds is None:
            self._drawing = [bool(a) for a in active]
        else:
            if len(seeds) != self.num_envs:
                raise BadInputError(
                    f"{self.id}.reset_groups: seeds must hold one seed per copy "
                    f"({self.num_envs}); got {len(seeds)}"
                )
            resetting = [bool(a) for a in active for _ in range(self.group_size)]
            if any(seed is None for seed, due in zip(seeds, resetting, strict=True) if due):
                raise BadInputError(
                    f"{self.id}.reset_groups: every copy of an active group needs a seed; got "
                    f"{list(seeds)!r} for active groups {list(active)!r}"
                )
            self._row_generators = [
                torch.Generator(device=self.device).manual_seed(seed) if due else None
                for seed, due in zip(seeds, resetting, strict=True)
            ]
        try:
            fresh = self.initial_states(self.num_envs)
        finally:
            self._drawing = self._row_generators = None
        self.state = torch.where(rows[:, None], fresh, self.state)
        self.elapsed = torch.where(rows, torch.zeros_like(self.elapsed), self.elapsed)
        self.reset_pending = self.reset_pending & ~rows
        return self.observe(self.state), {}

    def check_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """Actions as a tensor on the environment's device, shape- and dtype-checked.

        Only what the host knows is checked (shape and dtype): a value check, such as a discrete
        action out of range, would make the device wait for the host on every step.
        """
        actions = torch.as_tensor(actions, device=self.device)
        discrete = isinstance(self.action_space, Discrete)
        expected = (self.num_envs,) if discrete else (self.num_envs, *self.action_space.shape)
        if tuple(actions.shape) != expected:
            raise BadInputError(
                f"{self.id}.step: actions must have shape {expected}; got {tuple(actions.shape)}"
            )
        integral = not actions.is_floating_point() and not actions.is_complex()
        if discrete and (not integral or actions.dtype == torch.bool):
            raise BadInputError(
                f"{self.id}.step: discrete actions must be an integer tensor; got {actions.dtype}"
            )
        if not discrete and not actions.is_floating_point():
            raise BadInputError(
                f"{self.id}.step: continuous actions must be a float tensor; got {actions.dtype}"
            )
        return actions

    def step(self, actions, active: list[bool] | None = None):
        """One step of every copy: ``(observations, rewards, terminated, truncated, info)``.

        Copies whose episode ended on the previous step start a new one instead (their action is
        ignored, reward 0, flags false); ``info`` is empty. ``active`` (host booleans, one per
        group; default all) leaves the other groups as they are: their state, clock and
        generator do not move, their reward is 0 and their flags false.
        """
        actions = self.check_actions(actions)
        some_paused = active is not None and not all(active)
        rows = self._active_rows(active) if active is not None else None  # [num_envs] bool
        pending = self.reset_pending
        next_state, reward, terminated = self.transition(self.state, actions)
        elapsed = self.elapsed + 1
        truncated = elapsed >= self.max_episode_steps
        # Fresh states are drawn for every copy on every step and kept where a reset is due:
        # asking "is any reset due?" would make the device wait for the host each step.
        self._drawing = None if active is None else [bool(a) for a in active]
        try:
            fresh = self.initial_states(self.num_envs)
        finally:
            self._drawing = None
        next_state = torch.where(pending[:, None], fresh, next_state)
        reward = torch.where(pending, torch.zeros_like(reward), reward)
        terminated = terminated & ~pending
        truncated = truncated & ~pending
        elapsed = torch.where(pending, torch.zeros_like(elapsed), elapsed)
        if some_paused:
            next_state = torch.where(rows[:, None], next_state, self.state)
            reward = torch.where(rows, reward, torch.zeros_like(reward))
            terminated, truncated = terminated & rows, truncated & rows
            elapsed = torch.where(rows, elapsed, self.elapsed)
            pending = torch.where(rows, terminated | truncated, pending)
        else:
            pending = terminated | truncated
        self.state = next_state
        self.elapsed = elapsed
        self.reset_pending = pending
        return self.observe(next_state), reward, terminated, truncated, {}

    def _active_rows(self, active) -> torch.Tensor:
        """``[num_envs]`` bool on the device: the rows of the groups that ``active`` marks (made
        once per pattern, so that a step does not copy it from the host)."""
        key = tuple(bool(a) for a in active)
        if len(key) != self.num_groups:
            raise BadInputError(
                f"{self.id}.step: active must hold one flag per group ({self.num_groups}); "
                f"got {len(key)}"
            )
        if key not in self._row_masks:
            groups = torch.tensor(key, device=self.device)
            self._row_masks[key] = groups.repeat_interleave(self.group_size)
        return self._row_masks[key]

    def _group_rows(self, group: int) -> slice:
        if not isinstance(group, int) or not 0 <= group < self.num_groups:
            raise BadInputError(
                f"{self.id}: group must be an int in [0, {self.num_groups}); got {group!r}"
            )
        return slice(group * self.group_size, (group + 1) * self.group_size)

    def group_state(self, group: int) -> dict:
        """Group ``group``'s part of the environment, enough to continue it exactly: its rows of
        ``state`` ``[N, state_size]``, ``elapsed`` and ``reset_pending`` ``[N]`` (copies) and
        its generator's state."""
        rows = self._group_rows(group)
        return {
            "state": self.state[rows].clone(),
            "elapsed": self.elapsed[rows].clone(),
            "reset_pending": self.reset_pending[rows].clone(),
            "generator": self.generators[group].get_state(),
        }

    def load_group_state(self, group: int, state: dict) -> None:
        """Put :meth:`group_state` back into group ``group`` (the other groups are untouched)."""
        rows = self._group_rows(group)
        for name in ("state", "elapsed", "reset_pending"):
            current = getattr(self, name)
            saved = torch.as_tensor(state[name])
            if saved.shape != current[rows].shape or saved.dtype != current.dtype:
                raise BadInputError(
                    f"{self.id}.load_group_state: {name!r} must be {current.dtype} of shape "
                    f"{tuple(current[rows].shape)}; got {saved.dtype} of shape "
                    f"{tuple(saved.shape)}"
                )
            # a new tensor, not an in-place write: an observation handed out earlier may be a
            # view of the old state (CartPole's float32 observation is the state itself)
            updated = current.clone()
            updated[rows] = saved.to(self.device)
            setattr(self, name, updated)
        self.generators[group].set_state(state["generator"])

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_envs={self.num_envs}, groups={self.num_groups}, "
            f"device={self.device}, "
            f"dtype={self.dtype}, max_episode_steps={self.max_episode_steps})"
        )
