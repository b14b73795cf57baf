"""On-policy rollout storage: preallocated time-major tensors ``[T, N, ...]``."""

from __future__ import annotations

import torch
from torch import Tensor

from rlgrad.errors import BadInputError
from rlgrad.returns import gae
from rlgrad.support.envs import Spaces, VectorEnv


class Rollout:
    """T steps of N environments. ``observations`` has T + 1 rows: row t + 1 is what step t
    returned, which at a termination or truncation is the true final observation (Gymnasium's
    next-step autoreset), so ``values[1:]`` are exactly the ``next_values`` GAE needs."""

    def __init__(self, num_steps: int, num_envs: int, spaces: Spaces):
        T, N = num_steps, num_envs
        self.num_steps, self.num_envs = T, N
        self.observations = torch.zeros((T + 1, N, *spaces.observation_shape))
        action_shape = () if spaces.discrete else spaces.action_shape
        action_dtype = torch.int64 if spaces.discrete else torch.float32
        self.actions = torch.zeros((T, N, *action_shape), dtype=action_dtype)
        self.log_probs = torch.zeros(T, N)
        self.rewards = torch.zeros(T, N)
        self.terminated = torch.zeros(T, N, dtype=torch.bool)
        self.truncated = torch.zeros(T, N, dtype=torch.bool)
        self.valid = torch.zeros(T, N, dtype=torch.bool)

    def collect(
        self,
        env: VectorEnv,
        agent,
        generator: torch.Generator,
        *,
        episodes: bool = False,
        reset_seeds: list[int] | None = None,
    ) -> int:
        """Act with ``agent.sample`` (no gradient) and store each step; return the steps taken.

        With ``episodes=True`` every environment is reset first (from ``reset_seeds`` when
        given) and collection stops once each has finished one episode; the steps after an
        environment's first episode are marked not ``valid`` (they belong to an episode that
        will not be complete).
        """
        if episodes:
            env.reset(reset_seeds)
            finished = torch.zeros(self.num_envs, dtype=torch.bool)
        for t in range(self.num_steps):
            observations = torch.as_tensor(env.observations)
            self.observations[t] = observations
            with torch.no_grad():
                actions, log_probs = agent.sample(observations, generator)
            step = env.step(agent.env_actions(actions))
            self.actions[t] = actions
            self.log_probs[t] = log_probs
            self.rewards[t] = torch.as_tensor(step.rewards)
            self.terminated[t] = torch.as_tensor(step.terminated)
            self.truncated[t] = torch.as_tensor(step.truncated)
            self.valid[t] = torch.as_tensor(step.valid)
            if episodes:
                self.valid[t] &= ~finished
                finished |= self.terminated[t] | self.truncated[t]
                if bool(finished.all()):
                    self.observations[t + 1] = torch.as_tensor(env.observations)
                    return t + 1
        self.observations[self.num_steps] = torch.as_tensor(env.observations)
        if episodes:
            raise BadInputError(
                f"an episode ran longer than {self.num_steps} steps without ending; raise "
                "config field 'max_episode_steps'"
            )
        return self.num_steps

    def values(self, agent, steps: int | None = None) -> tuple[Tensor, Tensor]:
        """V(s_t) and V(s_{t+1}), each ``[T, N]`` (``[steps, N]``), in one forward pass."""
        steps = self.num_steps if steps is None else steps
        with torch.no_grad():
            all_values = agent.value(self.observations[: steps + 1].flatten(0, 1))  # [(T+1)·N]
        all_values = all_values.view(steps + 1, self.num_envs)
        return all_values[:-1], all_values[1:]

    def gae(self, agent, gamma: float, lam: float) -> tuple[Tensor, Tensor, Tensor]:
        """V(s_t), the GAE(λ) advantages and the λ-returns A_t + V(s_t), each ``[T, N]``."""
        values, next_values = self.values(agent)
        advantages = gae(
            self.rewards, values, next_values, self.terminated, self.truncated, gamma, lam
        )
        return values, advantages, advantages + values

    def valid_indices(self) -> Tensor:
        """Flat indices ``t·N + i`` of the steps that belong in a loss (not autoreset steps)."""
        return self.valid.flatten().nonzero().squeeze(1)

    def flat(self, name: str) -> Tensor:
        """A stored tensor with time and environment merged, ``[T·N, ...]``."""
        return getattr(self, name)[: self.num_steps].flatten(0, 1)


