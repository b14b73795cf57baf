"""Taylor diagnostics of a policy update: did the step stay where its models hold?

Course page E.3.4: a large step can leave the region where the first-order model of the
objective is trustworthy. Given the policy before an update (θ_old, a flat copy of its
parameters from :func:`snapshot`) and the agent after it (θ_new = θ_old + Δθ), on the
update's batch:

| Quantity               | Model around θ_old               | Actual                       |
|------------------------|----------------------------------|------------------------------|
| surrogate change       | gᵀΔθ with g = ∇L(θ_old)          | L(θ_new) − L(θ_old)          |
| mean KL(π_old ‖ π_new) | ½ ΔθᵀFΔθ                         | the closed-form mean KL      |
| probe ratio r_i        | 1 + ℓ_i′, then + ½(ℓ_i″ + ℓ_i′²) | exp(ℓ_i(θ_new) − ℓ_i(θ_old)) |

L is the surrogate mean(r Â) (:func:`rlgrad.trust_region.surrogate_objective`), F·Δθ the
Fisher-vector product (:func:`rlgrad.fisher_vector_product`), the ratio models those of
:func:`rlgrad.trust_region.ratio_taylor` on the probe batch (the first ``probe_size`` samples).
:func:`diagnostics` gives them as metrics columns; :func:`step_slice` follows them along
θ_old + tΔθ as the scale t grows, with the fraction of ratios outside PPO's clip range.

Only the policy's parameters count (the actor and, for a Gaussian policy, log σ). The agent is
never modified: a quantity at another θ runs the agent's own methods with those parameter values
through :func:`torch.func.functional_call`.

Shapes: observations ``[B, *obs]``, actions ``[B]`` (discrete) or ``[B, D]``, old log-probs
and advantages ``[B]``, θ_old ``[N]`` (N policy parameter entries, in the agent's order).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn.utils import parameters_to_vector

from rlgrad import _checks
from rlgrad.errors import BadInputError
from rlgrad.policy import clip_fraction
from rlgrad.returns import normalize_advantages
from rlgrad.support.seeded import seed_agent
from rlgrad.trust_region import (
    fisher_vector_product,
    hessian_vector_product,
    ratio_taylor,
    surrogate_objective,
)

COLUMNS = (
    "taylor_surrogate_predicted",
    "taylor_surrogate_actual",
    "taylor_kl_predicted",
    "taylor_kl_actual",
    "taylor_ratio_error_first",
    "taylor_ratio_error_second",
)
"""The metrics columns of :func:`diagnostics`; in metrics.csv when ``taylor_every`` > 0."""


def policy_parameters(agent: nn.Module) -> dict[str, Tensor]:
    """The policy's named parameters (``actor.*`` and ``log_std``), in the agent's order."""
    return {
        name: parameter
        for name, parameter in agent.named_parameters()
        if name.startswith("actor.") or name == "log_std"
    }


def policy_vector(agent: nn.Module) -> Tensor:
    """The policy's parameters as one detached ``[N]`` copy."""
    return parameters_to_vector(policy_parameters(agent).values()).detach().clone()


def snapshot(agent: nn.Module, every: int, update: int) -> Tensor | None:
    """θ_old before update number ``update`` (counting from 0) when the diagnostics are due,
    every ``every`` updates (0: never): :func:`policy_vector`; otherwise None."""
    if not every or update % every:
        return None
    return policy_vector(agent)


def check_single_seed(every: int, num_seeds: int) -> None:
    """The diagnostics read one agent's update: ``taylor_every`` > 0 needs a single seed."""
    if every and num_seeds != 1:
        raise BadInputError(
            f"config field 'taylor_every' needs a single seed; got {num_seeds} seeds"
        )


