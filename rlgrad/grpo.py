"""GRPO's token-level loss for language models (course page E.3.4 and the variants in use today).

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

GSPO (Zheng et al. 2025, :func:`gspo_loss`) replaces the token ratio r with one ratio per
completion, the geometric mean of its token ratios (:func:`sequence_log_ratios`), and clips that:
the reward is given per completion, so the off-policy correction is made per completion too.
DAPO's overlong penalty, which acts on the rewards, is in :mod:`rlgrad.grpo_variants`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rlgrad import _checks, _masks
from rlgrad.distributions import kl_k3
from rlgrad.errors import BadInputError
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
    mask = _checks.flags(fn, "mask", mask, "x", x)
    return _masks.mean(x, mask, dim)


# The aggregations reduce the last two axes [B, L] and keep any leading (seed) axes.


def token_mean(losses: Tensor, mask: Tensor, max_length: int) -> Tensor:
    """DAPO's aggregation: Σ_{b,t} m ℓ / Σ_{b,t} m, each generated token weighs the same."""
    if losses.dim() == 2:
        return masked_mean(losses, mask)
    return masked_mean(losses.flatten(-2), mask.flatten(-2), dim=-1)


def seq_mean(losses: Tensor, mask: Tensor, max_length: int) -> Tensor:
    """The original GRPO aggregation: (1/B) Σ_b (Σ_t m ℓ / Σ_t m), each completion weighs the
    same, so a token of a short completion weighs more than one of a long completion."""
    return masked_mean(losses, mask, dim=-1).mean(dim=-1)