class SeedRollout:
    """T steps of N environments for each of S seeds: tensors ``[T, S, N, ...]``.

    As :class:`Rollout`, row t + 1 of ``observations`` is what step t returned (the true final
    observation at a termination or truncation), so ``values[1:]`` are GAE's next values. Steps
    of a seed that is not active are not ``valid``.
    """

    def __init__(self, num_steps: int, num_seeds: int, num_envs: int, spaces: Spaces, device="cpu"):
        T, S, N = num_steps, num_seeds, num_envs
        self.num_steps, self.num_seeds, self.num_envs = T, S, N
        on = {"device": device}
        self.observations = torch.zeros((T + 1, S, N, *spaces.observation_shape), **on)
        action_shape = () if spaces.discrete else spaces.action_shape
        action_dtype = torch.int64 if spaces.discrete else torch.float32
        self.actions = torch.zeros((T, S, N, *action_shape), dtype=action_dtype, **on)
        self.log_probs = torch.zeros(T, S, N, **on)
        self.rewards = torch.zeros(T, S, N, **on)
        self.terminated = torch.zeros(T, S, N, dtype=torch.bool, **on)
        self.truncated = torch.zeros(T, S, N, dtype=torch.bool, **on)
        self.valid = torch.zeros(T, S, N, dtype=torch.bool, **on)

    def collect(self, envs, agents, generators, active) -> None:
        """Act with every seed's policy (no gradient) and store T steps. ``agents`` is a
        seed-batched agent (:mod:`rlgrad.support.seeded`) with ``policy_head``, ``draw``,
        ``act`` and ``clip_actions``; seed s draws from ``generators[s]``; ``active`` ([S] bool,
        NumPy) says which seeds still train."""
        training = torch.as_tensor(active, device=self.observations.device)[:, None, None]
        for t in range(self.num_steps):
            # a seed that stopped is not stepped; zeros keep a failed one's NaN out of the batch
            observations = envs.observations.to(self.observations.device)
            self.observations[t] = torch.where(training, observations.flatten(2), 0.0).view_as(
                observations
            )
            with torch.no_grad():
                heads = agents.policy_head(self.observations[t])
                draws = torch.stack(
                    [agents.draw(heads[s], generators[s]) for s in range(self.num_seeds)]
                )
                actions, log_probs = agents.act(heads, draws)
            step = envs.step(agents.clip_actions(actions), active)
            self.actions[t] = actions
            self.log_probs[t] = log_probs
            self.rewards[t] = step.rewards
            self.terminated[t] = step.terminated
            self.truncated[t] = step.truncated
            self.valid[t] = step.valid
        last = envs.observations.to(self.observations.device)
        self.observations[self.num_steps] = torch.where(training, last.flatten(2), 0.0).view_as(
            last
        )

    def gae(self, agents, gamma: float, lam: float, active) -> tuple[Tensor, Tensor, Tensor]:
        """V(s_t), the GAE(λ) advantages and the λ-returns A_t + V(s_t), each ``[T, S, N]``.
        Seeds that no longer train (``active`` [S] False, a failed one's NaN included) enter
        the scan as zeros: the formula refuses non-finite input, and their numbers are unused."""
        T, S, N = self.num_steps, self.num_seeds, self.num_envs
        with torch.no_grad():  # seed-major for the stacked agent: [S, (T+1)·N, *obs]
            per_seed = self.observations.transpose(0, 1).flatten(1, 2)
            all_values = agents.value(per_seed).view(S, T + 1, N).transpose(0, 1)
        training = torch.as_tensor(active, device=all_values.device)[:, None]  # [S, 1]
        all_values = torch.where(training, all_values, 0.0)
        values, next_values = all_values[:-1], all_values[1:]
        rewards = torch.where(training, self.rewards, 0.0)
        advantages = gae(
            rewards.flatten(1),
            values.flatten(1),
            next_values.flatten(1),
            self.terminated.flatten(1),
            self.truncated.flatten(1),
            gamma,
            lam,
        ).view(T, S, N)
        return values, advantages, advantages + values

    def per_seed(self, tensor: Tensor) -> Tensor:
        """A ``[T, S, N, ...]`` tensor as ``[S, T·N, ...]``: sample ``t·N + i`` of seed s, the
        order of a single-seed :class:`Rollout`'s ``flat``."""
        return tensor[: self.num_steps].transpose(0, 1).flatten(1, 2)
