"""The training environments of many seeds on a device: :class:`TorchSeedEnvs`.

S seeds × N copies of an :mod:`rlgrad.envs` task are one grouped
:class:`~rlgrad.envs.base.TorchVectorEnv` (group s on its own generator, seeded with seed s), so
a step of every seed is one batch of tensor ops on the device, with no NumPy and no host sync.
Around it, everything :class:`~rlgrad.support.envs.VectorEnv` adds to a Gymnasium vector env is
kept per seed as tensors with a leading seed axis:

========================  =================  ================================================
name                      shape              meaning
========================  =================  ================================================
``observations``          ``[S, N, *obs]``   what each seed's policy acts on next (float32)
``obs_stats.mean/var``    ``[S, *obs]``      running statistics of the raw observations
``return_stats.var``      ``[S]``            running variance of the discounted return
``_discounted``           ``[S, N]``         discounted return so far (reward normalization)
``_episode_returns``      ``[S, N]``         raw return of the episode in progress (float64)
``_episode_lengths``      ``[S, N]``         steps of the episode in progress
========================  =================  ================================================

Seed s behaves as :class:`~rlgrad.support.envs.VectorEnv` does for one run: the same
normalization formulas, the same counters, and the same next-step autoreset rules (``valid``
False on the reset step); only its environments are the torch task's, seeded by torch's
generator instead of NumPy's. ``envs[s]`` is seed s as a :class:`~rlgrad.support.runs.Run` reads
its environment (episode statistics, normalization statistics, checkpoint state).
"""

from __future__ import annotations

from collections import deque

import numpy as np
import torch
from torch import Tensor

from rlgrad.envs import ENVIRONMENTS, Discrete, TorchVectorEnv, make
from rlgrad.errors import BadInputError
from rlgrad.support.envs import SeedStep, Spaces, VectorEnv

NORMALIZED_CLIP = 10.0  # as VectorEnv: normalized observations and rewards lie in [−10, 10]
VARIANCE_EPSILON = 1e-8
INITIAL_COUNT = 1e-4  # RunningMeanStd's: the prior's weight before the first batch
_ENDED_BUFFER_STEPS = 512  # steps of ended episodes kept on the device before a forced flush


def torch_env_spaces(env: TorchVectorEnv) -> Spaces:
    """The :class:`~rlgrad.support.envs.Spaces` of a torch task, as ``spaces_of`` gives
    Gymnasium's (action bounds as float32 NumPy arrays)."""
    observation_shape = tuple(env.observation_space.shape)
    action_space = env.action_space
    if isinstance(action_space, Discrete):
        return Spaces(observation_shape, True, action_space.n, (), None, None)
    low = np.asarray(action_space.low, np.float32)
    high = np.asarray(action_space.high, np.float32)
    return Spaces(observation_shape, False, 0, tuple(action_space.shape), low, high)


def normalized(values: Tensor, mean: Tensor, var: Tensor) -> Tensor:
    """clip((x − μ) / √(σ² + 1e-8), −10, 10) in float64, as VectorEnv normalizes observations.

    ``values`` ``[S, N, *shape]``, ``mean`` and ``var`` ``[S, *shape]``; returns float32
    ``[S, N, *shape]``.

        >>> normalized(torch.tensor([[[3.0]]]), torch.tensor([[1.0]]), torch.tensor([[4.0]]))
        tensor([[[1.]]])
    """
    scaled = (values.double() - mean.unsqueeze(1)) / torch.sqrt(var.unsqueeze(1) + VARIANCE_EPSILON)
    return scaled.clamp(-NORMALIZED_CLIP, NORMALIZED_CLIP).float()


