"""Policy losses (course pages E.3.2–E.3.6): the policy gradient and PPO's clipped surrogate.

Losses are minimized, so each is the negative of the objective it ascends. Advantages and old
log-probabilities are data, not functions of the current parameters: every loss here detaches
them itself, so a caller cannot leak a gradient into the critic or the old policy by accident.

The losses and diagnostics that average over samples take an optional ``mask`` (bool, the shape
of the per-sample inputs): the result is then the one of the same call on the kept samples only,
``f(x[mask])``, computed as Σ x·m / Σ m so that it also runs under ``torch.func.vmap`` with a
different mask per row. Masked-out entries reach neither the result nor the gradient (they get
exactly 0), whatever finite value they hold; outside vmap they are checked for NaN and inf like
every other entry, under vmap not even a NaN there changes anything. Outside vmap a mask that
keeps no sample is refused; under vmap such a row gives 0.

The same functions take ``dim``, for many seeds trained at once without vmap: the inputs are
``[S, B]`` (seed first) and ``dim=1`` (or −1) gives one mean per seed, ``[S]``. Any rank works:
the result is the input's shape without ``dim`` (``[S, B, K]`` with ``dim=1`` gives ``[S, K]``).
With a mask too, row s of the result is the call on that row's kept samples,
``f(x[s][mask[s]])``, and a row that keeps none gives 0 with a gradient of 0 (an inactive
seed); nothing is refused for counts. NaN and inf are refused in every entry, kept or not,
outside vmap, as without ``dim``; the error's index names the seed.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rlgrad import _checks, _masks


def _pair(fn: str, first: str, x: object, second: str, y: object) -> tuple[Tensor, Tensor]:
    x = _checks.floats(fn, first, x)
    y = _checks.floats(fn, second, y, first, x)
    return x, y


def policy_gradient_loss(
    log_probs: Tensor, advantages: Tensor, *, mask: Tensor | None = None, dim: int | None = None
) -> Tensor:
    """The REINFORCE / actor-critic loss, L = −mean(Â_t · log π_θ(a_t | s_t)).

    With a mask m the mean is over the kept samples: L = −Σ_t m_t Â_t log π_θ(a_t|s_t) / Σ_t m_t.
    With ``dim`` the sums run over that axis only, one loss per row (0 for a row keeping none).

    Its gradient, −mean(Â_t ∇ log π_θ(a_t | s_t)), is minus the sampled policy gradient of the
    policy gradient theorem (Williams 1992; Sutton et al. 2000): descending L raises the
    probability of actions with Â > 0 and lowers it for Â < 0. Pass Â = G_t for REINFORCE.

    Args:
        log_probs: ``[*B]`` log π_θ(a_t | s_t), differentiable.
        advantages: ``[*B]`` Â_t (or G_t); detached here.
        mask: ``[*B]`` bool or 0/1, the samples to average over (the result of the call on
            ``x[mask]``; see the module docstring), or None for all.
        dim: the axis of ``[*B]`` to average over (e.g. 1 for ``[S, B]``), one result per
            row; None for all of them.

    Returns:
        A 0-dim tensor, or ``[*B]`` without ``dim``.

    Example (log π = log 0.5 and Â = 2 give −(2 · −0.6931) = 1.3863):
        >>> policy_gradient_loss(torch.tensor([0.5]).log(), torch.tensor([2.0]))
        tensor(1.3863)
    """
    fn = "policy_gradient_loss"
    log_probs, advantages = _pair(fn, "log_probs", log_probs, "advantages", advantages)
    if dim is None:
        _checks.non_empty(fn, "log_probs", log_probs)
    dim, mask = _checks.reduction(fn, dim, mask, "log_probs", log_probs)
    log_probs, advantages = _masks.zero_outside(mask, log_probs, advantages)
    return -_masks.mean(advantages.detach() * log_probs, mask, dim)


def ppo_objective(
    ratios: Tensor, advantages: Tensor, clip_eps: float, clip_eps_high: float | None = None
) -> Tensor:
    """PPO's clipped surrogate per sample (Schulman et al. 2017, eq. 7), to be maximized:

        min(r_t Â_t, clip(r_t, 1 − ε, 1 + ε_high) Â_t),    ε_high = ε unless given

    For Â > 0 it stops rewarding r above 1 + ε_high; for Â < 0 it stops rewarding r below 1 − ε.
    In those flat regions the gradient with respect to r is 0; elsewhere it is Â. A wider upper
    range (DAPO's "clip-higher", e.g. ε = 0.2, ε_high = 0.28) lets unlikely tokens gain more.

    Args:
        ratios: ``[*B]`` r_t = π_θ(a_t|s_t) / π_old(a_t|s_t) > 0, differentiable.
        advantages: ``[*B]`` Â_t; detached here.
        clip_eps: ε > 0, the lower range (and the upper one unless ``clip_eps_high``).
        clip_eps_high: ε_high > 0, or None for ε.

    Returns:
        ``[*B]``.

    Example (course page E.3.6, exercise: π_old = 0.4, π = 0.6, Â = 3, ε = 0.2 → r = 1.5;
    r·Â = 4.5 and the clipped value is 1.2·3 = 3.6):
        >>> ppo_objective(torch.tensor([0.6 / 0.4]), torch.tensor([3.0]), clip_eps=0.2)
        tensor([3.6000])
    """
    fn = "ppo_objective"
    ratios, advantages = _pair(fn, "ratios", ratios, "advantages", advantages)
    clip_eps = _checks.positive(fn, "clip_eps", clip_eps)
    high = (
        clip_eps if clip_eps_high is None else _checks.positive(fn, "clip_eps_high", clip_eps_high)
    )
    advantages = advantages.detach()
    unclipped = ratios * advantages
    clipped = ratios.clamp(1.0 - clip_eps, 1.0 + high) * advantages
    return torch.minimum(unclipped, clipped)


def ppo_clip_loss(
    log_probs: Tensor,
    old_log_probs: Tensor,
    advantages: Tensor,
    clip_eps: float = 0.2,
    *,
    mask: Tensor | None = None,
    dim: int | None = None,
) -> Tensor:
    """PPO's policy loss, L = −mean(min(r_t Â_t, clip(r_t, 1 − ε, 1 + ε) Â_t)),
    with r_t = exp(log π_θ(a_t|s_t) − log π_old(a_t|s_t)).

    With a mask m the mean is over the kept samples, Σ_t m_t(·) / Σ_t m_t. With ``dim`` the sums
    run over that axis only, one loss per row (0 for a row keeping none).

    At r = 1 (the first epoch on fresh data) its gradient equals that of
    :func:`policy_gradient_loss`; inside the clip range it is the importance-weighted policy
    gradient −mean(r_t Â_t ∇ log π_θ).

    Args:
        log_probs: ``[*B]`` log π_θ(a_t|s_t), differentiable.
        old_log_probs: ``[*B]`` log π_old(a_t|s_t) at collection time; detached here.
        advantages: ``[*B]`` Â_t; detached here.
        clip_eps: ε > 0.
        mask: ``[*B]`` bool or 0/1, the samples to average over (the result of the call on
            ``x[mask]``; see the module docstring), or None for all.
        dim: the axis of ``[*B]`` to average over (e.g. 1 for ``[S, B]``), one result per
            row; None for all of them.

    Returns:
        A 0-dim tensor, or ``[*B]`` without ``dim``.

    Example (ratio e^0.1 ≈ 1.105 inside the range: L = −1.105·2):
        >>> ppo_clip_loss(torch.tensor([0.1]), torch.tensor([0.0]), torch.tensor([2.0]))
        tensor(-2.2103)

    Two seeds, one loss each (seed 0: −(1.105·2 + 1·1)/2 = −1.605; seed 1 keeps only its first
    sample, r = 1 and Â = 3, so −3; its masked-out r = e⁵ would have counted as −1.2·9):
        >>> log_probs = torch.tensor([[0.1, 0.0], [0.0, 5.0]])
        >>> advantages = torch.tensor([[2.0, 1.0], [3.0, 9.0]])
        >>> mask = torch.tensor([[True, True], [True, False]])
        >>> ppo_clip_loss(log_probs, torch.zeros(2, 2), advantages, mask=mask, dim=1)
        tensor([-1.6052, -3.0000])
    """
    fn = "ppo_clip_loss"
    log_probs, old_log_probs = _pair(fn, "log_probs", log_probs, "old_log_probs", old_log_probs)
    advantages = _checks.floats(fn, "advantages", advantages, "log_probs", log_probs)
    clip_eps = _checks.positive(fn, "clip_eps", clip_eps)
    if dim is None:
        _checks.non_empty(fn, "log_probs", log_probs)
    dim, mask = _checks.reduction(fn, dim, mask, "log_probs", log_probs)
    log_probs, old_log_probs, advantages = _masks.zero_outside(
        mask, log_probs, old_log_probs, advantages
    )
    ratios = torch.exp(log_probs - old_log_probs.detach())
    return -_masks.mean(ppo_objective(ratios, advantages, clip_eps), mask, dim)


def clip_fraction(
    ratios: Tensor, clip_eps: float, *, mask: Tensor | None = None, dim: int | None = None
) -> Tensor:
    """The fraction of samples outside the clip range, mean(|r_t − 1| > ε): a PPO diagnostic.

    With a mask m, the fraction of the kept samples: Σ_t m_t [|r_t − 1| > ε] / Σ_t m_t. With
    ``dim`` the sums run over that axis only, one fraction per row (0 for a row keeping none).

    Args:
        ratios: ``[*B]``, at least one element.
        clip_eps: ε > 0.
        mask: ``[*B]`` bool or 0/1, the samples to count (as ``ratios[mask]``), or None for all.
        dim: the axis of ``[*B]`` to average over (e.g. 1 for ``[S, B]``), one result per
            row; None for all of them.

    Returns:
        A 0-dim tensor in [0, 1], or ``[*B]`` without ``dim``; without gradient.

    Example:
        >>> clip_fraction(torch.tensor([0.7, 0.9, 1.0, 1.3]), clip_eps=0.2)
        tensor(0.5000)
    """
    fn = "clip_fraction"
    ratios = _checks.floats(fn, "ratios", ratios)
    clip_eps = _checks.positive(fn, "clip_eps", clip_eps)
    if dim is None:
        _checks.non_empty(fn, "ratios", ratios)
    dim, mask = _checks.reduction(fn, dim, mask, "ratios", ratios)
    (ratios,) = _masks.zero_outside(mask, ratios.detach())
    return _masks.mean(((ratios - 1.0).abs() > clip_eps).to(ratios.dtype), mask, dim)


def approx_kl(
    log_probs: Tensor, old_log_probs: Tensor, *, mask: Tensor | None = None, dim: int | None = None
) -> Tensor:
    """An estimate of KL(π_old ‖ π_θ) from samples of π_old: mean((r − 1) − log r).

    With a mask m the mean is over the kept samples, Σ_t m_t(·) / Σ_t m_t. With ``dim`` the sums
    run over that axis only, one estimate per row (0 for a row keeping none).

    With log r = log π_θ − log π_old. Each term is ≥ 0 (since log r ≤ r − 1) and the estimator is
    unbiased with low variance (Schulman's "k3"); PPO trainers compare it with a target KL to stop
    an update early.

    Args:
        log_probs: ``[*B]`` log π_θ(a_t|s_t).
        old_log_probs: ``[*B]`` log π_old(a_t|s_t).
        mask: ``[*B]`` bool or 0/1, the samples to average over (the result of the call on
            ``x[mask]``; see the module docstring), or None for all.
        dim: the axis of ``[*B]`` to average over (e.g. 1 for ``[S, B]``), one result per
            row; None for all of them.

    Returns:
        A 0-dim tensor ≥ 0, or ``[*B]`` without ``dim``.

    Example (log r = 0.1: (e^0.1 − 1) − 0.1 = 0.00517):
        >>> x = torch.tensor([0.1], dtype=torch.float64)
        >>> approx_kl(x, torch.zeros_like(x))
        tensor(0.0052, dtype=torch.float64)
    """
    fn = "approx_kl"
    log_probs, old_log_probs = _pair(fn, "log_probs", log_probs, "old_log_probs", old_log_probs)
    if dim is None:
        _checks.non_empty(fn, "log_probs", log_probs)
    dim, mask = _checks.reduction(fn, dim, mask, "log_probs", log_probs)
    log_probs, old_log_probs = _masks.zero_outside(mask, log_probs, old_log_probs)
    log_ratios = log_probs - old_log_probs
    return _masks.mean(torch.expm1(log_ratios) - log_ratios, mask, dim)


def clipped_fractions(
    ratios: Tensor, advantages: Tensor, clip_eps: float, clip_eps_high: float | None = None
) -> tuple[Tensor, Tensor]:
    """The fractions of samples whose gradient the clip removes, on each side of the range.

        low = mean([r < 1 − ε] ∧ [Â < 0]),    high = mean([r > 1 + ε_high] ∧ [Â > 0])

    Only there is :func:`ppo_objective` flat: a ratio beyond the range on the side the advantage
    pushes towards is clipped, one beyond it on the other side is not. TRL logs these two as
    ``clip_ratio/low_mean`` and ``clip_ratio/high_mean``.

    Args:
        ratios: ``[*B]`` r = π_θ/π_old.
        advantages: ``[*B]`` Â.
        clip_eps: ε > 0.
        clip_eps_high: ε_high > 0, or None for ε.

    Returns:
        Two 0-dim tensors in [0, 1], without gradient.

    Example (r = 0.7 with Â < 0 is clipped low, r = 1.3 with Â > 0 high, r = 1.3 with Â < 0
    is not clipped):
        >>> r, a = torch.tensor([0.7, 1.3, 1.3, 1.0]), torch.tensor([-1.0, 1.0, -1.0, 1.0])
        >>> clipped_fractions(r, a, clip_eps=0.2)
        (tensor(0.2500), tensor(0.2500))
    """
    fn = "clipped_fractions"
    ratios, advantages = _pair(fn, "ratios", ratios, "advantages", advantages)
    clip_eps = _checks.positive(fn, "clip_eps", clip_eps)
    high = (
        clip_eps if clip_eps_high is None else _checks.positive(fn, "clip_eps_high", clip_eps_high)
    )
    _checks.non_empty(fn, "ratios", ratios)
    ratios, advantages = ratios.detach(), advantages.detach()
    low_clipped = ((ratios < 1 - clip_eps) & (advantages < 0)).to(ratios.dtype).mean()
    high_clipped = ((ratios > 1 + high) & (advantages > 0)).to(ratios.dtype).mean()
    return low_clipped, high_clipped