def const_norm(losses: Tensor, mask: Tensor, max_length: int) -> Tensor:
    """Dr. GRPO's aggregation: Σ_{b,t} m ℓ / (B · L_max), with a constant L_max, no length bias."""
    return (losses * mask).sum(dim=(-2, -1)) / (losses.shape[-2] * max_length)


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

    Many seeds trained at once (GRPO on Gymnasium) pass ``[S, B, L]`` tensors and get one loss
    per seed, ``[S]``: seed s's loss is the call on its ``[B, L]`` slices.

    Args:
        log_probs: ``[B, L]`` (or ``[S, B, L]``) log π_θ of the generated tokens,
            differentiable; padding entries must be finite too (0, say), as the mask multiplies
            them.
        old_log_probs: ``[B, L]`` log π_old at sampling time; detached.
        advantages: ``[B]`` per completion (or ``[B, L]`` per token); detached.
        mask: ``[B, L]`` bool or 0/1: 1 on generated tokens (through EOS), 0 on padding.
        clip_eps: ε_low > 0.
        clip_eps_high: ε_high > 0, or None for ε_low.
        ref_log_probs: ``[B, L]`` log π_ref of the frozen reference, needed when β > 0.
        beta: β ≥ 0, the KL coefficient.
        aggregation: ``token_mean``, ``seq_mean`` or ``const_norm``.
        max_length: L_max for ``const_norm`` (default: L, the padded length).

    (With ``[S, B, L]`` every ``[B, ...]`` shape gains the leading S.)

    Returns:
        A 0-dim tensor, or ``[S]``.

    Raises:
        ValueError: on a wrong shape, an empty batch (B = 0 or L = 0), a non-finite entry or an
            option out of range.
        TypeError: on a non-tensor or a non-float tensor.

    Example (one completion of two tokens, r = 1, Â = 2: L = −2):
        >>> z = torch.zeros(1, 2)
        >>> grpo_token_loss(z, z, torch.tensor([2.0]), torch.ones(1, 2))
        tensor(-2.)
    """
    fn = "grpo_token_loss"
    log_probs, old_log_probs, mask = _token_tensors(
        fn, log_probs, old_log_probs, mask, seed_axis=True
    )
    # [0, L] or [B, 0]: seq_mean and const_norm would divide 0 by 0, token_mean give a silent 0
    _checks.non_empty(fn, "log_probs", log_probs)
    advantages = _advantages(fn, advantages, log_probs, per_token=True)
    clip_eps, clip_eps_high, max_length = _loss_options(
        fn, clip_eps, clip_eps_high, beta, ref_log_probs, aggregation, max_length, log_probs
    )
    ratios = torch.exp(log_probs - old_log_probs.detach())
    losses = -ppo_objective(ratios, advantages, clip_eps, clip_eps_high)
    return _penalized_aggregate(
        fn, losses, log_probs, ref_log_probs, beta, mask, aggregation, max_length
    )


def sequence_log_ratios(log_probs: Tensor, old_log_probs: Tensor, mask: Tensor) -> Tensor:
    """GSPO's length-normalized sequence log-ratio, the log of the geometric mean of token ratios.

        log s_b = (1/|o_b|) Σ_t m_{b,t} (log π_θ(o_{b,t}) − log π_old(o_{b,t})),
        |o_b| = Σ_t m_{b,t}

    so s_b = (π_θ(o_b | q) / π_old(o_b | q))^{1/|o_b|}. A completion with no unmasked token gets
    log s = 0 (s = 1). ``old_log_probs`` is detached.

    Args:
        log_probs: ``[B, L]`` log π_θ of the generated tokens, differentiable.
        old_log_probs: ``[B, L]`` log π_old at sampling time.
        mask: ``[B, L]`` bool or 0/1: 1 on generated tokens, 0 on padding.

    Returns:
        ``[B]``, differentiable in ``log_probs``.

    Example (token ratios 2 and 8 have geometric mean 4; the padded third token is left out):
        >>> log_probs = torch.log(torch.tensor([[2.0, 8.0, 100.0]]))
        >>> sequence_log_ratios(log_probs, torch.zeros(1, 3), torch.tensor([[1, 1, 0]])).exp()
        tensor([4.])
    """
    fn = "sequence_log_ratios"
    log_probs, old_log_probs, mask = _token_tensors(fn, log_probs, old_log_probs, mask)
    return masked_mean(log_probs - old_log_probs.detach(), mask, dim=-1)


def gspo_loss(
    log_probs: Tensor,
    old_log_probs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    clip_eps: float = 3e-4,
    clip_eps_high: float | None = None,
    ref_log_probs: Tensor | None = None,
    beta: float = 0.0,
    aggregation: str = "seq_mean",
    max_length: int | None = None,
) -> Tensor:
    """GSPO's loss: PPO's clipped surrogate on one sequence ratio per completion.

        s_b = exp(log s_b)                                   (:func:`sequence_log_ratios`)
        ℓ_{b,t} = −min(s_b Â_b, clip(s_b, 1 − ε, 1 + ε_high) Â_b) + β·k3(π_θ ‖ π_ref)_{b,t}
        L = aggregation(ℓ, mask)

    With the default ``seq_mean`` and β = 0 this is GSPO's objective (Zheng et al. 2025, eq. 5),
    negated: L = −(1/B) Σ_b min(s_b Â_b, clip(s_b, 1 − ε, 1 + ε_high) Â_b). As with TRL's
    ``importance_sampling_level="sequence"``, s_b keeps its gradient and is broadcast to every
    token of its completion, so the KL term and the other aggregations work as in
    :func:`grpo_token_loss` (``token_mean`` weighs a completion by its length).

    Inside the clip range, ∂L/∂log π_θ(o_{b,t}) = −w_{b,t} s_b Â_b, with w the aggregation's token
    weight (1/(B·|o_b|) for ``seq_mean``): the gradient of a token whose ratio is s_b. The paper's
    GSPO-token, s_{b,t} = sg[s_b]·π_θ(o_{b,t})/sg[π_θ(o_{b,t})], has the same value and gradient
    when each completion has one advantage, so it has no function of its own here.

    A sequence ratio is a mean of many token log-ratios and stays much closer to 1 than a token
    ratio; the paper clips it with ε = 3e-4 and ε_high = 4e-4 (GRPO uses 0.2).

    Args:
        log_probs: ``[B, L]`` log π_θ of the generated tokens, differentiable; padding entries
            must be finite (0, say).
        old_log_probs: ``[B, L]`` log π_old at sampling time; detached.
        advantages: ``[B]``, one per completion; detached.
        mask: ``[B, L]`` bool or 0/1: 1 on generated tokens (through EOS), 0 on padding.
        clip_eps: ε_low > 0.
        clip_eps_high: ε_high > 0, or None for ε_low.
        ref_log_probs: ``[B, L]`` log π_ref of the frozen reference, needed when β > 0.
        beta: β ≥ 0, the KL coefficient.
        aggregation: ``seq_mean`` (GSPO), ``token_mean`` or ``const_norm``.
        max_length: L_max for ``const_norm`` (default: L, the padded length).

    Returns:
        A 0-dim tensor.

    Raises:
        ValueError: on a wrong shape, an empty batch (B = 0 or L = 0), a non-finite entry or an
            option out of range.
        TypeError: on a non-tensor or a non-float tensor.

    Example (token ratios 2 and 8 give s = 4; with Â = 1 the clip at 1 + 0.2 binds: L = −1.2;
    the second completion has s = 1 and Â = −1: L = +1; the mean is −0.1):
        >>> log_probs = torch.log(torch.tensor([[2.0, 8.0], [1.0, 1.0]]))
        >>> z, m = torch.zeros(2, 2), torch.ones(2, 2)
        >>> gspo_loss(log_probs, z, torch.tensor([1.0, -1.0]), m, clip_eps=0.2)
        tensor(-0.1000)
    """
    fn = "gspo_loss"
    log_probs, old_log_probs, mask = _token_tensors(fn, log_probs, old_log_probs, mask)
    # [0, L] or [B, 0]: seq_mean and const_norm would divide 0 by 0, token_mean give a silent 0
    _checks.non_empty(fn, "log_probs", log_probs)
    advantages = _advantages(fn, advantages, log_probs, per_token=False)
    clip_eps, clip_eps_high, max_length = _loss_options(
        fn, clip_eps, clip_eps_high, beta, ref_log_probs, aggregation, max_length, log_probs
    )
    ratios = torch.exp(sequence_log_ratios(log_probs, old_log_probs, mask))  # [B]
    ratios = ratios[:, None].expand_as(log_probs)  # [B, L]: one ratio for every token
    losses = -ppo_objective(ratios, advantages, clip_eps, clip_eps_high)
    return _penalized_aggregate(
        fn, losses, log_probs, ref_log_probs, beta, mask, aggregation, max_length
    )


# ----- the argument checks and the final step that GRPO's loss variants share -----


def _token_tensors(
    fn: str, log_probs: Tensor, old_log_probs: Tensor, mask: Tensor, seed_axis: bool = False
) -> tuple[Tensor, Tensor, Tensor]:
    """``log_probs`` and ``old_log_probs`` as finite ``[B, L]`` floats (or ``[S, B, L]`` with
    ``seed_axis``), ``mask`` as 0/1 floats."""
    expected = "[B, L] or [S, B, L]" if seed_axis else "[B, L]"
    log_probs = _checks.floats(fn, "log_probs", log_probs)
    _checks.rank_at_least(fn, "log_probs", log_probs, 2, expected)
    if log_probs.dim() not in ((2, 3) if seed_axis else (2,)):
        raise BadInputError(
            f"{fn}(): 'log_probs' must have shape {expected}; got {tuple(log_probs.shape)}"
        )
    old_log_probs = _checks.floats(fn, "old_log_probs", old_log_probs, "log_probs", log_probs)
    mask = _checks.flags(fn, "mask", mask, "log_probs", log_probs).to(log_probs.dtype)
    return log_probs, old_log_probs, mask


def _advantages(fn: str, advantages: Tensor, log_probs: Tensor, per_token: bool) -> Tensor:
    """``advantages`` ``[*S, B]`` (or ``[*S, B, L]`` when ``per_token``) as finite floats
    ``[*S, B, L]``, for ``log_probs`` ``[*S, B, L]``."""
    advantages = _checks.tensor(fn, "advantages", advantages)
    if advantages.shape == log_probs.shape[:-1]:
        advantages = advantages.unsqueeze(-1)
    elif not per_token or advantages.shape != log_probs.shape:
        also = f" or {tuple(log_probs.shape)} (one per token)" if per_token else ""
        raise BadInputError(
            f"{fn}(): 'advantages' must have shape {tuple(log_probs.shape[:-1])} (one per "
            f"completion){also}; got {tuple(advantages.shape)}"
        )
    return _checks.floats(fn, "advantages", advantages.expand_as(log_probs))


def _loss_options(
    fn: str,
    clip_eps: float,
    clip_eps_high: float | None,
    beta: float,
    ref_log_probs: Tensor | None,
    aggregation: str,
    max_length: int | None,
    log_probs: Tensor,
) -> tuple[float, float | None, int]:
    """The checked clip ranges and L_max (the padded length L unless given)."""
    if aggregation not in AGGREGATIONS:
        raise BadInputError(
            f"{fn}(): 'aggregation' must be one of {', '.join(AGGREGATIONS)}; got {aggregation!r}"
        )
    clip_eps = _checks.positive(fn, "clip_eps", clip_eps)
    if clip_eps_high is not None:
        clip_eps_high = _checks.positive(fn, "clip_eps_high", clip_eps_high)
    beta = _checks.non_negative(fn, "beta", beta)
    if beta > 0 and ref_log_probs is None:
        raise BadInputError(f"{fn}(): 'ref_log_probs' is needed when beta = {beta} > 0")
    if max_length is None:
        max_length = log_probs.shape[-1]
    elif isinstance(max_length, bool) or not isinstance(max_length, int) or max_length <= 0:
        raise BadInputError(f"{fn}(): 'max_length' must be a positive integer; got {max_length!r}")
    return clip_eps, clip_eps_high, max_length


def _penalized_aggregate(
    fn: str,
    losses: Tensor,
    log_probs: Tensor,
    ref_log_probs: Tensor | None,
    beta: float,
    mask: Tensor,
    aggregation: str,
    max_length: int,
) -> Tensor:
    """aggregation(ℓ + β·k3(π_θ ‖ π_ref), mask): the last step of every GRPO loss variant."""
    if beta > 0:
        ref_log_probs = _checks.floats(fn, "ref_log_probs", ref_log_probs, "log_probs", log_probs)
        losses = losses + beta * kl_k3(log_probs, ref_log_probs)
    return AGGREGATIONS[aggregation](losses, mask, max_length)