class SeedRunningMeanStd:
    """Running mean and variance of S streams of batches on a device, one per seed: Chan et
    al.'s parallel update (as :class:`~rlgrad.support.envs.RunningMeanStd`), in float64.

    With a batch of n_s values of seed s (those its ``mask`` marks), of mean m and population
    variance v, and the seed's statistics μ, σ², c (c starts at 1e-4):

        δ = m − μ,  c' = c + n_s
        μ' = μ + δ·n_s/c'
        σ²' = (σ²·c + v·n_s + δ²·c·n_s/c') / c'

    A seed with n_s = 0 keeps its statistics.

    ==========  ===============  ==================================
    name        shape            meaning
    ==========  ===============  ==================================
    ``mean``    ``[S, *shape]``  μ per seed (float64)
    ``var``     ``[S, *shape]``  σ² per seed (float64)
    ``count``   ``[S]``          c per seed (float64)
    ==========  ===============  ==================================
    """

    def __init__(self, num_seeds: int, shape: tuple[int, ...], device: torch.device):
        self.shape = tuple(shape)
        self.mean = torch.zeros(num_seeds, *shape, dtype=torch.float64, device=device)
        self.var = torch.ones(num_seeds, *shape, dtype=torch.float64, device=device)
        self.count = torch.full((num_seeds,), INITIAL_COUNT, dtype=torch.float64, device=device)

    def update(self, batch: Tensor, mask: Tensor) -> None:
        """Fold in ``batch [S, n, *shape]``, of which seed s's values are those where
        ``mask [S, n]`` is True."""
        expected = (*mask.shape, *self.shape)
        if tuple(batch.shape) != expected:
            raise BadInputError(
                f"SeedRunningMeanStd.update(): 'batch' must have shape {expected}; "
                f"got {tuple(batch.shape)}"
            )
        trailing = (1,) * len(self.shape)
        weights = mask.to(torch.float64).view(*mask.shape, *trailing)  # [S, n, 1...]
        values = batch.double()
        counts = weights.sum(dim=1)  # [S, 1...]
        some = counts > 0
        safe_counts = torch.where(some, counts, 1.0)
        batch_mean = (values * weights).sum(dim=1) / safe_counts  # [S, *shape]
        batch_var = ((values - batch_mean.unsqueeze(1)).square() * weights).sum(dim=1) / safe_counts
        count = self.count.view(-1, *trailing)
        total = count + counts
        delta = batch_mean - self.mean
        mean = self.mean + delta * counts / total
        var = (
            self.var * count + batch_var * counts + delta.square() * count * counts / total
        ) / total
        self.mean = torch.where(some, mean, self.mean)
        self.var = torch.where(some, var, self.var)
        self.count = self.count + counts.view(-1)

    def seed_state_dict(self, seed_index: int) -> dict:
        """Seed ``seed_index``'s statistics as ``RunningMeanStd.state_dict`` gives them."""
        return {
            "mean": self.mean[seed_index].cpu().numpy().copy(),
            "var": self.var[seed_index].cpu().numpy().copy(),
            "count": float(self.count[seed_index]),
        }

    def load_seed_state_dict(self, seed_index: int, state: dict) -> None:
        device = self.mean.device
        for name in ("mean", "var"):
            tensor = getattr(self, name).clone()
            tensor[seed_index] = torch.as_tensor(state[name], dtype=torch.float64, device=device)
            setattr(self, name, tensor)
        count = self.count.clone()
        count[seed_index] = float(state["count"])
        self.count = count


class SeedStatistics:
    """Seed s of a :class:`SeedRunningMeanStd` as a run sees a ``RunningMeanStd``."""

    def __init__(self, statistics: SeedRunningMeanStd, seed_index: int):
        self.statistics, self.seed_index = statistics, seed_index

    def state_dict(self) -> dict:
        return self.statistics.seed_state_dict(self.seed_index)

    def load_state_dict(self, state: dict) -> None:
        self.statistics.load_seed_state_dict(self.seed_index, state)


