"""Many seeds in one process: S independent agents of one architecture as one batched module.

Seed s of a run over seeds ``[s₀, s₁, ...]`` is the agent a single-seed run with that seed would
build: :func:`build_seeded` seeds torch with each seed in turn and builds the ordinary agent, and
:class:`SeedStack` stacks their parameters and buffers on a leading seed axis. The trainer then
calls the agent's own methods on inputs with that axis, ``[S, B, ...]``, through
``torch.func.vmap`` over ``functional_call``: every seed computes with its own parameters, one
batched matmul per layer instead of S small ones, and the code that defines the agent is the one
the single-seed trainers always had. Gradients land in the stacked parameters, seed s's in slice
s only, so one optimizer over them is S optimizers (:mod:`rlgrad.support.seed_adam`).

Random draws stay per seed: :class:`SeedGenerators` holds one ``torch.Generator`` per seed,
seeded as a single-seed run seeds its own, so seed s draws the same numbers whichever seeds
train beside it.

    >>> from rlgrad.support.envs import Spaces
    >>> from rlgrad.support.nets import ActorCritic
    >>> spaces = Spaces((4,), True, 2, (), None, None)
    >>> agents = build_seeded(lambda: ActorCritic(spaces), [7, 8, 9])
    >>> agents.call("value", torch.zeros(3, 5, 4)).shape  # 3 seeds, 5 observations each
    torch.Size([3, 5])
"""

from __future__ import annotations

import copy
import re

import torch
from torch import Tensor, nn

from rlgrad.errors import BadInputError


def parse_seeds(text: str) -> list[int]:
    """Seeds from the command line: ``"0-63"``, ``"1,5,9"``, ``"0-3,10"`` or ``"7"``.

    >>> parse_seeds("0-3,10")
    [0, 1, 2, 3, 10]
    """
    seeds: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        matched = re.fullmatch(r"(-?\d+)(?:\s*-\s*(-?\d+))?", part)
        if matched is None:
            raise BadInputError(
                f"--seeds: expected seeds such as 0-63, 1,5,9 or 0-3,10; got {text!r}"
            )
        first = int(matched.group(1))
        last = int(matched.group(2)) if matched.group(2) is not None else first
        if last < first:
            raise BadInputError(f"--seeds: the range {part!r} runs backwards")
        seeds.extend(range(first, last + 1))
    if len(set(seeds)) != len(seeds):
        raise BadInputError(f"--seeds: each seed once; got {text!r}")
    return seeds


class MethodCall(nn.Module):
    """An agent's method as a forward, so that ``torch.func.functional_call`` can run it with
    other parameter values: ``MethodCall(agent)("kl_from", old, states)`` is
    ``agent.kl_from(old, states)``."""

    def __init__(self, agent: nn.Module):
        super().__init__()
        self.agent = agent

    def forward(self, method: str, *inputs):
        return getattr(self.agent, method)(*inputs)


class SeedStack(nn.Module):
    """S agents of one architecture; every parameter and buffer stacked on a leading seed axis.

    ``parameters()`` are the stacked tensors (``[S, *shape]``), so that an optimizer and
    ``.to(device)`` see exactly them. :meth:`call` runs a method of the agent for every seed at
    once; :meth:`seed_state_dict` and :meth:`load_seed_state_dict` move one seed's slice in and
    out in the ordinary agent's ``state_dict`` format, which is what each seed's run directory
    holds.
    """

    def __init__(self, agents: list[nn.Module]):
        super().__init__()
        if not agents:
            raise BadInputError("SeedStack(): 'agents' must hold at least one agent; got none")
        self.num_seeds = len(agents)
        # the architecture, outside the module tree: its own tensors are never used (every call
        # substitutes the stacked ones), and an optimizer must not see them
        self._template = [copy.deepcopy(agents[0])]
        self._names = [name for name, _ in agents[0].named_parameters()]
        self._buffer_names = [name for name, _ in agents[0].named_buffers()]
        self.stacked = nn.ParameterList(
            nn.Parameter(torch.stack([dict(a.named_parameters())[name].detach() for a in agents]))
            for name in self._names
        )
        for i, name in enumerate(self._buffer_names):
            tensors = [dict(a.named_buffers())[name] for a in agents]
            self.register_buffer(f"buffer_{i}", torch.stack(tensors))
        self._runner = [MethodCall(self._template[0])]  # a list: outside the module tree too

    @property
    def template(self) -> nn.Module:
        return self._template[0]

    def tensors(self) -> dict[str, Tensor]:
        """Every stacked parameter and buffer under the agent's own name."""
        named = dict(zip(self._names, self.stacked, strict=True))
        for i, name in enumerate(self._buffer_names):
            named[name] = getattr(self, f"buffer_{i}")
        return named

    def call(self, method: str, *inputs: Tensor, seeds: Tensor | None = None):
        """``agent.method(*inputs)`` for every seed (or for the seed indices ``seeds``): inputs
        and outputs carry the seed axis first.

        The method must be free of random draws (take those with :class:`SeedGenerators`)."""
        device = self.stacked[0].device
        inputs = tuple(x.to(device) for x in inputs)
        prefixed = {
            f"agent.{name}": tensor if seeds is None else tensor[seeds.to(device)]
            for name, tensor in self.tensors().items()
        }

        def one_seed(tensors, *seed_inputs):
            return torch.func.functional_call(self._runner[0], tensors, (method, *seed_inputs))

        return torch.func.vmap(one_seed)(prefixed, *inputs)

    def seed_state_dict(self, seed_index: int) -> dict[str, Tensor]:
        """Seed ``seed_index``'s agent as an ordinary ``state_dict`` (copies)."""
        return {
            name: tensor[seed_index].detach().clone() for name, tensor in self.tensors().items()
        }

    @torch.no_grad()
    def load_seed_state_dict(self, seed_index: int, state: dict[str, Tensor]) -> None:
        """Put an ordinary agent ``state_dict`` into seed ``seed_index``'s slice."""
        tensors = self.tensors()
        missing = sorted(set(tensors) - set(state))
        if missing:
            raise BadInputError(
                f"SeedStack.load_seed_state_dict(): the state lacks {', '.join(missing)}"
            )
        for name, tensor in tensors.items():
            tensor[seed_index].copy_(state[name])

    def seed_agent(self, seed_index: int) -> nn.Module:
        """Seed ``seed_index``'s agent as an ordinary module (a copy: it does not train on)."""
        agent = copy.deepcopy(self.template)
        agent.load_state_dict(self.seed_state_dict(seed_index))
        return agent.to(self.stacked[0].device)

    def non_finite_seeds(self) -> Tensor:
        """``[S]`` bool: the seeds with a NaN or infinite parameter (one reduction per tensor)."""
        bad = torch.zeros(self.num_seeds, dtype=torch.bool, device=self.stacked[0].device)
        for tensor in self.stacked:
            bad |= ~torch.isfinite(tensor.detach().flatten(1)).all(dim=1)
        return bad


