"""Policy distributions: log-probabilities, entropies (course exercises), GRPO's KL penalty."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from rlgrad import _checks
from rlgrad.errors import BadInputError


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
        raise BadInputError(f"{fn}(): 'logits' must have at least one action; got A = 0")
    # Under vmap the values cannot be read: take the path that handles −inf, which gives the
    # plain path's numbers where nothing is masked.
    if not _checks.batched(logits):
        if _checks.all_finite(logits):  # the common case: nothing is masked, nothing to check
            log_probs = torch.log_softmax(logits, dim=-1)
            return -(log_probs.exp() * log_probs).sum(dim=-1)
        _masks_only(fn, "logits", logits)
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


def categorical_log_prob(logits: Tensor, actions: Tensor) -> Tensor:
    """The log-probability of chosen actions under a softmax policy:

        log π(a | s) = z_a − log Σ_b exp(z_b),  z = logits

    Args:
        logits: ``[*B, A]``, finite.
        actions: ``[*B]`` integer action indices in [0, A).

    Returns:
        ``[*B]``, differentiable with respect to ``logits``.

    Example (logits [log 1, log 3]: π = [0.25, 0.75], log 0.75 = −0.2877):
        >>> categorical_log_prob(torch.tensor([[1.0, 3.0]]).log(), torch.tensor([1]))
        tensor([-0.2877])
    """
    fn = "categorical_log_prob"
    logits = _checks.floats(fn, "logits", logits)
    _checks.rank_at_least(fn, "logits", logits, 1, "[*B, A]")
    actions = _checks.tensor(fn, "actions", actions, floating=False)
    if actions.shape != logits.shape[:-1]:
        raise BadInputError(
            f"{fn}(): 'actions' must have the shape of 'logits' without its last dimension "
            f"{tuple(logits.shape[:-1])}; got {tuple(actions.shape)}"
        )
    log_probs = torch.log_softmax(logits, dim=-1)
    return log_probs.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)


def gaussian_log_prob(actions: Tensor, means: Tensor, log_stds: Tensor) -> Tensor:
    """The log-density of actions under a diagonal Gaussian policy N(μ, diag(σ²)):

        log π(a | s) = Σ_i [−(a_i − μ_i)² / (2σ_i²) − log σ_i − ½ log 2π]

    Args:
        actions: ``[*B, D]`` sampled actions (before any clipping to the action bounds).
        means: ``[*B, D]`` μ, differentiable.
        log_stds: ``[D]`` or ``[*B, D]`` log σ, differentiable.

    Returns:
        ``[*B]``, summed over the D action dimensions.

    Example (a = μ, σ = 1: −½ log 2π = −0.9189):
        >>> gaussian_log_prob(torch.zeros(1, 1), torch.zeros(1, 1), torch.zeros(1))
        tensor([-0.9189])
    """
    fn = "gaussian_log_prob"
    means = _checks.floats(fn, "means", means)
    _checks.rank_at_least(fn, "means", means, 1, "[*B, D]")
    actions = _checks.floats(fn, "actions", actions, "means", means)
    log_stds = _checks.floats(fn, "log_stds", log_stds)
    if log_stds.shape[-1:] != means.shape[-1:]:
        raise BadInputError(
            f"{fn}(): 'log_stds' must end with the action dimension D = {means.shape[-1]}; "
            f"got shape {tuple(log_stds.shape)}"
        )
    z = (actions - means) * torch.exp(-log_stds)
    return (-0.5 * z**2 - log_stds - 0.5 * math.log(2 * math.pi)).sum(dim=-1)


def gaussian_entropy(log_stds: Tensor) -> Tensor:
    """The entropy of a diagonal Gaussian, H = Σ_i (log σ_i + ½ log 2πe); it does not depend on μ.

    Args:
        log_stds: ``[*B, D]`` (or ``[D]``) log σ, differentiable.

    Returns:
        ``[*B]`` (a 0-dim tensor for ``[D]``).

    Example (σ = 1 in one dimension: ½ log 2πe = 1.4189):
        >>> gaussian_entropy(torch.zeros(1))
        tensor(1.4189)
    """
    fn = "gaussian_entropy"
    log_stds = _checks.floats(fn, "log_stds", log_stds)
    _checks.rank_at_least(fn, "log_stds", log_stds, 1, "[*B, D]")
    return (log_stds + 0.5 * math.log(2 * math.pi * math.e)).sum(dim=-1)


def entropy_loss(mean_entropy: Tensor, ent_coef: float) -> Tensor:
    """The entropy bonus as a loss term to add, L_H = −β·H̄: descending it raises the entropy.

    With β = 0 it is a constant 0 that keeps H̄ out of the backward pass (a trainer that only logs
    the entropy pays nothing for its gradient); with β > 0 its gradient is −β ∇H̄.

    Args:
        mean_entropy: a 0-dim tensor H̄, the entropy averaged as the trainer averages its loss
            (over samples, or over the tokens of a mask); or ``[S]``, one average per seed of a
            trainer of many seeds.
        ent_coef: β ≥ 0.

    Returns:
        The shape of ``mean_entropy``.

    Example (β = 0.01, H̄ = log 2 = 0.6931: −0.0069):
        >>> entropy_loss(torch.tensor(0.6931), 0.01)
        tensor(-0.0069)
    """
    fn = "entropy_loss"
    mean_entropy = _checks.floats(fn, "mean_entropy", mean_entropy)
    if mean_entropy.dim() > 1:
        raise BadInputError(
            f"{fn}(): 'mean_entropy' must be a 0-dim tensor (an average) or one average per "
            f"seed, [S]; got shape {tuple(mean_entropy.shape)}"
        )
    ent_coef = _checks.non_negative(fn, "ent_coef", ent_coef)
    if ent_coef == 0.0:
        return torch.zeros_like(mean_entropy).detach()
    return -ent_coef * mean_entropy


def squashed_gaussian_log_prob(
    pre_tanh_actions: Tensor,
    means: Tensor,
    log_stds: Tensor,
    action_scale: float | Tensor = 1.0,
) -> Tensor:
    """The log-density of SAC's squashed Gaussian action a = scale·tanh(u) + shift, u ~ N(μ, σ²):

        log π(a | s) = Σ_i [log N(u_i; μ_i, σ_i) − log scale_i − log(1 − tanh² u_i)]
        log(1 − tanh² u) = 2(log 2 − u − softplus(−2u))

    The change of variables divides the Gaussian density by |da/du| = scale·(1 − tanh² u) per
    dimension (Haarnoja et al. 2018, appendix C); the shift moves no mass and does not appear.
    The second line is the same quantity written so that it stays finite where 1 − tanh² u
    rounds to 0 (|u| ≳ 9 in float32), which the direct form turns into log 0 = −inf.

    Args:
        pre_tanh_actions: ``[*B, D]`` u, the Gaussian sample before the squash.
        means: ``[*B, D]`` μ, differentiable.
        log_stds: ``[D]`` or ``[*B, D]`` log σ, differentiable.
        action_scale: scale > 0, a number or a ``[D]`` tensor: (high − low) / 2 of the action box.

    Returns:
        ``[*B]``, summed over the D action dimensions.

    Example (u = μ = 0, σ = 1, scale 1: the squash has slope 1 at 0, so −½ log 2π = −0.9189;
    scale 2 halves the density: −0.9189 − log 2 = −1.6121):
        >>> u = torch.zeros(1, 1)
        >>> squashed_gaussian_log_prob(u, u, torch.zeros(1)), squashed_gaussian_log_prob(
        ...     u, u, torch.zeros(1), action_scale=2.0)
        (tensor([-0.9189]), tensor([-1.6121]))
    """
    fn = "squashed_gaussian_log_prob"
    means = _checks.floats(fn, "means", means)
    _checks.rank_at_least(fn, "means", means, 1, "[*B, D]")
    pre_tanh_actions = _checks.floats(fn, "pre_tanh_actions", pre_tanh_actions, "means", means)
    if isinstance(action_scale, Tensor):
        action_scale = _checks.floats(fn, "action_scale", action_scale)
        _checks.same_kind(fn, "action_scale", action_scale, "means", means)
        if action_scale.shape not in ((), means.shape[-1:]):
            raise BadInputError(
                f"{fn}(): 'action_scale' must be a number or have shape [D] = "
                f"{tuple(means.shape[-1:])}; got {tuple(action_scale.shape)}"
            )
        if not _checks.batched(action_scale) and bool((action_scale <= 0).any()):
            raise BadInputError(f"{fn}(): 'action_scale' must be > 0; got {action_scale.tolist()}")
        log_scale = action_scale.log().expand(means.shape[-1:]).sum()
    else:
        log_scale = means.shape[-1] * math.log(_checks.positive(fn, "action_scale", action_scale))
    gaussian = gaussian_log_prob(pre_tanh_actions, means, log_stds)
    u = pre_tanh_actions
    log_slopes = 2.0 * (math.log(2.0) - u - torch.nn.functional.softplus(-2.0 * u))
    return gaussian - log_slopes.sum(dim=-1) - log_scale


def _masks_only(fn: str, name: str, logits: Tensor) -> None:
    """Refuse NaN and +inf in ``logits``, and rows with no finite entry; −inf (a mask) passes."""
    invalid = torch.isnan(logits) | torch.isposinf(logits)
    if bool(invalid.any()):
        where = tuple(int(i) for i in invalid.nonzero()[0].tolist())
        raise _checks.NonFiniteError(
            f"{fn}(): '{name}' must be finite or -inf (masked); got {logits[where].item()} "
            f"at index {where}"
        )
    if bool(torch.isneginf(logits).all(dim=-1).any()):
        raise BadInputError(f"{fn}(): every row of '{name}' needs at least one finite entry")


def categorical_kl(logits_p: Tensor, logits_q: Tensor) -> Tensor:
    """The KL divergence between two softmax policies, in closed form:

        KL(p ‖ q) = Σ_a p_a (log p_a − log q_a),   log p = log_softmax(logits_p), likewise q

    ≥ 0, and 0 exactly when p = q. Nothing is detached: for TRPO's KL(π_old ‖ π_θ) pass the old
    logits detached as ``logits_p``. A logit of −inf masks its action: where p_a = 0 the term is
    0 (with a finite gradient), whatever q_a; a −inf in ``logits_q`` where p_a > 0 would make the
    KL infinite and is refused.

    Args:
        logits_p: ``[*B, A]`` logits of p; NaN and +inf refused, −inf masks.
        logits_q: ``[*B, A]`` logits of q, the same shape, dtype and device.

    Returns:
        ``[*B]``, differentiable in both.

    Raises:
        TypeError: a non-floating tensor or mismatched dtypes.
        ValueError: shapes that differ or have no action axis, NaN/+inf, a row with no finite
        logit, or q masked where p is not.

    Example (p = (½, ½), q = (¼, ¾): ½ log(½/¼) + ½ log(½/¾) = ½ log(4/3) = 0.1438):
        >>> categorical_kl(torch.zeros(2), torch.tensor([1.0, 3.0]).log())
        tensor(0.1438)
    """
    fn = "categorical_kl"
    logits_p = _checks.tensor(fn, "logits_p", logits_p)
    _checks.rank_at_least(fn, "logits_p", logits_p, 1, "[*B, A]")
    if logits_p.shape[-1] == 0:
        raise BadInputError(f"{fn}(): 'logits_p' must have at least one action; got A = 0")
    logits_q = _checks.tensor(fn, "logits_q", logits_q)
    _checks.same_shape(fn, "logits_q", logits_q, "logits_p", logits_p)
    _checks.same_kind(fn, "logits_q", logits_q, "logits_p", logits_p)
    log_p = torch.log_softmax(logits_p, dim=-1)
    log_q = torch.log_softmax(logits_q, dim=-1)
    if not (_checks.batched(logits_p) or _checks.batched(logits_q)):  # under vmap: unchecked
        if _checks.all_finite(logits_p) and _checks.all_finite(logits_q):  # nothing masked
            return (log_p.exp() * (log_p - log_q)).sum(dim=-1)
        _masks_only(fn, "logits_p", logits_p)
        _masks_only(fn, "logits_q", logits_q)
    masked = torch.isneginf(logits_p)  # p_a = 0: the term is 0
    infinite = torch.isneginf(logits_q) & ~masked
    if not _checks.batched(infinite) and bool(infinite.any()):
        where = tuple(int(i) for i in infinite.nonzero()[0].tolist())
        raise BadInputError(
            f"{fn}(): 'logits_q' must not mask (-inf) an action that p gives probability > 0, "
            f"where the KL is infinite; got -inf at index {where}"
        )
    # Zero the masked log-ratios before the product: 0·(−inf) and −inf − (−inf) are NaN, and
    # zeroing after the product would still send a NaN gradient back.
    log_ratios = torch.where(masked, 0.0, log_p - log_q)
    return (log_p.exp() * log_ratios).sum(dim=-1)


def _gaussian_log_stds(fn: str, name: str, log_stds: object, means: Tensor) -> Tensor:
    """``[D]`` or the shape of ``means`` (``[*B, D]``), finite, typed like ``means``."""
    log_stds = _checks.floats(fn, name, log_stds)
    _checks.same_kind(fn, name, log_stds, "means_p", means)
    if log_stds.shape not in (means.shape[-1:], means.shape):
        raise BadInputError(
            f"{fn}(): '{name}' must have shape [D] = {tuple(means.shape[-1:])} or the shape of "
            f"'means_p' {tuple(means.shape)}; got {tuple(log_stds.shape)}"
        )
    return log_stds


def gaussian_kl(means_p: Tensor, log_stds_p: Tensor, means_q: Tensor, log_stds_q: Tensor) -> Tensor:
    """The KL divergence between two diagonal Gaussians p = N(μp, σp²), q = N(μq, σq²):

        KL(p ‖ q) = Σ_i [log(σq_i/σp_i) + (σp_i² + (μp_i − μq_i)²) / (2σq_i²) − ½]

    coded per dimension as x + ½ expm1(−2x) + ½ ((μp − μq)/σq)² with x = log σq − log σp, which
    is the same quantity without the cancellation of the ± ½ near p = q. Nothing is detached:
    for TRPO's KL(π_old ‖ π_θ) pass the old mean and log σ detached as p.

    Args:
        means_p: ``[*B, D]`` μp.
        log_stds_p: ``[D]`` or ``[*B, D]`` log σp.
        means_q: ``[*B, D]`` μq.
        log_stds_q: ``[D]`` or ``[*B, D]`` log σq.

    Returns:
        ``[*B]``, summed over the D dimensions, differentiable in all four.

    Raises:
        TypeError: non-floating tensors or mismatched dtypes.
        ValueError: shapes other than the above, or NaN/inf.

    Example (unit variances a mean apart: ½ · 1² = 0.5; equal means, σp = 1, σq = 2:
    log 2 + 1/8 − ½ = 0.3181):
        >>> zero, one = torch.zeros(1), torch.ones(1)
        >>> gaussian_kl(one, zero, zero, zero), gaussian_kl(zero, zero, zero, one * math.log(2))
        (tensor(0.5000), tensor(0.3181))
    """
    fn = "gaussian_kl"
    means_p = _checks.floats(fn, "means_p", means_p)
    _checks.rank_at_least(fn, "means_p", means_p, 1, "[*B, D]")
    means_q = _checks.floats(fn, "means_q", means_q, "means_p", means_p)
    log_stds_p = _gaussian_log_stds(fn, "log_stds_p", log_stds_p, means_p)
    log_stds_q = _gaussian_log_stds(fn, "log_stds_q", log_stds_q, means_p)
    log_ratios = log_stds_q - log_stds_p  # log σq/σp
    z = (means_p - means_q) * torch.exp(-log_stds_q)  # (μp − μq)/σq
    return (log_ratios + 0.5 * torch.expm1(-2.0 * log_ratios) + 0.5 * z**2).sum(dim=-1)
