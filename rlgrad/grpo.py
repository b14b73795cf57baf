"""GRPO's token-level loss for language models (seed E.3.4 and the variants in use today).

A batch holds B completions of up to L tokens, ``[B, L]``, with a mask that is 1 on the tokens
the policy generated (up to and including EOS) and 0 on padding. Every completion carries its
group-relative advantage (:func:`rlgrad.returns.group_advantages`), shared by all its tokens. The
per-token loss is PPO's clipped surrogate plus an optional KL penalty to a frozen reference:

    ℓ_{b,t} = −min(r Â_b, clip(r, 1 − ε_low, 1 + ε_high) Â_b) + β·k3_{b,t},
    r = π_θ(o_t | q, o_<t) / π_old(o_t | q, o_<t)

How ℓ is averaged over tokens is a real choice, and each is one small function:

* ``token_mean`` (DAPO): Σ m ℓ / Σ m, every token weighs the same, whatever its completion's
  length;
* ``seq_mean`` (the original GRPO): the mean over completions of each completion's token mean,
  so a token of a short completion weighs more (the length bias Dr. GRPO points out);
* ``const_norm`` (Dr. GRPO): Σ m ℓ / (B · L_max) with a fixed L_max, an unbiased sum.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rlgrad import _checks
from rlgrad.distributions import kl_k3
from rlgrad.policy import ppo_objective


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """The mean of ``x`` over the entries where ``mask`` is 1: Σ x·m / Σ m (over ``dim``, or all).

    A slice with no unmasked entry gives 0 (it holds no token), never NaN.

    Args:
        x: ``[*S]`` floats.
        mask: ``[*S]`` bool or 0/1, the shape of ``x``.
        dim: the dimension to reduce, or None for all of them.

    Returns:
        A 0-dim tensor, or ``x`` without ``dim``; differentiable in ``x``.

    Example (the padded third entry is left out: (1 + 3) / 2):
        >>> masked_mean(torch.tensor([1.0, 3.0, 100.0]), torch.tensor([1, 1, 0]))
        tensor(2.)
    """
    fn = "masked_mean"
    x = _checks.floats(fn, "x", x)
    mask = _checks.flags(fn, "mask", mask, "x", x).to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1.0)
    return (x * mask).sum(dim=dim) / mask.sum(dim=dim).clamp(min=1.0)


def token_mean(losses: Tensor, mask: Tensor, max_length: int) -> Tensor:
    """DAPO's aggregation: Σ_{b,t} m ℓ / Σ_{b,t} m, each generated token weighs the same."""
    return masked_mean(losses, mask)


def seq_mean(losses: Tensor, mask: Tensor, max_length: int) -> Tensor:
    """The original GRPO aggregation: (1/B) Σ_b (Σ_t m ℓ / Σ_t m), each completion weighs the
    same, so a token of a short completion weighs more than one of a long completion."""
    return masked_mean(losses, mask, dim=-1).mean()


def const_norm(losses: Tensor, mask: Tensor, max_length: int) -> Tensor:
    """Dr. GRPO's aggregation: Σ_{b,t} m ℓ / (B · L_max), with a constant L_max, no length bias."""
    return (losses * mask).sum() / (losses.shape[0] * max_length)


AGGREGATIONS = {"token_mean": token_mean, "seq_mean": seq_mean, "const_norm": const_norm}


def grpo_token_loss(
    log_probs: Tensor,
    old_log_probs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    clip_eps: float = 0.2,
    clip_eps_high: float | None = None,
    ref_log_probs: Tensor | None = None,
    beta: float = 0.0,
    aggregation: str = "token_mean",
    max_length: int | None = None,
) -> Tensor:
    """GRPO's loss: the clipped surrogate per token, a β·k3 KL penalty, and an aggregation.

        ℓ_{b,t} = −min(r Â_b, clip(r, 1 − ε, 1 + ε_high) Â_b) + β·k3(π_θ ‖ π_ref),
        r = exp(log π_θ − log π_old),    L = aggregation(ℓ, mask)

    A group whose rewards are all equal has Â = 0 and contributes no policy gradient.

    Args:
        log_probs: ``[B, L]`` log π_θ of the generated tokens, differentiable; padding entries
            must be finite too (0, say), as the mask multiplies them.
        old_log_probs: ``[B, L]`` log π_old at sampling time; detached.
        advantages: ``[B]`` per completion (or ``[B, L]`` per token); detached.
        mask: ``[B, L]`` bool or 0/1: 1 on generated tokens (through EOS), 0 on padding.
        clip_eps: ε_low > 0.
        clip_eps_high: ε_high > 0, or None for ε_low.
        ref_log_probs: ``[B, L]`` log π_ref of the frozen reference, needed when β > 0.
        beta: β ≥ 0, the KL coefficient.
        aggregation: ``token_mean``, ``seq_mean`` or ``const_norm``.
        max_length: L_max for ``const_norm`` (default: L, the padded length).

    Returns:
        A 0-dim tensor.

    Example (one completion of two tokens, r = 1, Â = 2: L = −2):
        >>> z = torch.zeros(1, 2)
        >>> grpo_token_loss(z, z, torch.tensor([2.0]), torch.ones(1, 2))
        tensor(-2.)
    """
    fn = "grpo_token_loss"
    log_probs = _checks.floats(fn, "log_probs", log_probs)
    _checks.rank_at_least(fn, "log_probs", log_probs, 2, "[B, L]")
    if log_probs.dim() != 2:
        raise ValueError(
            f"{fn}(): 'log_probs' must have shape [B, L]; got {tuple(log_probs.shape)}"
        )
    old_log_probs = _checks.floats(fn, "old_log_probs", old_log_probs, "log_probs", log_probs)
    mask = _checks.flags(fn, "mask", mask, "log_probs", log_probs).to(log_probs.dtype)
    advantages = _checks.tensor(fn, "advantages", advantages)
    if advantages.shape == log_probs.shape[:1]:
        advantages = advantages[:, None]
    elif advantages.shape != log_probs.shape:
        raise ValueError(
            f"{fn}(): 'advantages' must have shape {tuple(log_probs.shape[:1])} (one per "
            f"completion) or {tuple(log_probs.shape)} (one per token); "
            f"got {tuple(advantages.shape)}"
        )
    advantages = _checks.floats(fn, "advantages", advantages.expand_as(log_probs))
    if aggregation not in AGGREGATIONS:
        raise ValueError(
            f"{fn}(): 'aggregation' must be one of {', '.join(AGGREGATIONS)}; got {aggregation!r}"
        )
    clip_eps = _checks.positive(fn, "clip_eps", clip_eps)
    if clip_eps_high is not None:
        clip_eps_high = _checks.positive(fn, "clip_eps_high", clip_eps_high)
    beta = _checks.non_negative(fn, "beta", beta)
    if beta > 0 and ref_log_probs is None:
        raise ValueError(f"{fn}(): 'ref_log_probs' is needed when beta = {beta} > 0")
    if max_length is None:
        max_length = log_probs.shape[1]
    elif isinstance(max_length, bool) or not isinstance(max_length, int) or max_length <= 0:
        raise ValueError(f"{fn}(): 'max_length' must be a positive integer; got {max_length!r}")
    ratios = torch.exp(log_probs - old_log_probs.detach())
    losses = -ppo_objective(ratios, advantages, clip_eps, clip_eps_high)
    if beta > 0:
        ref_log_probs = _checks.floats(fn, "ref_log_probs", ref_log_probs, "log_probs", log_probs)
        losses = losses + beta * kl_k3(log_probs, ref_log_probs)
    return AGGREGATIONS[aggregation](losses, mask, max_length)