class SeedDiagnostics:
    """:func:`snapshot` and :func:`diagnostics` in a seed-batched trainer (PPO, TRPO) of a
    single seed (:func:`check_single_seed`), which they read as an ordinary agent: the batch's
    slice 0 (:func:`~rlgrad.support.seeded.seed_agent`; ``build(seeds)`` builds the batch's
    agent)."""

    def __init__(self, every: int, agents: nn.Module, build):
        self.every, self.agents, self.build = every, agents, build

    def before(self, update: int) -> Tensor | None:
        """θ_old of seed 0 before update number ``update`` when its diagnostics are due."""
        return snapshot(self._agent(), self.every, update) if self.every else None

    def after(
        self,
        old_vector: Tensor | None,
        usable: Tensor,
        observations: Tensor,
        actions: Tensor,
        old_log_probs: Tensor,
        advantages: Tensor,
        **options,
    ) -> dict[str, float | None]:
        """:func:`diagnostics` of seed 0's update on its ``usable`` samples (indices into the
        ``[S, samples, ...]`` inputs' second axis); ``{}`` when ``every`` is 0 (no columns)."""
        if not self.every:
            return {}
        rows = (observations, actions, old_log_probs, advantages)
        return diagnostics(self._agent(), old_vector, *(x[0, usable] for x in rows), **options)

    def _agent(self) -> nn.Module:
        return seed_agent(self.agents, 0, self.build)


class _Method(nn.Module):
    """An agent's method as a forward, so that functional_call can run it with other parameter
    values: ``_Method(agent)("kl_from", old, states)`` is ``agent.kl_from(old, states)``."""

    def __init__(self, agent: nn.Module):
        super().__init__()
        self.agent = agent

    def forward(self, method: str, *args):
        return getattr(self.agent, method)(*args)


class _Line:
    """The policy on the line θ_old + tΔθ: its parameters at a scale t, and its methods there."""

    def __init__(self, agent: nn.Module, old_vector: Tensor, step: Tensor):
        named = policy_parameters(agent)
        self.method, self.names = _Method(agent), [f"agent.{name}" for name in named]
        self.shapes = [p.shape for p in named.values()]
        self.old_vector, self.step = old_vector, step

    def at(self, scale: float) -> list[Tensor]:
        """θ_old + tΔθ as tensors shaped like the agent's parameters."""
        vector = self.old_vector + scale * self.step if scale else self.old_vector
        pieces = vector.split([shape.numel() for shape in self.shapes])
        return [piece.view(shape) for piece, shape in zip(pieces, self.shapes, strict=True)]

    def call(self, values: list[Tensor], method: str, *args):
        """``agent.method(*args)`` with the policy's parameters set to ``values``."""
        named = dict(zip(self.names, values, strict=True))
        return torch.func.functional_call(self.method, named, (method, *args))


class _Batch(NamedTuple):
    observations: Tensor  # [B, *obs]
    actions: Tensor  # [B] or [B, D]
    old_log_probs: Tensor  # [B]
    advantages: Tensor  # [B], normalized when asked
    probe: int  # P, the probe batch is the first P samples


class _Expansion(NamedTuple):
    """The models of one update at unit scale (t = 1), and what measuring along it needs."""

    old_surrogate: float  # L(θ_old)
    slope: float  # gᵀΔθ
    surrogate_curvature: float | None  # ΔθᵀHΔθ of the surrogate (None: not asked for)
    kl_curvature: float  # ΔθᵀFΔθ
    old_distribution: tuple  # π_old at the batch's observations, detached
    old_probe_log_probs: Tensor  # [P] ℓ_i(θ_old)
    ratio_first: Tensor  # [P] 1 + ℓ_i′
    ratio_second: Tensor  # [P] 1 + ℓ_i′ + ½(ℓ_i″ + ℓ_i′²)


