"""Actor-critic networks for Box observations and Discrete or Box actions.

A continuous policy is a diagonal Gaussian with a state-independent, learned log σ. Its samples
are *clipped* to the action bounds before they reach the environment, while the log-probability
is that of the unclipped sample: the log-probability stays exact and cheap, and the mean is not
pulled inward as a tanh squash would pull it (a squash needs a Jacobian correction and makes the
bounds themselves unreachable). This is also what SB3 and CleanRL do for PPO.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
from torch import Tensor, nn

from rlgrad.distributions import (
    categorical_entropy,
    categorical_kl,
    categorical_log_prob,
    gaussian_entropy,
    gaussian_kl,
    gaussian_log_prob,
)
from rlgrad.errors import BadInputError
from rlgrad.support.envs import Spaces

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU}


class SeedLinear(nn.Module):
    """S independent linear layers applied as one: x ``[S, B, in]`` → ``[S, B, out]``,
    y_s = x_s W_sᵀ + b_s in one batched matmul. Weight ``[S, out, in]`` and bias ``[S, out]``:
    slice s is an ``nn.Linear``'s weight and bias, so seed s's slice of a state_dict loads into
    the single-seed network. Built as zeros: :func:`rlgrad.support.seeded.build_seeded` fills
    each seed with the initialization its own single-seed run draws."""

    def __init__(self, seeds: int, fan_in: int, fan_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(seeds, fan_out, fan_in))
        self.bias = nn.Parameter(torch.zeros(seeds, fan_out))

    def forward(self, x: Tensor) -> Tensor:
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight.transpose(1, 2))


def mlp(
    sizes: list[int], activation: str, output_gain: float, seeds: int | None = None
) -> nn.Sequential:
    """Linear layers with ``activation`` between them; orthogonal weights, zero biases.

    Hidden layers get gain √2 and the last layer ``output_gain`` (0.01 for a policy, so that the
    first policy is near uniform; 1 for a value head), as in the PPO implementation details
    (Huang et al. 2022). With ``seeds`` = S, :class:`SeedLinear` layers: S networks, inputs
    ``[S, B, in]``.
    """
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        last = i == len(sizes) - 2
        if seeds is None:
            linear = nn.Linear(fan_in, fan_out)
            nn.init.orthogonal_(linear.weight, output_gain if last else math.sqrt(2))
            nn.init.zeros_(linear.bias)
        else:
            linear = SeedLinear(seeds, fan_in, fan_out)
        layers.append(linear)
        if not last:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class ActorCritic(nn.Module):
    """A policy π_θ(a|s) and a value function V_φ(s) as two separate MLPs.

    Shapes: observations ``[B, *obs]``; discrete actions ``[B]`` (int64), continuous ``[B, D]``.
    With ``seeds`` = S it is S agents, every parameter with a leading seed axis, and every
    input and output gains that axis first: observations ``[S, B, *obs]``, values ``[S, B]``.
    """

    def __init__(
        self,
        spaces: Spaces,
        hidden_sizes: tuple[int, ...] = (64, 64),
        activation: str = "tanh",
        log_std_init: float = 0.0,
        critic: bool = True,
        seeds: int | None = None,
    ):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise BadInputError(
                f"'activation' must be one of {sorted(ACTIVATIONS)}; got {activation!r}"
            )
        self.spaces = spaces
        inputs = spaces.observation_size
        outputs = spaces.num_actions if spaces.discrete else int(np.prod(spaces.action_shape))
        self.actor = mlp([inputs, *hidden_sizes, outputs], activation, 0.01, seeds)
        self.critic = mlp([inputs, *hidden_sizes, 1], activation, 1.0, seeds) if critic else None
        if not spaces.discrete:
            shape = (outputs,) if seeds is None else (seeds, outputs)
            self.log_std = nn.Parameter(torch.full(shape, float(log_std_init)))
            self.register_buffer("action_low", torch.as_tensor(spaces.action_low))
            self.register_buffer("action_high", torch.as_tensor(spaces.action_high))

    def value(self, observations: Tensor) -> Tensor:
        """V(s), ``[B]``."""
        return self.critic(self._features(observations)).squeeze(-1)

    def policy_head(self, observations: Tensor) -> Tensor:
        return self.actor(self._features(observations))  # logits [B, A] or means [B, D]

    def _features(self, observations: Tensor) -> Tensor:
        """Observations with their own axes flattened: ``[*lead, observation_size]``."""
        return observations.flatten(observations.dim() - len(self.spaces.observation_shape))

    def _log_std(self) -> Tensor:
        """log σ shaped to broadcast against means ``[*lead, B, D]``: ``[D]``, or ``[S, 1, D]``
        for seeds."""
        return self.log_std if self.log_std.dim() == 1 else self.log_std.unsqueeze(-2)

    def sample(self, observations: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Actions a ~ π(·|s) and their log π(a|s), each ``[B]`` (actions ``[B, D]``)."""
        head = self.policy_head(observations)
        return self.act(head, self.draw(head, generator))

    def draw(self, head: Tensor, generator: torch.Generator) -> Tensor:
        """The random part of :meth:`sample`, from the policy head alone (no parameter): the
        action index of a categorical policy, the standard normal noise of a Gaussian one. A
        seed-stacked agent draws this per seed, with each seed's own generator."""
        if self.spaces.discrete:
            probabilities = torch.softmax(head, dim=-1)
            return torch.multinomial(probabilities, 1, generator=generator).squeeze(-1)
        return torch.randn(head.shape, generator=generator, dtype=head.dtype)

    def act(self, head: Tensor, draw: Tensor) -> tuple[Tensor, Tensor]:
        """The actions a :meth:`draw` makes and their log π(a|s)."""
        if self.spaces.discrete:
            return draw, categorical_log_prob(head, draw)
        actions = head + draw * self._log_std().exp()
        return actions, gaussian_log_prob(actions, head, self._log_std())

    def log_prob_and_entropy(self, observations: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        """log π(a|s) and H(π(·|s)), each ``[B]``, differentiable."""
        head = self.policy_head(observations)
        if self.spaces.discrete:
            return categorical_log_prob(head, actions), categorical_entropy(head)
        entropy = gaussian_entropy(self._log_std()).expand(head.shape[:-1])
        return gaussian_log_prob(actions, head, self._log_std()), entropy

    def distribution(self, observations: Tensor) -> tuple[Tensor, Tensor | None]:
        """The policy at ``observations`` as its parameters: logits ``[B, A]`` and None, or
        means ``[B, D]`` and log σ ``[D]`` (for seeds, each seed's log σ repeated to the means'
        ``[S, B, D]``); differentiable (detach them to keep an old policy)."""
        head = self.policy_head(observations)
        if self.spaces.discrete:
            return head, None
        log_std = self._log_std()
        return head, log_std if log_std.dim() == 1 else log_std.expand(head.shape)

    def kl_from(self, old: tuple[Tensor, Tensor | None], observations: Tensor) -> Tensor:
        """KL(π_old ‖ π_θ) per state, ``[B]``, with π_old as :meth:`distribution` gave it."""
        head, log_std = self.distribution(observations)
        if self.spaces.discrete:
            return categorical_kl(old[0], head)
        return gaussian_kl(old[0], old[1], head, log_std)

    def mode(self, observations: Tensor) -> Tensor:
        """The most likely action: argmax of the logits, or the Gaussian mean."""
        head = self.policy_head(observations)
        return head.argmax(dim=-1) if self.spaces.discrete else head

    def clip_actions(self, actions: Tensor) -> Tensor:
        """Actions as the environment takes them: continuous ones clipped to the bounds."""
        if self.spaces.discrete:
            return actions
        return torch.clamp(actions, self.action_low, self.action_high)

    def env_actions(self, actions: Tensor) -> np.ndarray:
        """:meth:`clip_actions` as a NumPy array, for a Gymnasium environment."""
        return self.clip_actions(actions).cpu().numpy()


class QNetwork(nn.Module):
    """Action values Q_θ(s, ·) for a discrete action space, ``[B, A]``, from an MLP.

    With ``dueling`` (Wang et al. 2016) a shared torso feeds a state value V(s) and advantages
    A(s, a), combined as Q(s, a) = V(s) + A(s, a) − mean_a' A(s, a'); subtracting the mean makes V
    and A identifiable without changing the greedy action.

    It acts like the policy of :class:`ActorCritic` (``mode``, ``sample``, ``env_actions``), so
    evaluation and :func:`rlgrad.app.load_agent` treat both alike; ``sample`` is ε-greedy with the
    ε stored in the ``epsilon`` buffer (the end of the exploration schedule). With ``seeds`` = S
    it is S Q-networks (:class:`SeedLinear` layers, every parameter ``[S, ...]``, one shared
    ``epsilon``): observations ``[S, B, *obs]``, action values ``[S, B, A]``.
    """

    def __init__(
        self,
        spaces: Spaces,
        hidden_sizes: tuple[int, ...] = (64, 64),
        activation: str = "relu",
        dueling: bool = False,
        epsilon: float = 0.05,
        seeds: int | None = None,
    ):
        super().__init__()
        if not spaces.discrete:
            raise BadInputError(
                f"DQN needs a Discrete action space; this environment's actions are continuous "
                f"(shape {spaces.action_shape}): use sac, td3, crossq, ppo or a2c for it"
            )
        if activation not in ACTIVATIONS:
            raise BadInputError(
                f"'activation' must be one of {sorted(ACTIVATIONS)}; got {activation!r}"
            )
        self.spaces, self.dueling = spaces, dueling
        inputs, actions = spaces.observation_size, spaces.num_actions
        if dueling:
            width = hidden_sizes[-1]
            self.torso = nn.Sequential(
                mlp([inputs, *hidden_sizes], activation, math.sqrt(2), seeds),
                ACTIVATIONS[activation](),
            )
            self.value_head = mlp([width, 1], activation, 1.0, seeds)
            self.advantage_head = mlp([width, actions], activation, 1.0, seeds)
        else:
            self.q = mlp([inputs, *hidden_sizes, actions], activation, 1.0, seeds)
        self.register_buffer("epsilon", torch.tensor(float(epsilon)))

    def forward(self, observations: Tensor) -> Tensor:
        """Q(s, ·), ``[*lead, A]`` for observations ``[*lead, *obs]``."""
        flat = observations.flatten(observations.dim() - len(self.spaces.observation_shape))
        if not self.dueling:
            return self.q(flat)
        features = self.torso(flat)
        advantages = self.advantage_head(features)
        return self.value_head(features) + advantages - advantages.mean(dim=-1, keepdim=True)

    def mode(self, observations: Tensor) -> Tensor:
        """The greedy action argmax_a Q(s, a), ``[*lead]``."""
        return self(observations).argmax(dim=-1)

    def sample(self, observations: Tensor, generator: torch.Generator) -> tuple[Tensor, None]:
        """ε-greedy actions with the stored ε (no log-probability: DQN has none)."""
        return epsilon_greedy(self(observations), float(self.epsilon), generator), None

    def env_actions(self, actions: Tensor) -> np.ndarray:
        return actions.cpu().numpy()


def exploration_draws(
    batch: int, num_actions: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """ε-greedy's random numbers for ``batch`` states, from ``generator`` (on its device): uniforms
    u ∈ [0, 1) ``[batch]``, then uniformly random actions ``[batch]`` (int64).

    Both are drawn for every row, whatever ε is, so the generator advances by the same amount
    each step (a resumed run stays in step with an uninterrupted one)."""
    on = generator.device
    uniforms = torch.rand(batch, generator=generator, device=on)
    return uniforms, torch.randint(num_actions, (batch,), generator=generator, device=on)


def epsilon_greedy(q_values: Tensor, epsilon: float, generator: torch.Generator) -> Tensor:
    """argmax_a Q(s, a) with probability 1 − ε, else a uniformly random action; ``[B]``."""
    return seed_epsilon_greedy(q_values.unsqueeze(0), epsilon, [generator])[0]


def seed_epsilon_greedy(q_values: Tensor, epsilon: float, generators, active=None) -> Tensor:
    """:func:`epsilon_greedy` for S seeds: ``q_values [S, B, A]`` → actions ``[S, B]``, where
    seed s explores with draws from ``generators[s]`` alone,

        a_s = random action if u_s < ε else argmax_a Q_s(s, a)    (u_s, random: generators[s]).

    A seed that is not ``active`` ([S] bool, None for all) draws nothing, keeping its generator
    as it was, and takes its greedy action."""
    seeds, batch, num_actions = q_values.shape
    on = generators[0].device  # an inactive seed's uniforms are 1 ≥ ε: greedy
    draws = [
        exploration_draws(batch, num_actions, generators[s])
        if active is None or active[s]
        else (torch.ones(batch, device=on), torch.zeros(batch, dtype=torch.int64, device=on))
        for s in range(seeds)
    ]
    uniforms = torch.stack([u for u, _ in draws]).to(q_values.device)  # [S, B]
    random_actions = torch.stack([a for _, a in draws]).to(q_values.device)
    return torch.where(uniforms < epsilon, random_actions, q_values.argmax(dim=-1))
