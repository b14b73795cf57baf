"""The arithmetic of the ``mask`` keyword: means over the samples a mask keeps, by Σ x·m / Σ m.

A batch padded to a common shape carries a mask, 1 on the real samples and 0 on the padding:
GRPO's tokens after EOS, or the minibatches of many seeds trained at once, each with its own
number of usable samples. ``x[mask]`` would drop the padding, but its shape depends on the mask's
values, which ``torch.func.vmap`` cannot batch; Σ x·m / Σ m gives the same mean with every shape
fixed. The formulas check their inputs (and the mask, :func:`rlgrad._checks.sample_mask`) first
and then compute with these helpers, which check nothing; :func:`rlgrad.grpo.masked_mean` is the
checked, public form of :func:`mean`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rlgrad import _checks


def _sum(x: Tensor, dim: int | None) -> Tensor:
    """Σ over all entries (0-dim), or over ``dim`` keeping it as an axis of size 1."""
    return x.sum() if dim is None else x.sum(dim=dim, keepdim=True)


def mean(x: Tensor, mask: Tensor | None, dim: int | None = None) -> Tensor:
    """Σ x·m / max(Σ m, 1), or ``x.mean()`` without a mask; for inputs already checked.

    With ``dim`` the sums run over that axis only and the result is ``x`` without it; a row that
    keeps nothing gives 0 (0 / 1), with a gradient of 0. ``x`` must be finite where ``mask`` is 0
    (0·inf is NaN): the formulas pass it through :func:`zero_outside` first.
    """
    if mask is None:
        return x.mean() if dim is None else x.mean(dim=dim)
    weights = mask.to(x.dtype)
    if dim is None:
        return (x * weights).sum() / weights.sum().clamp(min=1.0)
    return (x * weights).sum(dim=dim) / weights.sum(dim=dim).clamp(min=1.0)


def zero_outside(mask: Tensor | None, *xs: Tensor) -> tuple[Tensor, ...]:
    """Each of ``xs`` with its masked-out entries replaced by 0 (all of them without a mask).

    Padding can hold any value, and a formula would turn a large one into inf (exp(1e30)) and
    then 0·inf into NaN, in the value and in the gradient. Replaced before any arithmetic, a
    masked-out entry reaches neither; its gradient is exactly 0.

    Outside vmap the formulas have refused NaN and inf in every entry already, so x·m replaces
    the padding exactly; on CPU a ``torch.where`` with a bool condition costs about 25 times as
    much as that product, and these run in every minibatch of every seed. Under vmap nothing is
    checked and a NaN may sit in the padding (NaN·0 is NaN), so there ``torch.where`` does it.
    """
    if mask is None:
        return xs
    weights = None
    zeroed = []
    for x in xs:
        if _checks.batched(x):
            zeroed.append(torch.where(mask, x, 0.0))
            continue
        if weights is None:
            weights = mask.to(x.dtype)
        zeroed.append(x * weights)
    return tuple(zeroed)


def var(x: Tensor, mask: Tensor, dim: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """The sample variance over the kept entries, Σ m (x − μ)² / (Σ m − 1), μ = Σ m x / Σ m.

    Returns ``(variance, centered, enough)``: ``centered`` is x − μ on the kept entries and 0
    elsewhere, ``enough`` is Σ m ≥ 2. Where there are fewer than 2 the variance is set to 1, so
    that dividing by it or taking its square root stays finite, value and gradient. Without
    ``dim`` the sums are over every entry and ``variance`` and ``enough`` are 0-dim; with ``dim``
    they are per row, and keep ``dim`` as an axis of size 1 so that they broadcast against ``x``.
    ``x`` must be finite where ``mask`` is 0 (:func:`zero_outside`).
    """
    count = _sum(mask, dim).to(x.dtype)
    enough = count >= 2
    centered = torch.where(mask, x - _sum(x * mask.to(x.dtype), dim) / count.clamp(min=1.0), 0.0)
    sum_of_squares = _sum(centered.square(), dim)
    return torch.where(enough, sum_of_squares / (count - 1).clamp(min=1.0), 1.0), centered, enough