def _prepare(
    fn: str,
    agent: nn.Module,
    old_vector: Tensor,
    tensors: tuple[Tensor, Tensor, Tensor, Tensor],
    probe_size: int,
    normalize: bool,
) -> tuple[_Line, _Batch]:
    """Check the inputs; the line from θ_old through the agent's θ_new, and the batch of
    ``tensors`` = (observations, actions, old log-probs, advantages)."""
    observations, actions, old_log_probs, advantages = tensors
    current = policy_vector(agent)
    old_vector = _checks.tensor(fn, "old_vector", old_vector)
    if old_vector.shape != current.shape:
        raise BadInputError(
            f"{fn}(): 'old_vector' must be the policy's flat parameters (policy_vector()), "
            f"shape {tuple(current.shape)}; got {tuple(old_vector.shape)}"
        )
    old_log_probs = _checks.floats(fn, "old_log_probs", old_log_probs)
    if old_log_probs.dim() != 1:
        raise BadInputError(
            f"{fn}(): 'old_log_probs' must be [B]; got shape {tuple(old_log_probs.shape)}"
        )
    _checks.non_empty(fn, "old_log_probs", old_log_probs)
    advantages = _checks.floats(fn, "advantages", advantages, "old_log_probs", old_log_probs)
    for name, x in (("observations", observations), ("actions", actions)):
        x = _checks.tensor(fn, name, x, floating=name == "observations")
        if x.dim() == 0 or x.shape[0] != len(old_log_probs):
            raise BadInputError(
                f"{fn}(): '{name}' must hold B = {len(old_log_probs)} samples along dimension "
                f"0, as 'old_log_probs'; got shape {tuple(x.shape)}"
            )
    if _checks.count(fn, "probe_size", probe_size) < 1:
        raise BadInputError(f"{fn}(): 'probe_size' must be >= 1; got {probe_size}")
    if normalize and len(advantages) > 1:
        advantages = normalize_advantages(advantages)
    old_vector = old_vector.detach()
    line = _Line(agent, old_vector, current - old_vector)
    return line, _Batch(observations, actions, old_log_probs, advantages.detach(), probe_size)


def _expand(line: _Line, batch: _Batch, surrogate_curvature: bool = False) -> _Expansion:
    """gᵀΔθ, ΔθᵀFΔθ (and ΔθᵀHΔθ), and the probe ratios' models: one gradient, one Fisher-vector
    product (one Hessian-vector product), one nested forward pass over the probe batch."""
    leaves = [p.clone().requires_grad_(True) for p in line.at(0.0)]  # θ_old, to differentiate

    def surrogate() -> Tensor:
        log_probs, _ = line.call(leaves, "log_prob_and_entropy", batch.observations, batch.actions)
        return surrogate_objective(log_probs, batch.old_log_probs, batch.advantages)

    with torch.enable_grad():
        old_surrogate = surrogate()
        gradients = torch.autograd.grad(old_surrogate, leaves, materialize_grads=True)
    gradient = torch.cat([g.reshape(-1) for g in gradients])  # g, [N]
    with torch.no_grad():
        old_distribution = tuple(
            None if x is None else x.detach().clone()
            for x in line.call(line.at(0.0), "distribution", batch.observations)
        )

    def mean_kl() -> Tensor:
        return line.call(leaves, "kl_from", old_distribution, batch.observations).mean()

    fisher_step = fisher_vector_product(mean_kl, leaves, line.step)  # F·Δθ
    hessian_step = (
        hessian_vector_product(surrogate, leaves, line.step) if surrogate_curvature else None
    )
    probe = slice(0, batch.probe)  # the first P samples

    def probe_log_probs(values: list[Tensor]) -> Tensor:
        states, actions = batch.observations[probe], batch.actions[probe]
        return line.call(values, "log_prob_and_entropy", states, actions)[0]

    with torch.no_grad():
        old_probe_log_probs = probe_log_probs(line.at(0.0))
    ratios = ratio_taylor(probe_log_probs, line.at(0.0), line.step)
    return _Expansion(
        float(old_surrogate.detach()),
        float(gradient @ line.step),
        None if hessian_step is None else float(line.step @ hessian_step),
        float(line.step @ fisher_step),
        old_distribution,
        old_probe_log_probs,
        ratios.first,
        ratios.second,
    )


class _Measured(NamedTuple):
    surrogate_change: float  # L(θ_old + tΔθ) − L(θ_old)
    kl: float  # mean KL(π_old ‖ π at θ_old + tΔθ)
    probe_ratios: Tensor  # [P] π/π_old of the probe batch at θ_old + tΔθ


