"""Entropy and divergence of policies (seed exercises; GRPO's KL penalty)."""

from __future__ import annotations

import torch
from torch import Tensor

from rlgrad import _checks


def categorical_entropy(logits: Tensor) -> Tensor:
    """The entropy of a softmax policy, H(π) = −Σ_a π(a) log π(a), with π = softmax(logits).

    0 ≤ H ≤ log A, with log A for the uniform policy. Its derivative with respect to a
    probability is ∂H/∂π(a) = −(log π(a) + 1); an entropy bonus +βH therefore pushes small
    probabilities up and keeps the policy exploring. A logit of −inf masks its action out
    (π = 0 contributes 0, with a finite gradient).

    Args:
        logits: ``[*B, A]``; NaN and +inf are refused, −inf masks; each row needs a finite entry.

    Returns:
        ``[*B]``, differentiable.

    Example (the uniform policy over 4 actions: log 4 = 1.3863):
        >>> categorical_entropy(torch.zeros(4))
        tensor(1.3863)
    """
    fn = "categorical_entropy"
    logits = _checks.tensor(fn, "logits", logits)
    _checks.rank_at_least(fn, "logits", logits, 1, "[*B, A]")
    if logits.shape[-1] == 0:
        raise ValueError(f"{fn}(): 'logits' must have at least one action; got A = 0")
    invalid = torch.isnan(logits) | (logits == float("inf"))
    if bool(invalid.any()):
        where = tuple(int(i) for i in invalid.nonzero()[0].tolist())
        raise ValueError(
            f"{fn}(): 'logits' must be finite or -inf (masked); got {logits[where].item()} "
            f"at index {where}"
        )
    if bool((logits == float("-inf")).all(dim=-1).any()):
        raise ValueError(f"{fn}(): every row of 'logits' needs at least one finite entry")
    log_probs = torch.log_softmax(logits, dim=-1)
    # Masked actions have π = 0 and log π = −inf; 0·(−inf) is NaN, so those terms are zeroed
    # before the product (zeroing after it would still send a NaN gradient back).
    safe_log_probs = torch.where(torch.isneginf(log_probs), 0.0, log_probs)
    return -(log_probs.exp() * safe_log_probs).sum(dim=-1)


def kl_k3(log_probs: Tensor, ref_log_probs: Tensor) -> Tensor:
    """The per-sample "k3" estimate of KL(π_θ ‖ π_ref), as GRPO's penalty uses it:

        k3 = exp(log π_ref − log π_θ) − (log π_ref − log π_θ) − 1

    Each term is ≥ 0 and its expectation under π_θ is exactly the KL (Schulman 2020,
    "Approximating KL divergence"; DeepSeekMath, eq. 4). The reference policy is frozen, so
    ``ref_log_probs`` is detached.

    Args:
        log_probs: ``[*B]`` log π_θ of the sampled tokens or actions, differentiable.
        ref_log_probs: ``[*B]`` log π_ref of the same samples; detached here.

    Returns:
        ``[*B]`` (not averaged: GRPO masks and aggregates per token).

    Example (log π_ref − log π_θ = log 2: 2 − 0.6931 − 1 = 0.3069):
        >>> kl_k3(torch.tensor([0.25]).log(), torch.tensor([0.5]).log())
        tensor([0.3069])
    """
    fn = "kl_k3"
    log_probs = _checks.floats(fn, "log_probs", log_probs)
    ref_log_probs = _checks.floats(fn, "ref_log_probs", ref_log_probs, "log_probs", log_probs)
    log_ratio = ref_log_probs.detach() - log_probs
    return torch.expm1(log_ratio) - log_ratio