class TorchSeedEnvs:
    """The training environments of S seeds, N copies of the torch task ``env_id`` each, on
    ``device``: the interface of :class:`~rlgrad.support.envs.SeedEnvs`, computed as tensors.

    Seed s steps exactly as an :mod:`rlgrad.envs` environment of N copies built with
    ``seed=seeds[s]`` (``dtype`` its physics' float type), and normalizes and counts as a
    single-seed :class:`~rlgrad.support.envs.VectorEnv` does, with its own statistics.
    """

    # what a checkpoint of one seed holds besides its environment rows and statistics
    _SEED_ROWS = ("_observations", "_discounted", "_episode_returns", "_episode_lengths")

    def __init__(
        self,
        env_id: str,
        num_envs: int,
        seeds: list[int],
        *,
        device: str | torch.device = "cpu",
        normalize_obs: bool = False,
        normalize_reward: bool = False,
        gamma: float = 0.99,
        dtype: torch.dtype = torch.float32,
    ):
        if env_id not in ENVIRONMENTS:
            raise BadInputError(
                f"TorchSeedEnvs(): env_id must be one of {', '.join(sorted(ENVIRONMENTS))}; "
                f"got {env_id!r}"
            )
        if not seeds:
            raise BadInputError("TorchSeedEnvs(): 'seeds' must hold at least one seed; got none")
        self.env_id, self.gamma = env_id, gamma
        self.device = torch.device(device)
        self.env = make(env_id, num_envs, self.device, dtype, seeds=list(seeds))
        self.spaces = torch_env_spaces(self.env)
        self.num_seeds, self.num_envs = len(seeds), num_envs
        self.normalize_obs, self.normalize_reward = normalize_obs, normalize_reward
        S, N = self.num_seeds, num_envs
        self.obs_stats = SeedRunningMeanStd(S, self.spaces.observation_shape, self.device)
        self.return_stats = SeedRunningMeanStd(S, (), self.device)
        zeros = {"dtype": torch.float64, "device": self.device}
        self._discounted = torch.zeros(S, N, **zeros)
        self._episode_returns = torch.zeros(S, N, **zeros)
        self._episode_lengths = torch.zeros(S, N, dtype=torch.int64, device=self.device)
        self._finished = [deque(maxlen=100) for _ in range(S)]  # on the host, per seed
        self._ended: list[tuple[Tensor, Tensor, Tensor]] = []  # on the device, not yet read
        self._seed_masks: dict[tuple[bool, ...], Tensor] = {}
        raw, _ = self.env.reset()
        self._observations = self._observe(self._per_seed(raw), self._seed_mask([True] * S))
        self.envs = [TorchSeedEnv(self, s) for s in range(S)]

    def _per_seed(self, rows: Tensor) -> Tensor:  # [S·N, ...] -> [S, N, ...]
        return rows.view(self.num_seeds, self.num_envs, *rows.shape[1:])

    def _seed_mask(self, active: list[bool]) -> Tensor:
        """``[S]`` bool on the device, made once per pattern (no host-to-device copy per step)."""
        key = tuple(active)
        if key not in self._seed_masks:
            self._seed_masks[key] = torch.tensor(key, device=self.device)
        return self._seed_masks[key]

    def _observe(self, raw: Tensor, seeds: Tensor) -> Tensor:
        """What the policy sees of ``raw [S, N, *obs]``; the stepped ``seeds`` ([S] bool) fold
        it into their statistics first, as VectorEnv does."""
        if not self.normalize_obs:
            return raw.float()
        self.obs_stats.update(raw, seeds.unsqueeze(1).expand(-1, self.num_envs))
        return normalized(raw, self.obs_stats.mean, self.obs_stats.var)

    @property
    def observations(self) -> Tensor:
        """``[S, N, *obs]`` float32 on the device: what each seed's policy acts on next."""
        return self._observations

    def reset(self, seeds: list[list[int] | None] | None = None, active=None) -> None:
        """Start a new episode in every environment of the active seeds (``active`` [S] bool;
        all seeds if None), as :meth:`SeedEnvs.reset` does: seed s's from ``seeds[s]`` (one
        reset seed per environment; equal seeds, equal start states) when given, else from its
        continuing random stream. The other seeds' environments, statistics and counters stay
        as they are."""
        S, N = self.num_seeds, self.num_envs
        active = [True] * S if active is None else [bool(a) for a in np.asarray(active)]
        row_seeds = None
        if seeds is not None:
            row_seeds = []
            for s in range(S):
                chosen = seeds[s] if active[s] else None
                if chosen is not None and len(chosen) != N:
                    raise BadInputError(
                        f"TorchSeedEnvs.reset(): seeds[{s}] must hold {N} seeds, one per "
                        f"environment; got {len(chosen)}"
                    )
                row_seeds += [None] * N if chosen is None else [int(x) for x in chosen]
        raw, _ = self.env.reset_groups(active, row_seeds)
        mask = self._seed_mask(active)  # [S]
        rows = mask.unsqueeze(1)  # [S, 1]
        self._episode_returns = torch.where(rows, 0.0, self._episode_returns)
        self._episode_lengths = torch.where(rows, 0, self._episode_lengths)
        self._discounted = torch.where(rows, 0.0, self._discounted)
        observed = self._observe(self._per_seed(raw), mask)
        keep = mask.view(S, *[1] * (observed.dim() - 1))
        self._observations = torch.where(keep, observed, self._observations)

    def step(self, actions, active) -> SeedStep:
        """Step the active seeds' environments with ``actions [S, N, ...]`` (a tensor, or an
        array); every field of the result is a tensor on the device. A seed that is not active
        (``active [S]`` bool, NumPy or tensor; a device tensor costs one host sync) is not
        stepped: its environments, generator, statistics and counters stay as they are, and it
        gets reward 0, no flags and ``valid`` False."""
        S, N = self.num_seeds, self.num_envs
        active = [bool(a) for a in np.asarray(torch.as_tensor(active).cpu()).reshape(-1)]
        if len(active) != S:
            raise BadInputError(
                f"TorchSeedEnvs.step(): 'active' must hold {S} flags; got {len(active)}"
            )
        actions = torch.as_tensor(actions, device=self.device)
        if tuple(actions.shape[:2]) != (S, N):
            raise BadInputError(
                f"TorchSeedEnvs.step(): 'actions' must have shape ({S}, {N}, ...); "
                f"got {tuple(actions.shape)}"
            )
        seeds = self._seed_mask(active)  # [S]
        pending = self._per_seed(self.env.reset_pending)  # [S, N]: this step is a reset
        raw, rewards, terminated, truncated, _ = self.env.step(actions.flatten(0, 1), active)
        terminated, truncated = self._per_seed(terminated), self._per_seed(truncated)
        rewards = self._per_seed(rewards).double()  # raw; 0 on reset steps and inactive seeds
        valid = ~pending & seeds.unsqueeze(1)
        done = terminated | truncated
        returns = self._episode_returns + rewards
        lengths = self._episode_lengths + valid
        self._ended.append((done, returns, lengths))
        # VectorEnv also zeroes them on reset steps; they are zero there already (zeroed at the
        # done before, and a reset step pays 0 and counts no step)
        self._episode_returns = torch.where(done, 0.0, returns)
        self._episode_lengths = torch.where(done, 0, lengths)
        if self.normalize_reward:
            discounted = torch.where(
                seeds.unsqueeze(1), self._discounted * self.gamma + rewards, self._discounted
            )
            self.return_stats.update(discounted, valid)
            self._discounted = torch.where(done, 0.0, discounted)
            scale = torch.sqrt(self.return_stats.var.unsqueeze(1) + VARIANCE_EPSILON)
            rewards = (rewards / scale).clamp(-NORMALIZED_CLIP, NORMALIZED_CLIP)
        # an inactive seed's raw observations and statistics did not move: the same result
        self._observations = self._observe(self._per_seed(raw), seeds)
        if len(self._ended) >= _ENDED_BUFFER_STEPS:
            self.flush_finished()
        return SeedStep(self._observations, rewards.float(), terminated, truncated, valid)

    def flush_finished(self) -> None:
        """Move the episodes that ended since the last call to each seed's ``finished`` deque,
        in the order VectorEnv appends them (by step, then copy): one transfer for all seeds."""
        if not self._ended:
            return
        done = torch.stack([d for d, _, _ in self._ended])  # [T, S, N]
        returns = torch.stack([r for _, r, _ in self._ended])[done]  # [E], row-major order
        lengths = torch.stack([n for _, _, n in self._ended])[done]
        where = done.nonzero()  # [E, 3]: (t, s, i) in the same row-major order
        self._ended = []
        for (_, s, _), episode_return, length in zip(
            where.cpu().tolist(), returns.cpu().tolist(), lengths.cpu().tolist(), strict=True
        ):
            self._finished[s].append((episode_return, length))

    def set_seed_row(self, name: str, seed_index: int, value) -> None:
        """Replace seed ``seed_index``'s row of the ``[S, ...]`` tensor ``name`` (out of place:
        a tensor handed out before, such as a step's observations, keeps its values)."""
        tensor = getattr(self, name).clone()
        tensor[seed_index] = torch.as_tensor(value, device=self.device)
        setattr(self, name, tensor)

    def close(self) -> None:
        self._ended = []