def _measure(line: _Line, batch: _Batch, expansion: _Expansion, scale: float) -> _Measured:
    """The true surrogate change, mean KL and probe ratios at θ_old + tΔθ."""
    values = line.at(scale)
    with torch.no_grad():
        log_probs, _ = line.call(values, "log_prob_and_entropy", batch.observations, batch.actions)
        surrogate = surrogate_objective(log_probs, batch.old_log_probs, batch.advantages)
        kl = line.call(values, "kl_from", expansion.old_distribution, batch.observations).mean()
        probe_ratios = torch.exp(log_probs[: batch.probe] - expansion.old_probe_log_probs)
    return _Measured(float(surrogate) - expansion.old_surrogate, float(kl), probe_ratios)


def _relative_error(predicted: Tensor, actual: Tensor) -> float:
    """mean_i |predicted_i − actual_i| / actual_i (a ratio is always > 0)."""
    return float(((predicted - actual).abs() / actual).mean())


def diagnostics(
    agent: nn.Module,
    old_vector: Tensor | None,
    observations: Tensor,
    actions: Tensor,
    old_log_probs: Tensor,
    advantages: Tensor,
    probe_size: int = 64,
    normalize: bool = False,
) -> dict[str, float | None]:
    """The Taylor models of the update that moved the agent's policy from θ_old to its current
    θ_new, against what the update did (module docstring):

        taylor_surrogate_predicted = gᵀΔθ          taylor_surrogate_actual = L(θ_new) − L(θ_old)
        taylor_kl_predicted        = ½ ΔθᵀFΔθ      taylor_kl_actual        = mean KL(π_old ‖ π_new)
        taylor_ratio_error_first   = mean_i |1 + ℓ_i′ − r_i| / r_i               (probe batch)
        taylor_ratio_error_second  = mean_i |1 + ℓ_i′ + ½(ℓ_i″ + ℓ_i′²) − r_i| / r_i

    Args:
        agent: the actor-critic after the update (``log_prob_and_entropy``, ``distribution``,
            ``kl_from``); not modified.
        old_vector: ``[N]`` θ_old from :func:`snapshot`, or None (no diagnostics this update).
        observations, actions, old_log_probs, advantages: the update's batch (module
            docstring); the surrogate's old log-probabilities and advantages are detached.
        probe_size: P ≥ 1, the ratio models use the first P samples.
        normalize: normalize the advantages over the batch first, as the trainer's update did.

    Returns:
        ``{column: value}`` for every name in :data:`COLUMNS`; all None when ``old_vector`` is
        None, so that a trainer's metrics rows keep the same columns.

    Raises:
        TypeError / ValueError: ``old_vector`` not the policy's ``[N]``, a batch whose tensors
        do not share B, non-finite values, or ``probe_size`` < 1.
    """
    if old_vector is None:
        return dict.fromkeys(COLUMNS)
    tensors = (observations, actions, old_log_probs, advantages)
    line, batch = _prepare("diagnostics", agent, old_vector, tensors, probe_size, normalize)
    expansion = _expand(line, batch)
    measured = _measure(line, batch, expansion, 1.0)
    return {
        "taylor_surrogate_predicted": expansion.slope,
        "taylor_surrogate_actual": measured.surrogate_change,
        "taylor_kl_predicted": 0.5 * expansion.kl_curvature,
        "taylor_kl_actual": measured.kl,
        "taylor_ratio_error_first": _relative_error(expansion.ratio_first, measured.probe_ratios),
        "taylor_ratio_error_second": _relative_error(expansion.ratio_second, measured.probe_ratios),
    }