def build_seeded(build, seeds: list[int]) -> SeedStack:
    """``build()`` once per seed, with torch's global generator seeded by that seed first (the
    initialization a single-seed run of that seed gets), stacked."""
    agents = []
    for seed in seeds:
        torch.manual_seed(seed)
        agents.append(build())
    return SeedStack(agents)


class SeedSlice:
    """Seed s of a :class:`SeedStack` (or of a seed-stacked optimizer) as a single-seed run's
    checkpoint sees a module: ``state_dict()`` and ``load_state_dict()`` of that seed alone."""

    def __init__(self, stacked, seed_index: int):
        self.stacked, self.seed_index = stacked, seed_index

    def state_dict(self) -> dict:
        if isinstance(self.stacked, SeedStack):
            return self.stacked.seed_state_dict(self.seed_index)
        return self.stacked.seed_state(self.seed_index)

    def load_state_dict(self, state: dict) -> None:
        if isinstance(self.stacked, SeedStack):
            self.stacked.load_seed_state_dict(self.seed_index, state)
        else:
            self.stacked.load_seed_state(self.seed_index, state)


class SeedGenerators:
    """One ``torch.Generator`` per seed, each seeded with its seed (as a single-seed run's).

    Seed s's draws come from generator s alone, so they do not depend on the other seeds."""

    def __init__(self, seeds: list[int], device: torch.device | str = "cpu"):
        self.generators = [torch.Generator(device).manual_seed(seed) for seed in seeds]

    def __getitem__(self, seed_index: int) -> torch.Generator:
        return self.generators[seed_index]

    def __len__(self) -> int:
        return len(self.generators)

    def permutations(self, counts: list[int]) -> tuple[Tensor, Tensor]:
        """A random order of ``range(counts[s])`` for each seed, padded with 0 to the largest
        count: ``orders [S, max]`` (int64) and ``filled [S, max]`` (bool, False on padding), on
        the generators' device."""
        width = max(counts)
        on = self.generators[0].device
        orders = torch.zeros(len(counts), width, dtype=torch.int64, device=on)
        for s, (generator, count) in enumerate(zip(self.generators, counts, strict=True)):
            orders[s, :count] = torch.randperm(count, generator=generator, device=on)
        filled = torch.arange(width, device=on) < torch.as_tensor(counts, device=on).unsqueeze(1)
        return orders, filled


def per_seed(formula, *tensors: Tensor | None, mask: Tensor | None = None, **options):
    """``formula`` once per seed: mapped (``torch.func.vmap``) over the leading seed axis of
    each tensor argument and of ``mask``, with ``options`` (numbers, flags) passed as they are.
    A reduction in the formula (a loss's mean) thus reduces within each seed: the result is
    ``[S]``. A None argument stays None.

        >>> from rlgrad.value import value_loss
        >>> values, returns = torch.tensor([[1.0, 2.0], [0.0, 0.0]]), torch.ones(2, 2)
        >>> per_seed(value_loss, values, returns)
        tensor([0.2500, 0.5000])
    """
    in_dims = tuple(None if t is None else 0 for t in tensors)
    if mask is None:
        return torch.func.vmap(lambda *xs: formula(*xs, **options), in_dims=in_dims)(*tensors)
    return torch.func.vmap(lambda m, *xs: formula(*xs, mask=m, **options), in_dims=(0, *in_dims))(
        mask, *tensors
    )
