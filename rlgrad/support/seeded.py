"""Many seeds in one process: S independent agents of one architecture as one batched module.

A seed-batched agent is the ordinary agent built with ``seeds=S``: each linear layer is a
:class:`~rlgrad.support.nets.SeedLinear` (S layers in one batched matmul), every parameter has a
leading seed axis, and so does every input and output of its methods (observations
``[S, B, *obs]``). Seed s's slice of each parameter is exactly the parameter of the ordinary
agent, so that :func:`seed_state_dict` is an ordinary agent's ``state_dict`` (what each seed's
run directory holds) and :func:`build_seeded` can give seed s the initialization a single-seed
run of s draws. Gradients reach seed s's slice from seed s's loss only, so one optimizer over
the stacked parameters is S optimizers (:mod:`rlgrad.support.seed_adam`). Buffers (the action
bounds) are shared by all seeds.

Random draws stay per seed: :class:`SeedGenerators` holds one ``torch.Generator`` per seed,
seeded as a single-seed run seeds its own, so seed s draws the same numbers whichever seeds
train beside it.

    >>> from rlgrad.support.envs import Spaces
    >>> from rlgrad.support.nets import ActorCritic
    >>> spaces = Spaces((4,), True, 2, (), None, None)
    >>> agents = build_seeded(lambda seeds: ActorCritic(spaces, seeds=seeds), [7, 8, 9])
    >>> agents.value(torch.zeros(3, 5, 4)).shape  # 3 seeds, 5 observations each
    torch.Size([3, 5])
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rlgrad.errors import BadInputError


def build_seeded(build, seeds: list[int]) -> nn.Module:
    """The seed-batched agent ``build(len(seeds))`` with seed s's slice set to ``build(None)``
    built right after ``torch.manual_seed(s)``: the initialization a single-seed run of s
    draws."""
    if not seeds:
        raise BadInputError("build_seeded(): 'seeds' must hold at least one seed; got none")
    singles = []
    for seed in seeds:
        torch.manual_seed(seed)
        singles.append(build(None).state_dict())
    agents = build(len(seeds))
    names = {name for name, _ in agents.named_parameters()}
    agents.load_state_dict(
        {
            name: torch.stack([single[name] for single in singles]) if name in names else tensor
            for name, tensor in singles[0].items()
        }
    )
    return agents


def seed_state_dict(agents: nn.Module, seed_index: int) -> dict[str, Tensor]:
    """Seed ``seed_index``'s agent as an ordinary ``state_dict`` (copies): its slice of each
    parameter, and the shared buffers."""
    parameters = dict(agents.named_parameters())
    return {
        name: (tensor[seed_index] if name in parameters else tensor).detach().clone()
        for name, tensor in agents.state_dict().items()
    }


@torch.no_grad()
def load_seed_state_dict(agents: nn.Module, seed_index: int, state: dict[str, Tensor]) -> None:
    """Put an ordinary agent ``state_dict`` into seed ``seed_index``'s slice (the shared
    buffers are left as they are: every seed's are equal)."""
    parameters = dict(agents.named_parameters())
    missing = sorted(set(parameters) - set(state))
    if missing:
        raise BadInputError(f"load_seed_state_dict(): the state lacks {', '.join(missing)}")
    for name, parameter in parameters.items():
        parameter[seed_index].copy_(state[name])


def seed_agent(agents: nn.Module, seed_index: int, build) -> nn.Module:
    """Seed ``seed_index``'s agent as an ordinary module, ``build(None)`` loaded with its slice
    (a copy: it does not train on)."""
    agent = build(None)
    agent.load_state_dict(seed_state_dict(agents, seed_index))
    return agent.to(next(agents.parameters()).device)


def non_finite_seeds(agents: nn.Module) -> Tensor:
    """``[S]`` bool: the seeds with a NaN or infinite parameter (one reduction per tensor)."""
    bad = None
    for parameter in agents.parameters():
        # [S, -1]: a parameter of one number per seed ([S], SAC's log α) is a column
        row = ~torch.isfinite(parameter.detach().reshape(len(parameter), -1)).all(dim=1)
        bad = row if bad is None else bad | row
    return bad


@torch.no_grad()
def zero_seed(agents: nn.Module, seed_index: int) -> None:
    """Set seed ``seed_index``'s parameters to 0: a failed seed rides along in the batch without
    training, and its NaN must not reach the batched formulas, which refuse non-finite input."""
    for parameter in agents.parameters():
        parameter[seed_index].zero_()