class TaylorSlice(NamedTuple):
    """The update's 1-D slice θ_old + tΔθ: each field ``[S]``, one entry per scale t."""

    scales: Tensor  # t
    surrogate: Tensor  # L(θ_old + tΔθ) − L(θ_old)
    surrogate_first: Tensor  # t·gᵀΔθ
    surrogate_second: Tensor  # t·gᵀΔθ + ½t²·ΔθᵀHΔθ
    kl: Tensor  # mean KL(π_old ‖ π at θ_old + tΔθ)
    kl_second: Tensor  # ½t²·ΔθᵀFΔθ
    clip_fraction: Tensor  # fraction of probe ratios with |r − 1| > ε
    ratio_error_first: Tensor  # mean_i |1 + tℓ_i′ − r_i| / r_i over the probe
    ratio_error_second: Tensor  # mean_i |1 + tℓ_i′ + ½t²(ℓ_i″ + ℓ_i′²) − r_i| / r_i


def step_slice(
    agent: nn.Module,
    old_vector: Tensor,
    observations: Tensor,
    actions: Tensor,
    old_log_probs: Tensor,
    advantages: Tensor,
    scales: Tensor,
    clip_eps: float = 0.2,
    probe_size: int = 64,
    normalize: bool = False,
) -> TaylorSlice:
    """The update's direction as a 1-D slice: at each scale t, the true surrogate change and KL
    at θ_old + tΔθ against their Taylor models, which are polynomials in t,

        surrogate ≈ t·gᵀΔθ  (first order),  t·gᵀΔθ + ½t²·ΔθᵀHΔθ  (second order)
        KL        ≈ ½t²·ΔθᵀFΔθ

    (H·Δθ by :func:`rlgrad.hessian_vector_product` of the surrogate), the probe ratios' models
    1 + tℓ′ and 1 + tℓ′ + ½t²(ℓ″ + ℓ′²) against the true ratios, and the fraction of probe ratios
    outside [1 − ε, 1 + ε], where PPO's clip engages (:func:`rlgrad.clip_fraction`). t = 1 is the
    update itself; t = 0 is θ_old.

    Args:
        agent, old_vector, observations, actions, old_log_probs, advantages, probe_size,
            normalize: as for :func:`diagnostics` (``old_vector`` may not be None).
        scales: ``[S]`` the scales t, any real numbers.
        clip_eps: ε > 0 of the clip range.

    Returns:
        :class:`TaylorSlice`, each field ``[S]`` float64.

    Raises:
        The errors of :func:`diagnostics`; for ``scales`` not a finite 1-D tensor or ε ≤ 0.
    """
    fn = "step_slice"
    scales = _checks.floats(fn, "scales", scales)
    if scales.dim() != 1:
        raise BadInputError(f"{fn}(): 'scales' must be [S]; got shape {tuple(scales.shape)}")
    clip_eps = _checks.positive(fn, "clip_eps", clip_eps)
    tensors = (observations, actions, old_log_probs, advantages)
    line, batch = _prepare(fn, agent, old_vector, tensors, probe_size, normalize)
    expansion = _expand(line, batch, surrogate_curvature=True)
    first_slope = expansion.ratio_first - 1.0  # ℓ′ per probe sample
    second_term = expansion.ratio_second - expansion.ratio_first  # ½(ℓ″ + ℓ′²)
    rows = []
    for t in scales.tolist():
        measured = _measure(line, batch, expansion, t)
        ratio_first = 1.0 + t * first_slope
        rows.append(
            (
                measured.surrogate_change,
                measured.kl,
                float(clip_fraction(measured.probe_ratios, clip_eps)),
                _relative_error(ratio_first, measured.probe_ratios),
                _relative_error(ratio_first + t * t * second_term, measured.probe_ratios),
            )
        )
    surrogate, kl, clipped, error_first, error_second = torch.tensor(
        rows, dtype=torch.float64
    ).unbind(1)
    t = scales.detach().to(torch.float64)
    return TaylorSlice(
        t,
        surrogate,
        t * expansion.slope,
        t * expansion.slope + 0.5 * t**2 * expansion.surrogate_curvature,
        kl,
        0.5 * t**2 * expansion.kl_curvature,
        clipped,
        error_first,
        error_second,
    )