class TorchSeedEnv:
    """Seed s of a :class:`TorchSeedEnvs` as its :class:`~rlgrad.support.runs.Run` reads a
    :class:`~rlgrad.support.envs.VectorEnv`: recent episodes, normalization statistics and the
    checkpoint state of that seed alone."""

    def __init__(self, envs: TorchSeedEnvs, seed_index: int):
        self.envs, self.seed_index = envs, seed_index
        self.num_envs, self.spaces = envs.num_envs, envs.spaces
        self.normalize_obs, self.normalize_reward = envs.normalize_obs, envs.normalize_reward
        self.obs_stats = SeedStatistics(envs.obs_stats, seed_index)
        self.return_stats = SeedStatistics(envs.return_stats, seed_index)

    @property
    def finished(self) -> deque:
        """(raw return, length) of this seed's most recent episodes (at most 100); reading it
        brings the episodes that ended on the device since the last read to the host."""
        self.envs.flush_finished()
        return self.envs._finished[self.seed_index]

    # VectorEnv's own: they read and write obs_stats and return_stats, which this view has too
    stats_state = VectorEnv.stats_state
    load_stats_state = VectorEnv.load_stats_state

    def captured_by_checkpoint(self) -> bool:
        return True  # the environments are tensors and a generator: a checkpoint holds them

    def state(self) -> dict:
        """Everything this seed needs to continue exactly: its environment rows and generator,
        its statistics, counters and recent episodes (tensors on the CPU)."""
        envs, s = self.envs, self.seed_index
        envs.flush_finished()
        group = {name: value.cpu() for name, value in envs.env.group_state(s).items()}
        return {
            "env": group,
            "stats": self.stats_state(),
            **{name: getattr(envs, name)[s].cpu().clone() for name in envs._SEED_ROWS},
            "finished": list(envs._finished[s]),
        }

    def load_state(self, state: dict, seed: int) -> bool:
        """Continue from :meth:`state`, exactly (``seed`` is not needed: the generator's state
        is in the checkpoint); the other seeds are untouched. Returns True."""
        envs, s = self.envs, self.seed_index
        envs.flush_finished()  # the episodes that ended before the load stay with their seeds
        envs.env.load_group_state(s, state["env"])
        self.load_stats_state(state["stats"])
        for name in envs._SEED_ROWS:
            envs.set_seed_row(name, s, state[name])
        envs._finished[s] = deque(state["finished"], maxlen=100)
        return True

    def close(self) -> None:
        """Nothing to release for one seed: the seeds share one environment on the device,
        which :meth:`TorchSeedEnvs.close` closes."""
