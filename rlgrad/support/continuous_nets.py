"""Networks of the off-policy continuous-control trainers (SAC, TD3, CrossQ): actors that stay
inside the action box, and K critics evaluated as one batched ensemble. CrossQ's networks are the
same with batch renormalisation before every linear layer (``batch_renorm=``).

Actions are in the environment's units everywhere (the replay buffer stores what the
environment received); the critics rescale them to [−1, 1] on the way in, so one network size
fits a torque of ±2 and a joint command of ±1 alike.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
from torch import Tensor, nn

from rlgrad.distributions import squashed_gaussian_log_prob
from rlgrad.errors import BadInputError
from rlgrad.support.batch_renorm import BatchRenorm
from rlgrad.support.envs import Spaces
from rlgrad.support.nets import ACTIVATIONS, mlp
from rlgrad.support.seeded import SeedGenerators

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # σ in [2e-9, 7.4]: SB3's and the SAC authors' bounds


def check_continuous(spaces: Spaces, algorithm: str) -> None:
    """Refuse an environment the continuous-control trainers cannot act in, in one line."""
    if spaces.discrete:
        raise BadInputError(
            f"{algorithm} needs a Box (continuous) action space; this environment has "
            f"{spaces.num_actions} discrete actions: use dqn, ppo, a2c, reinforce or grpo for it"
        )
    if not (np.isfinite(spaces.action_low).all() and np.isfinite(spaces.action_high).all()):
        raise BadInputError(
            f"{algorithm} squashes actions into the action box, which must be bounded; got "
            f"low={spaces.action_low.tolist()}, high={spaces.action_high.tolist()}"
        )


def renormalized(network: nn.Sequential, options: dict | None) -> nn.Sequential:
    """``network`` with a :class:`BatchRenorm` (keyword arguments ``options``) before each of its
    linear layers, CrossQ's placement (sb3-contrib's too): the input and every hidden layer are
    renormalised, the output is not. ``None`` returns ``network`` as it is."""
    if options is None:
        return network
    layers: list[nn.Module] = []
    for layer in network:
        if isinstance(layer, nn.Linear):
            layers.append(BatchRenorm(layer.in_features, **options))
        layers.append(layer)
    return nn.Sequential(*layers)


def flat_observations(observations: Tensor, observation_shape: tuple[int, ...]) -> Tensor:
    """``[*lead, *obs]`` → ``[*lead, obs_size]``: the batch axes (``[B]``, or ``[S, B]`` for
    many seeds) kept, one observation a row."""
    lead = observations.shape[: observations.dim() - len(observation_shape)]
    return observations.reshape(*lead, -1)


def standard_normal(like: Tensor, generator, where=None) -> Tensor:
    """z ~ N(0, 1) shaped like ``like``, drawn from ``generator``; from
    :class:`~rlgrad.support.seeded.SeedGenerators`, seed s's slice ``like[s]`` from generator s
    (zeros for a seed where ``where`` [S] is False, whose stream then stays as it was)."""
    if isinstance(generator, SeedGenerators):
        return generator.draw("normal", tuple(like.shape[1:]), where, like.dtype)
    return torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)


class _ActionBox(nn.Module):
    """The affine map between [−1, 1] and the action box: a = scale·x + shift."""

    def __init__(self, spaces: Spaces):
        super().__init__()
        low, high = torch.as_tensor(spaces.action_low), torch.as_tensor(spaces.action_high)
        self.register_buffer("action_scale", (high - low) / 2)
        self.register_buffer("action_shift", (high + low) / 2)
        self.register_buffer("action_low", low)
        self.register_buffer("action_high", high)

    def env_actions(self, actions: Tensor) -> np.ndarray:
        """Actions as the environment takes them (already inside the box; the clamp only guards
        against rounding at the edges)."""
        return torch.clamp(actions, self.action_low, self.action_high).cpu().numpy()


class SquashedGaussianActor(_ActionBox):
    """SAC's policy: u ~ N(μ(s), σ(s)²), a = scale·tanh(u) + shift, with log π from
    :func:`rlgrad.squashed_gaussian_log_prob`. ``sample`` is reparameterized (u = μ + σε), so
    gradients reach the actor through the action; its randomness comes from the generator.
    ``batch_renorm``: :class:`BatchRenorm` options for CrossQ's actor (none: plain MLP).

    With ``seeds`` = S it is S actors (:class:`~rlgrad.support.nets.SeedLinear` layers):
    observations ``[S, B, *obs]``, actions ``[S, B, D]``, log π ``[S, B]``, and ``sample``
    takes :class:`~rlgrad.support.seeded.SeedGenerators`."""

    def __init__(
        self,
        spaces: Spaces,
        hidden_sizes: tuple[int, ...],
        activation: str,
        batch_renorm: dict | None = None,
        seeds: int | None = None,
    ):
        super().__init__(spaces)
        if seeds is not None and batch_renorm is not None:
            raise BadInputError(
                "SquashedGaussianActor(): batch_renorm (CrossQ) trains one seed at a time; got "
                f"seeds={seeds}"
            )
        dims = int(np.prod(spaces.action_shape))
        self.observation_shape = tuple(spaces.observation_shape)
        # one head for μ and log σ; a small last layer starts near μ = 0, σ = 1
        self.net = renormalized(
            mlp([spaces.observation_size, *hidden_sizes, 2 * dims], activation, 0.01, seeds),
            batch_renorm,
        )

    def _gaussian(self, observations: Tensor) -> tuple[Tensor, Tensor]:
        flat = flat_observations(observations, self.observation_shape)
        means, log_stds = self.net(flat).chunk(2, dim=-1)  # [*S, B, D] each
        return means, log_stds.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def sample(self, observations: Tensor, generator, where=None) -> tuple[Tensor, Tensor]:
        """Actions ``[B, D]`` in the box and their log π ``[B]``; ``where``: as
        :func:`standard_normal`."""
        means, log_stds = self._gaussian(observations)
        noise = standard_normal(means, generator, where)
        pre_tanh = means + log_stds.exp() * noise
        log_probs = squashed_gaussian_log_prob(pre_tanh, means, log_stds, self.action_scale)
        return self.action_scale * torch.tanh(pre_tanh) + self.action_shift, log_probs

    def mode(self, observations: Tensor) -> Tensor:
        """The squashed mean, scale·tanh(μ(s)) + shift (the action of a deterministic eval)."""
        means, _ = self._gaussian(observations)
        return self.action_scale * torch.tanh(means) + self.action_shift


class DeterministicActor(_ActionBox):
    """TD3's policy a = scale·tanh(μ(s)) + shift; ``sample`` adds Gaussian exploration noise of
    std ``exploration_noise``·scale and clips to the box (the stored σ is the run's own).

    With ``seeds`` = S it is S actors (:class:`~rlgrad.support.nets.SeedLinear` layers):
    observations ``[S, B, *obs]``, actions ``[S, B, D]``, and ``sample`` takes
    :class:`~rlgrad.support.seeded.SeedGenerators`."""

    def __init__(
        self,
        spaces: Spaces,
        hidden_sizes: tuple[int, ...],
        activation: str,
        exploration_noise: float,
        seeds: int | None = None,
    ):
        super().__init__(spaces)
        dims = int(np.prod(spaces.action_shape))
        self.observation_shape = tuple(spaces.observation_shape)
        self.net = mlp([spaces.observation_size, *hidden_sizes, dims], activation, 1.0, seeds)
        self.register_buffer("exploration_noise", torch.tensor(float(exploration_noise)))

    def mode(self, observations: Tensor) -> Tensor:
        flat = flat_observations(observations, self.observation_shape)
        return self.action_scale * torch.tanh(self.net(flat)) + self.action_shift

    def sample(self, observations: Tensor, generator, where=None) -> tuple[Tensor, None]:
        """μ(s) + N(0, (σ·scale)²), clipped to the box (no log-probability: TD3 has none);
        ``where``: as :func:`standard_normal`."""
        actions = self.mode(observations)
        noise = standard_normal(actions, generator, where)
        noisy = actions + noise * self.exploration_noise * self.action_scale
        return torch.clamp(noisy, self.action_low, self.action_high), None


class CriticEnsemble(nn.Module):
    """K Q-networks Q_k(s, a), each an MLP on [s, a], evaluated together: ``[B, K]``.

    The K networks' layers are stacked, weights ``[K, in, out]``, so a forward pass is one
    batched matmul per layer for all K critics instead of K separate ones (on small MLPs each op
    costs more in overhead than in arithmetic). Initialization is PyTorch's ``nn.Linear``
    default, drawn independently for every member. ``frozen=True`` evaluates with detached
    parameters: gradients then reach the actions (the actor's loss) but not the critics.

    ``batch_renorm``: :class:`BatchRenorm` options for CrossQ's critics, a layer before each
    linear layer with its own statistics per critic (``ensemble=K``); none: plain MLPs.

    With ``seeds`` = S it is S ensembles, weights ``[S, K, in, out]`` (built as zeros:
    :func:`~rlgrad.support.seeded.build_seeded` gives each seed its own run's initialization),
    all S·K networks in one batched matmul per layer: inputs ``[S, B, ...]``, output
    ``[S, B, K]``.
    """

    def __init__(
        self,
        spaces: Spaces,
        hidden_sizes: tuple[int, ...],
        activation: str,
        num_critics: int,
        batch_renorm: dict | None = None,
        seeds: int | None = None,
    ):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise BadInputError(
                f"'activation' must be one of {sorted(ACTIVATIONS)}; got {activation!r}"
            )
        if seeds is not None and batch_renorm is not None:
            raise BadInputError(
                "CriticEnsemble(): batch_renorm (CrossQ) trains one seed at a time; got "
                f"seeds={seeds}"
            )
        self.num_critics = num_critics
        self.observation_shape = tuple(spaces.observation_shape)
        self.activation = ACTIVATIONS[activation]()
        dims = int(np.prod(spaces.action_shape))
        sizes = [spaces.observation_size + dims, *hidden_sizes, 1]
        lead = () if seeds is None else (seeds,)
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in itertools.pairwise(sizes):
            bound = 1.0 / math.sqrt(fan_in)
            self.weights.append(nn.Parameter(torch.zeros(*lead, num_critics, fan_in, fan_out)))
            self.biases.append(nn.Parameter(torch.zeros(*lead, num_critics, 1, fan_out)))
            if seeds is None:
                nn.init.uniform_(self.weights[-1], -bound, bound)
                nn.init.uniform_(self.biases[-1], -bound, bound)
        self.norms = None
        if batch_renorm is not None:
            self.norms = nn.ModuleList(
                BatchRenorm(fan_in, ensemble=num_critics, **batch_renorm) for fan_in in sizes[:-1]
            )
        low, high = torch.as_tensor(spaces.action_low), torch.as_tensor(spaces.action_high)
        self.register_buffer("action_scale", (high - low) / 2)
        self.register_buffer("action_shift", (high + low) / 2)

    def forward(self, observations: Tensor, actions: Tensor, frozen: bool = False) -> Tensor:
        """Q_k(s, a) for every critic k, ``[B, K]`` (``[S, B, K]`` for S seeds); actions in
        the environment's units."""
        unit_actions = (actions - self.action_shift) / self.action_scale
        flat = flat_observations(observations, self.observation_shape)
        x = torch.cat([flat, unit_actions], dim=-1)  # [*S, B, in]
        lead, batch = x.shape[:-2], x.shape[-2]
        K = self.num_critics
        # [*S, K, B, in] (a view for one seed) as [S·K, B, in]: every network one matmul batch
        x = x.unsqueeze(-3).expand(*lead, K, *x.shape[-2:]).reshape(-1, *x.shape[-2:])
        last = len(self.weights) - 1
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            if self.norms is not None:
                x = self.norms[i](x, frozen=frozen)
            if frozen:
                weight, bias = weight.detach(), bias.detach()
            weight, bias = (
                weight.reshape(-1, *weight.shape[-2:]),
                bias.reshape(-1, 1, bias.shape[-1]),
            )
            x = torch.baddbmm(bias, x, weight)  # [S·K, B, out]
            if i < last:
                x = self.activation(x)
        return x.view(*lead, K, batch).transpose(-1, -2)  # [*S, B, K]


class ActorCritics(nn.Module):
    """What a SAC, TD3 or CrossQ run trains and saves as its agent: the actor, the K critics
    and, with automatic temperature, log α (with ``seeds``, S of each, stacked). It acts like
    its actor (``mode``, ``sample``, ``env_actions``), so evaluation and
    :func:`rlgrad.app.load_agent` treat it like any policy."""

    def __init__(
        self,
        spaces: Spaces,
        actor: nn.Module,
        critics: CriticEnsemble,
        log_alpha: float | None = None,
        seeds: int | None = None,
    ):
        super().__init__()
        self.spaces, self.actor, self.critics = spaces, actor, critics
        if log_alpha is not None:  # one log α per seed with ``seeds``: ``[S]``
            shape = () if seeds is None else (seeds,)
            self.log_alpha = nn.Parameter(torch.full(shape, float(log_alpha)))

    def mode(self, observations: Tensor) -> Tensor:
        return self.actor.mode(observations)

    def sample(self, observations: Tensor, generator, where=None):
        return self.actor.sample(observations, generator, where)

    def env_actions(self, actions: Tensor) -> np.ndarray:
        return self.actor.env_actions(actions)
