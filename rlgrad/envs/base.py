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
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.dtype = dtype
        self.max_episode_steps = limit
        self.generator = torch.Generator(device=self.device)
        self._bounds: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}  # see uniform()
        self._seed(seed)
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

    def _seed(self, seed: int | None) -> None:
        if seed is None:
            self.generator.seed()
        elif isinstance(seed, int) and not isinstance(seed, bool):
            self.generator.manual_seed(seed)
        else:
            raise BadInputError(f"{self.id}: seed must be an int or None; got {seed!r}")

    def uniform(self, n: int, low, high) -> torch.Tensor:
        """``[n, len(low)]`` draws from U(low, high) with the environment's generator.

        Runs on every step (fresh states for the copies due a reset), so each pair of bounds is
        made a tensor on the device once, not copied there from the host every step.
        """
        key = (tuple(low), tuple(high))
        if key not in self._bounds:
            self._bounds[key] = tuple(
                torch.as_tensor(bound, dtype=self.dtype, device=self.device) for bound in key
            )
        low, high = self._bounds[key]
        draws = torch.rand(
            n, low.numel(), generator=self.generator, dtype=self.dtype, device=self.device
        )
        return low + (high - low) * draws

    def reset(self, seed: int | None = None):
        """Start a new episode in every copy: ``(observations, {})``."""
        if seed is not None:
            self._seed(seed)
        self.state = self.initial_states(self.num_envs)
        self.elapsed.zero_()
        self.reset_pending.zero_()
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

    def step(self, actions):
        """One step of every copy: ``(observations, rewards, terminated, truncated, info)``.

        Copies whose episode ended on the previous step start a new one instead (their action is
        ignored, reward 0, flags false); ``info`` is empty.
        """
        actions = self.check_actions(actions)
        pending = self.reset_pending
        next_state, reward, terminated = self.transition(self.state, actions)
        elapsed = self.elapsed + 1
        truncated = elapsed >= self.max_episode_steps
        # Fresh states are drawn for every copy on every step and kept where a reset is due:
        # asking "is any reset due?" would make the device wait for the host each step.
        fresh = self.initial_states(self.num_envs)
        next_state = torch.where(pending[:, None], fresh, next_state)
        reward = torch.where(pending, torch.zeros_like(reward), reward)
        terminated = terminated & ~pending
        truncated = truncated & ~pending
        elapsed = torch.where(pending, torch.zeros_like(elapsed), elapsed)
        self.state = next_state
        self.elapsed = elapsed
        self.reset_pending = terminated | truncated
        return self.observe(next_state), reward, terminated, truncated, {}

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_envs={self.num_envs}, device={self.device}, "
            f"dtype={self.dtype}, max_episode_steps={self.max_episode_steps})"
        )