class SeedVectors:
    """Seed-batched parameters (each ``[S, ...]``) as one row of numbers per seed, ``[S, P]``:
    seed s's row is its slice of every parameter, flattened and laid end to end, the flat vector
    ``parameters_to_vector`` makes of a single-seed agent. TRPO's conjugate gradient and line
    search work per row. :meth:`flat` and :meth:`rows_of` convert to and from the flat layout of
    the stacked tensors themselves (``parameters_to_vector`` of the list), which the
    curvature products of :mod:`rlgrad.trust_region` take.

    >>> weight, bias = torch.arange(12.0).reshape(2, 3, 2), torch.tensor([[9.0], [8.0]])
    >>> vectors = SeedVectors([weight, bias])
    >>> vectors.rows()
    tensor([[ 0.,  1.,  2.,  3.,  4.,  5.,  9.],
            [ 6.,  7.,  8.,  9., 10., 11.,  8.]])
    >>> torch.equal(vectors.rows_of(vectors.flat(vectors.rows())), vectors.rows())
    True
    """

    def __init__(self, parameters: list[Tensor]):
        self.parameters = list(parameters)
        self.seeds = len(self.parameters[0])
        self.sizes = [p[0].numel() for p in self.parameters]

    def rows(self, tensors: list[Tensor] | tuple[Tensor, ...] | None = None) -> Tensor:
        """``[S, P]``: the parameters (or ``tensors`` shaped like them, e.g. gradients)."""
        tensors = self.parameters if tensors is None else tensors
        return torch.cat([t.reshape(self.seeds, -1) for t in tensors], dim=1)

    def flat(self, rows: Tensor) -> Tensor:
        """``[S·P]`` in the stacked tensors' own flat layout, from ``rows [S, P]``."""
        return torch.cat([chunk.reshape(-1) for chunk in rows.split(self.sizes, dim=1)])

    def rows_of(self, flat: Tensor) -> Tensor:
        """``[S, P]`` from the stacked tensors' flat layout (the inverse of :meth:`flat`)."""
        chunks = flat.split([self.seeds * size for size in self.sizes])
        return torch.cat([chunk.reshape(self.seeds, -1) for chunk in chunks], dim=1)

    @torch.no_grad()
    def assign(self, rows: Tensor) -> None:
        """Set the parameters, in place, to ``rows [S, P]``."""
        for parameter, chunk in zip(self.parameters, rows.split(self.sizes, dim=1), strict=True):
            parameter.copy_(chunk.reshape(parameter.shape))


class SeedSlice:
    """Seed s of a seed-batched agent (or of a seed-stacked optimizer) as a single-seed run's
    checkpoint sees a module: ``state_dict()`` and ``load_state_dict()`` of that seed alone."""

    def __init__(self, stacked, seed_index: int):
        self.stacked, self.seed_index = stacked, seed_index

    def state_dict(self) -> dict:
        if isinstance(self.stacked, nn.Module):
            return seed_state_dict(self.stacked, self.seed_index)
        return self.stacked.seed_state(self.seed_index)

    def load_state_dict(self, state: dict) -> None:
        if isinstance(self.stacked, nn.Module):
            load_seed_state_dict(self.stacked, self.seed_index, state)
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

    def draw(self, kind: str, shape: tuple[int, ...], where=None, dtype=None) -> Tensor:
        """``[S, *shape]``: seed s's slice is ``torch.randn(shape)`` (``kind`` 'normal') or
        ``torch.rand(shape)`` ('uniform') from generator s, the draw a single-seed run of s
        makes; a seed where ``where`` ([S] bool, NumPy or list; None: every seed) is False draws
        nothing and gets zeros, so its stream stays where it was."""
        if kind not in ("normal", "uniform"):
            raise BadInputError(
                f"SeedGenerators.draw(): 'kind' must be normal or uniform; got {kind!r}"
            )
        sample = torch.randn if kind == "normal" else torch.rand
        on = self.generators[0].device
        options = {"dtype": dtype, "device": on}
        slices = [
            sample(shape, generator=generator, **options)
            if where is None or where[s]
            else torch.zeros(shape, **options)
            for s, generator in enumerate(self.generators)
        ]
        return torch.stack(slices)

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
