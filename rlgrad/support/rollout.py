"""On-policy rollout storage: preallocated time-major tensors ``[T, N, ...]``."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from rlgrad.errors import BadInputError
from rlgrad.returns import discounted_returns, gae
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

    def collect(
        self,
        envs,
        agents,
        generators,
        active,
        *,
        episodes: bool = False,
        reset_seeds: list[list[int]] | None = None,
    ) -> list[int]:
        """Act with every seed's policy (no gradient) and store each step; return the steps each
        seed took, ``[S]`` (0 for a seed that is not active). ``agents`` is a seed-batched agent
        (:mod:`rlgrad.support.seeded`) with ``policy_head``, ``draw``, ``act`` and
        ``clip_actions``; seed s draws from ``generators[s]``; ``active`` ([S] bool, NumPy) says
        which seeds still train.

        Without ``episodes`` every active seed takes T steps. With ``episodes=True`` it is
        :meth:`Rollout.collect`'s episode mode for each seed: the active seeds' environments are
        reset first (seed s's from ``reset_seeds[s]``, one per environment, when given), and a
        seed stops being stepped, and stops drawing, once each of its environments has finished
        one episode; the batch goes on until every active seed has. The steps after an
        environment's first episode are not ``valid``, and the rows after a seed stopped hold
        its last observation, reward 0 and no flags, so row ``steps[s]`` of ``observations`` is
        seed s's true final observation.
        """
        device = self.observations.device
        # the seeds that train ([S, 1, 1]), or None when all do (nothing to mask)
        training = None if np.all(active) else torch.as_tensor(active, device=device)[:, None, None]
        collecting = np.array(active, dtype=bool)  # the seeds still stepped
        if episodes:
            envs.reset(reset_seeds, collecting)
            finished = torch.zeros(self.num_seeds, self.num_envs, dtype=torch.bool, device=device)
        steps = np.zeros(self.num_seeds, np.int64)
        observations = envs.observations
        for t in range(self.num_steps):
            self.observations[t] = self._training_observations(observations, training)
            with torch.no_grad():
                heads = agents.policy_head(self.observations[t])
                draws = self._draws(agents, heads, generators, collecting)
                actions, log_probs = agents.act(heads, draws)
            step = envs.step(agents.clip_actions(actions), collecting)
            self.actions[t] = actions
            self.log_probs[t] = log_probs
            self.rewards[t] = step.rewards
            self.terminated[t] = step.terminated
            self.truncated[t] = step.truncated
            self.valid[t] = step.valid
            observations = step.observations
            steps += collecting
            if episodes:
                self.valid[t] &= ~finished
                finished |= self.terminated[t] | self.truncated[t]
                collecting &= ~finished.all(dim=1).cpu().numpy()  # one host sync a step
                if not collecting.any():
                    break
        if episodes and collecting.any():
            raise BadInputError(
                f"an episode ran longer than {self.num_steps} steps without ending; raise "
                "config field 'max_episode_steps'"
            )
        self.observations[steps.max()] = self._training_observations(observations, training)
        return steps.tolist()

    def _training_observations(self, observations: Tensor, training: Tensor | None) -> Tensor:
        """``observations [S, N, *obs]`` on the rollout's device, 0 for a seed that is not
        ``training`` ([S, 1, 1] bool; None: all are): a failed seed's NaN stays out of the
        batch."""
        observations = observations.to(self.observations.device)
        if training is None:
            return observations
        return torch.where(training, observations.flatten(2), 0.0).view_as(observations)

    def _draws(self, agents, heads: Tensor, generators, collecting: np.ndarray) -> Tensor:
        """The random part of each collecting seed's actions, from its own generator; zeros
        for the others, whose generators must not advance (a seed draws only what its
        single-seed run draws)."""
        if collecting.all():
            return torch.stack([agents.draw(heads[s], generators[s]) for s in range(len(heads))])
        drawn = {s: agents.draw(heads[s], generators[s]) for s in np.flatnonzero(collecting)}
        filler = torch.zeros_like(next(iter(drawn.values())))
        return torch.stack([drawn.get(s, filler) for s in range(self.num_seeds)])

    def values(self, agents, active, steps: int | None = None) -> tuple[Tensor, Tensor]:
        """V(s_t) and V(s_{t+1}), each ``[T, S, N]`` (``[steps, S, N]``), in one forward pass;
        0 for the seeds that no longer train (``active`` [S] False), a failed one's NaN
        included."""
        S, N = self.num_seeds, self.num_envs
        steps = self.num_steps if steps is None else steps
        with torch.no_grad():  # seed-major for the stacked agent: [S, (T+1)·N, *obs]
            per_seed = self.observations[: steps + 1].transpose(0, 1).flatten(1, 2)
            all_values = agents.value(per_seed).view(S, steps + 1, N).transpose(0, 1)
        training = torch.as_tensor(active, device=all_values.device)[:, None]  # [S, 1]
        all_values = torch.where(training, all_values, 0.0)
        return all_values[:-1], all_values[1:]

    def training_rewards(self, active, steps: int | None = None) -> Tensor:
        """``rewards[:steps]``, ``[steps, S, N]``, with 0 for the seeds that no longer train: the
        formulas refuse non-finite input, and a failed seed's numbers are unused."""
        steps = self.num_steps if steps is None else steps
        training = torch.as_tensor(active, device=self.rewards.device)[:, None]  # [S, 1]
        return torch.where(training, self.rewards[:steps], 0.0)

    def gae(self, agents, gamma: float, lam: float, active) -> tuple[Tensor, Tensor, Tensor]:
        """V(s_t), the GAE(λ) advantages and the λ-returns A_t + V(s_t), each ``[T, S, N]``.
        Seeds that no longer train (``active`` [S] False, a failed one's NaN included) enter
        the scan as zeros: the formula refuses non-finite input, and their numbers are unused."""
        T, S, N = self.num_steps, self.num_seeds, self.num_envs
        values, next_values = self.values(agents, active)
        advantages = gae(
            self.training_rewards(active).flatten(1),
            values.flatten(1),
            next_values.flatten(1),
            self.terminated.flatten(1),
            self.truncated.flatten(1),
            gamma,
            lam,
        ).view(T, S, N)
        return values, advantages, advantages + values

    def returns(
        self, gamma: float, active, steps: int, agents=None
    ) -> tuple[Tensor | None, Tensor]:
        """The reward-to-go G_t of the first ``steps`` rows, ``[steps, S, N]``
        (:func:`~rlgrad.returns.discounted_returns`), bootstrapped at a truncation from
        V(s_{t+1}) of ``agents`` when given; returns V(s_t) too (None without ``agents``).
        Seeds that no longer train enter as zeros, as in :meth:`gae`."""
        values = next_values = None
        if agents is not None:
            values, next_values = self.values(agents, active, steps)
        returns = discounted_returns(
            self.training_rewards(active, steps),
            self.terminated[:steps],
            self.truncated[:steps],
            gamma,
            next_values,
        )
        return values, returns

    def valid_samples(self, steps: int | None = None) -> tuple[Tensor, Tensor]:
        """Each seed's valid samples as indices ``t·N + i`` into :meth:`per_seed`'s rows, in
        order, padded to the most any seed has: ``indices [S, U]`` (int64, 0 on the padding)
        and ``kept [S, U]`` (bool, False on the padding). Row s of ``indices[kept]`` is what a
        single-seed :class:`Rollout`'s ``valid_indices`` gives for seed s."""
        valid = self.per_seed(self.valid, steps)  # [S, steps·N]
        counts = valid.sum(dim=1)
        width = int(counts.max())
        # a stable sort of "not valid" puts each row's valid samples first, in their order
        order = torch.sort((~valid).to(torch.uint8), dim=1, stable=True).indices[:, :width]
        kept = torch.arange(width, device=valid.device) < counts.unsqueeze(1)
        return torch.where(kept, order, 0), kept

    def per_seed(self, tensor: Tensor, steps: int | None = None) -> Tensor:
        """The first T (``steps``) rows of a ``[T, S, N, ...]`` tensor as ``[S, T·N, ...]``:
        sample ``t·N + i`` of seed s, the order of a single-seed :class:`Rollout`'s ``flat``."""
        steps = self.num_steps if steps is None else steps
        return tensor[:steps].transpose(0, 1).flatten(1, 2)
