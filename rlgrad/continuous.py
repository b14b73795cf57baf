"""Off-policy continuous control (SAC, TD3 and CrossQ): critic targets, target smoothing, actor
and temperature losses.

SAC (Haarnoja et al. 2018) maximizes the return plus α times the policy's entropy, the course's
max-entropy objective E[Σ_t γ^t (r_t + αH(π(·|s_t)))]; TD3 (Fujimoto et al. 2018) is its
deterministic cousin. Both keep K critics (usually two) and bootstrap from the smallest of
their target copies, which counters the upward bias a max over noisy estimates has. CrossQ
(Bhatt et al. 2024) is SAC without the target copies: batch-normalised critics evaluate (s, a)
and (s′, a′) in one joint pass and bootstrap from its detached second half.

| Symbol      | Meaning                                        | Shape      |
|-------------|------------------------------------------------|------------|
| Q⁻_k(s′,a′) | the k-th target critic at the next state        | ``[*B, K]`` |
| log π(a′|s′) | the current policy's log-density of a′ ~ π    | ``[*B]``   |
| α           | the entropy temperature (α = exp log α)         | scalar     |
| H̄           | the target entropy (−dim A by default in SAC)   | scalar     |

Targets are constants for the critic step, and α is a constant for the actor step: every loss
here detaches what it does not train and says so.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rlgrad import _checks
from rlgrad.errors import BadInputError


def _critic_target_inputs(
    fn: str, rewards: object, next_q_targets: object, terminated: object, gamma: object
) -> tuple[Tensor, Tensor, Tensor, float | Tensor]:
    """The checked common inputs of a bootstrapped target from K critics."""
    rewards = _checks.floats(fn, "rewards", rewards)
    next_q_targets = _checks.floats(fn, "next_q_targets", next_q_targets)
    _checks.same_kind(fn, "next_q_targets", next_q_targets, "rewards", rewards)
    if next_q_targets.dim() != rewards.dim() + 1 or next_q_targets.shape[:-1] != rewards.shape:
        raise BadInputError(
            f"{fn}(): 'next_q_targets' must have shape {(*rewards.shape, 'K')} (the shape of "
            f"'rewards' plus a critic axis); got {tuple(next_q_targets.shape)}"
        )
    if next_q_targets.shape[-1] == 0:
        raise BadInputError(f"{fn}(): 'next_q_targets' must hold at least one critic; got K = 0")
    terminated = _checks.flags(fn, "terminated", terminated, "rewards", rewards)
    gamma = _checks.discounts(fn, "gamma", gamma, "rewards", rewards)
    return rewards, next_q_targets, terminated, gamma


def clipped_double_q_targets(
    rewards: Tensor, next_q_targets: Tensor, terminated: Tensor, gamma: float | Tensor
) -> Tensor:
    """TD3's critic targets, y = r + γ(1 − term)·min_k Q⁻_k(s′, a′).

    The clipped double-Q target (Fujimoto et al. 2018, eq. 10): each target critic
    overestimates where its own errors happen to be high, and the minimum over K of them
    cancels most of that bias. It is :func:`soft_q_targets` at α = 0. Only termination removes
    the bootstrap; at a time-limit truncation s′ is the true final observation.

    Args:
        rewards: ``[*B]`` r, or n-step returns.
        next_q_targets: ``[*B, K]`` Q⁻_k(s′, a′) from the K target critics, a′ the (smoothed)
            target action.
        terminated: ``[*B]`` bool or 0/1.
        gamma: γ ∈ [0, 1], or a ``[*B]`` tensor of per-sample discounts (γ^K of n-step returns).

    Returns:
        ``[*B]``, detached.

    Example (r = 1, γ = 0.9, critics 3 and 2 → 1 + 0.9·2 = 2.8; a terminal step → y = r):
        >>> clipped_double_q_targets(torch.tensor([1.0, 1.0]), torch.tensor([[3.0, 2.0],
        ...     [3.0, 2.0]]), torch.tensor([False, True]), gamma=0.9)
        tensor([2.8000, 1.0000])
    """
    fn = "clipped_double_q_targets"
    rewards, next_q_targets, terminated, gamma = _critic_target_inputs(
        fn, rewards, next_q_targets, terminated, gamma
    )
    next_values = next_q_targets.detach().min(dim=-1).values
    alive = (~terminated).to(rewards.dtype)
    return (rewards.detach() + gamma * alive * next_values).detach()


def soft_q_targets(
    rewards: Tensor,
    next_q_targets: Tensor,
    next_log_probs: Tensor,
    terminated: Tensor,
    gamma: float | Tensor,
    alpha: float | Tensor,
) -> Tensor:
    """SAC's soft critic targets, y = r + γ(1 − term)·(min_k Q⁻_k(s′, a′) − α log π(a′|s′)).

    The soft Bellman backup (Haarnoja et al. 2018, eqs. 3 and 6, with the clipped double-Q
    minimum of their follow-up paper): the next state's value is its soft value
    V(s′) = E_{a′~π}[Q(s′, a′) − α log π(a′|s′)], estimated with one fresh sample a′ ~ π(·|s′).
    −α log π(a′|s′) is that sample's entropy bonus. At α = 0 it is
    :func:`clipped_double_q_targets`.

    Args:
        rewards: ``[*B]`` r, or n-step returns.
        next_q_targets: ``[*B, K]`` Q⁻_k(s′, a′) from the K target critics.
        next_log_probs: ``[*B]`` log π(a′|s′) of the same a′; detached here.
        terminated: ``[*B]`` bool or 0/1.
        gamma: γ ∈ [0, 1], or a ``[*B]`` tensor of per-sample discounts.
        alpha: α ≥ 0, a number or a 0-dim tensor, or a tensor that broadcasts to ``[*B]``
            (one α per seed: ``[S, 1]``); detached here.

    Returns:
        ``[*B]``, detached.

    Example (r = 1, γ = 0.9, min Q⁻ = 2, α = 0.5, log π = −2: 1 + 0.9(2 + 1) = 3.7):
        >>> soft_q_targets(torch.tensor([1.0]), torch.tensor([[3.0, 2.0]]),
        ...                torch.tensor([-2.0]), torch.tensor([False]), gamma=0.9, alpha=0.5)
        tensor([3.7000])
    """
    return _soft_q_targets(
        "soft_q_targets", rewards, next_q_targets, next_log_probs, terminated, gamma, alpha
    )


def _soft_q_targets(
    fn: str,
    rewards: object,
    next_q_targets: object,
    next_log_probs: object,
    terminated: object,
    gamma: object,
    alpha: object,
) -> Tensor:
    """:func:`soft_q_targets`, its errors naming ``fn`` (the public function called)."""
    rewards, next_q_targets, terminated, gamma = _critic_target_inputs(
        fn, rewards, next_q_targets, terminated, gamma
    )
    next_log_probs = _checks.floats(fn, "next_log_probs", next_log_probs, "rewards", rewards)
    alpha = _temperature(fn, alpha, "rewards", rewards)
    next_values = next_q_targets.detach().min(dim=-1).values - alpha * next_log_probs.detach()
    alive = (~terminated).to(rewards.dtype)
    return (rewards.detach() + gamma * alive * next_values).detach()


def joint_soft_q_targets(
    joint_q_values: Tensor,
    rewards: Tensor,
    next_log_probs: Tensor,
    terminated: Tensor,
    gamma: float | Tensor,
    alpha: float | Tensor,
) -> tuple[Tensor, Tensor]:
    """CrossQ's critic values and soft targets, both read off one joint pass of the critics.

    CrossQ (Bhatt et al. 2024, "CrossQ: Batch Normalization in Deep Reinforcement Learning for
    Greater Sample Efficiency and Simplicity") has no target critics. The K critics, which
    contain batch (re)normalisation, evaluate the replayed pairs (s, a) and the next pairs
    (s′, a′), a′ ~ π(·|s′), in one training-mode pass over the 2B pairs stacked along the batch:

        [Q_k(s, a); Q_k(s′, a′)] = Q_k([s; s′], [a; a′])      ``joint_q_values``, ``[2B, K]``
        y = r + γ(1 − term)·(min_k stop_grad(Q_k(s′, a′)) − α log π(a′|s′))

    and regress Q_k(s, a) on y. Separate passes would normalise the two halves with different
    batch statistics (the policy's a′ are distributed unlike the buffer's a), so the target
    would come from a differently normalised network than the value it trains; the joint pass
    normalises both with the statistics of their mixture. The target is
    :func:`soft_q_targets` of the second half, so it carries no gradient: only Q(s, a) is
    trained.

    Args:
        joint_q_values: ``[2B, *R, K]`` the critics' output on the stacked batch, the B rows of
            (s, a) first, then the B rows of (s′, a′); differentiable.
        rewards: ``[B, *R]`` r, or n-step returns.
        next_log_probs: ``[B, *R]`` log π(a′|s′) of the same a′; detached here.
        terminated: ``[B, *R]`` bool or 0/1.
        gamma: γ ∈ [0, 1], or a ``[B, *R]`` tensor of per-sample discounts.
        alpha: α ≥ 0, a number or a 0-dim tensor (detached here).

    Returns:
        ``(q_values, targets)``: Q_k(s, a), ``[B, *R, K]``, the first half of
        ``joint_q_values`` (differentiable), and y, ``[B, *R]``, detached.

    Raises:
        BadInputError: ``joint_q_values`` not of shape ``[2B, *R, K]`` for ``rewards`` of shape
            ``[B, *R]``; and what :func:`soft_q_targets` refuses.

    Example (B = 1, K = 2: Q(s, a) = (5, 6); Q(s′, a′) = (3, 2), α = 0.5, log π = −2,
    r = 1, γ = 0.9: y = 1 + 0.9·(2 + 1) = 3.7):
        >>> q_values, targets = joint_soft_q_targets(torch.tensor([[5.0, 6.0], [3.0, 2.0]]),
        ...     torch.tensor([1.0]), torch.tensor([-2.0]), torch.tensor([False]), 0.9, 0.5)
        >>> q_values, targets
        (tensor([[5., 6.]]), tensor([3.7000]))
    """
    fn = "joint_soft_q_targets"
    joint_q_values = _checks.tensor(fn, "joint_q_values", joint_q_values)
    rewards = _checks.tensor(fn, "rewards", rewards)
    _checks.rank_at_least(fn, "rewards", rewards, 1, "[B, *R]")
    batch = rewards.shape[0]
    if joint_q_values.shape[:-1] != (2 * batch, *rewards.shape[1:]):
        raise BadInputError(
            f"{fn}(): 'joint_q_values' must have shape {(2 * batch, *rewards.shape[1:], 'K')} "
            f"(Q(s, a) then Q(s′, a′) along the batch of 'rewards' {tuple(rewards.shape)}, "
            f"then a critic axis); got {tuple(joint_q_values.shape)}"
        )
    if joint_q_values.shape[-1] == 0:
        raise BadInputError(f"{fn}(): 'joint_q_values' must hold at least one critic; got K = 0")
    q_values, next_q_values = joint_q_values[:batch], joint_q_values[batch:]  # [B, *R, K] each
    targets = _soft_q_targets(fn, rewards, next_q_values, next_log_probs, terminated, gamma, alpha)
    return q_values, targets


def _per_dimension(fn: str, name: str, value: object, actions: Tensor) -> float | Tensor:
    """A number, or a tensor that broadcasts along the action dimension D."""
    if not isinstance(value, Tensor) or value.dim() == 0:
        return _checks.number(fn, name, value)
    value = _checks.floats(fn, name, value)
    _checks.same_kind(fn, name, value, "actions", actions)
    if value.shape != actions.shape[-1:]:
        raise BadInputError(
            f"{fn}(): '{name}' must be a number or have shape [D] = {tuple(actions.shape[-1:])}; "
            f"got {tuple(value.shape)}"
        )
    return value


def _temperature(fn: str, alpha: object, ref_name: str, ref: Tensor) -> float | Tensor:
    """α ≥ 0: a number (or a one-element tensor) as a float, or a tensor of one α per row that
    broadcasts to ``ref``'s shape (``[S, 1]`` for many seeds' ``[S, B]``), detached."""
    if not isinstance(alpha, Tensor) or alpha.numel() == 1:
        return _checks.non_negative(fn, "alpha", alpha)
    alpha = _checks.floats(fn, "alpha", alpha)
    _checks.same_kind(fn, "alpha", alpha, ref_name, ref)
    try:
        fits = torch.broadcast_shapes(alpha.shape, ref.shape) == ref.shape
    except RuntimeError:  # shapes that do not broadcast at all
        fits = False
    if not fits:
        raise BadInputError(
            f"{fn}(): 'alpha' must be a number or broadcast to the shape of '{ref_name}', "
            f"{tuple(ref.shape)} (one α per row: [S, 1]); got {tuple(alpha.shape)}"
        )
    if bool((alpha < 0).any()):
        raise BadInputError(
            f"{fn}(): 'alpha' must be >= 0; got {alpha.detach().flatten().tolist()}"
        )
    return alpha.detach()


def smoothed_target_actions(
    actions: Tensor,
    noise_std: float | Tensor,
    noise_clip: float | Tensor,
    low: float | Tensor,
    high: float | Tensor,
    generator: torch.Generator | None = None,
    *,
    noise: Tensor | None = None,
) -> Tensor:
    """TD3's target policy smoothing, a′ = clip(a + clip(ε, −c, c), low, high), ε ~ N(0, σ²).

    Fujimoto et al. 2018, eq. 14: the target critic is evaluated at a noisy copy of the target
    actor's action, so that the target averages Q over a small neighbourhood of actions and a
    narrow spike of the critic cannot be exploited. The noise is clipped to [−c, c] so the
    neighbourhood stays small, and the result to the action box.

    Args:
        actions: ``[*B, D]`` the target actor's actions μ⁻(s′), in action units.
        noise_std: σ ≥ 0, a number or a ``[D]`` tensor, in action units.
        noise_clip: c ≥ 0, a number or a ``[D]`` tensor, in action units.
        low, high: the action box, numbers or ``[D]`` tensors, low ≤ high.
        generator: the random generator for ε (default: torch's global one).
        noise: ``[*B, D]`` standard normal draws z, given instead of drawing them (ε = σz): how
            many seeds at once pass each seed's draws from its own generator.

    Returns:
        ``[*B, D]``, detached.

    Example (σ = 0 adds nothing; the box still clips 1.5 to 1):
        >>> smoothed_target_actions(torch.tensor([[0.5, 1.5]]), 0.0, 0.5, -1.0, 1.0)
        tensor([[0.5000, 1.0000]])
    """
    fn = "smoothed_target_actions"
    actions = _checks.floats(fn, "actions", actions)
    _checks.rank_at_least(fn, "actions", actions, 1, "[*B, D]")
    noise_std = _per_dimension(fn, "noise_std", noise_std, actions)
    noise_clip = _per_dimension(fn, "noise_clip", noise_clip, actions)
    low = _per_dimension(fn, "low", low, actions)
    high = _per_dimension(fn, "high", high, actions)
    for name, value in (("noise_std", noise_std), ("noise_clip", noise_clip)):
        if bool(torch.as_tensor(value < 0).any()):
            raise BadInputError(f"{fn}(): '{name}' must be >= 0; got {value}")
    if bool(torch.as_tensor(low > high).any()):
        raise BadInputError(f"{fn}(): 'low' must not exceed 'high'; got low={low}, high={high}")
    actions = actions.detach()
    if noise is None:
        noise = torch.randn(
            actions.shape, generator=generator, dtype=actions.dtype, device=actions.device
        )
    else:
        noise = _checks.floats(fn, "noise", noise, "actions", actions)
    noise = torch.clamp(noise * noise_std, -noise_clip, noise_clip)
    low = torch.as_tensor(low, dtype=actions.dtype, device=actions.device)
    high = torch.as_tensor(high, dtype=actions.dtype, device=actions.device)
    return torch.clamp(actions + noise, low, high)


def sac_actor_loss(
    log_probs: Tensor, q_values: Tensor, alpha: float | Tensor, *, dim: int | None = None
) -> Tensor:
    """SAC's policy loss, L_π = mean(α log π(ã|s) − Q(s, ã)), ã ~ π(·|s) reparameterized.

    Haarnoja et al. 2018, eq. 7 (the KL to the Boltzmann policy of Q, up to a constant):
    descending it raises the critics' value of the policy's own actions and, through α log π,
    its entropy. ``q_values`` is min_k Q_k(s, ã), differentiable through ã = scale·tanh(μ + σε)
    into the actor; α is detached, so only the temperature loss moves it.

    Args:
        log_probs: ``[*B]`` log π(ã|s), differentiable.
        q_values: ``[*B]`` Q(s, ã), differentiable through ã.
        alpha: α ≥ 0, a number or a 0-dim tensor, or a tensor that broadcasts to ``[*B]``
            (one α per seed: ``[S, 1]``); detached here.
        dim: the axis to average over (1 for many seeds' ``[S, B]``), one loss per row; None:
            the whole tensor.

    Returns:
        A 0-dim tensor, or ``[*B]`` without ``dim``.

    Example (α = 0.5: mean(0.5·(−1) − 2, 0.5·(−3) − 4) = (−2.5 − 5.5)/2 = −4):
        >>> sac_actor_loss(torch.tensor([-1.0, -3.0]), torch.tensor([2.0, 4.0]), alpha=0.5)
        tensor(-4.)
    """
    fn = "sac_actor_loss"
    log_probs = _checks.non_empty(fn, "log_probs", _checks.floats(fn, "log_probs", log_probs))
    q_values = _checks.floats(fn, "q_values", q_values, "log_probs", log_probs)
    alpha = _temperature(fn, alpha, "log_probs", log_probs)
    dim, _ = _checks.reduction(fn, dim, None, "log_probs", log_probs)
    terms = alpha * log_probs - q_values
    return terms.mean() if dim is None else terms.mean(dim=dim)


def deterministic_policy_loss(q_values: Tensor, *, dim: int | None = None) -> Tensor:
    """The deterministic policy gradient's loss, L_μ = −mean Q(s, μ(s)) (TD3's actor loss).

    Silver et al. 2014: ∇_φ J = E[∇_a Q(s, a)|_{a=μ_φ(s)} ∇_φ μ_φ(s)], which autograd produces
    from this loss when ``q_values`` is the first critic evaluated at the actor's action
    (Fujimoto et al. 2018 use the first critic only).

    Args:
        q_values: ``[*B]`` Q(s, μ(s)), differentiable through μ(s).
        dim: the axis to average over (1 for many seeds' ``[S, B]``), one loss per row; None:
            the whole tensor.

    Returns:
        A 0-dim tensor, or ``[*B]`` without ``dim``.

    Example (−(1 + 3)/2 = −2; per row, −1 and −3):
        >>> deterministic_policy_loss(torch.tensor([1.0, 3.0]))
        tensor(-2.)
        >>> deterministic_policy_loss(torch.tensor([[1.0, 1.0], [3.0, 3.0]]), dim=1)
        tensor([-1., -3.])
    """
    fn = "deterministic_policy_loss"
    q_values = _checks.non_empty(fn, "q_values", _checks.floats(fn, "q_values", q_values))
    dim, _ = _checks.reduction(fn, dim, None, "q_values", q_values)
    return -q_values.mean() if dim is None else -q_values.mean(dim=dim)


def temperature_loss(
    log_alpha: Tensor, log_probs: Tensor, target_entropy: float, *, dim: int | None = None
) -> Tensor:
    """SAC's automatic temperature loss, L_α = −mean(log α · (log π(ã|s) + H̄)), bracket detached.

    Haarnoja et al. 2018b, eq. 18, in the form SB3 and TorchRL use: the parameter is log α
    (so α = exp log α stays positive) and it multiplies the loss directly. Its gradient is

        ∂L_α/∂ log α = −mean(log π + H̄) = Ĥ − H̄,   Ĥ = −mean log π (the sampled entropy),

    so descent lowers α while the policy's entropy exceeds the target H̄ and raises it while
    the entropy is below. The paper's form (α instead of log α in front) has the same sign and
    the same fixed point; only the step size differs by a factor α.

    Args:
        log_alpha: a 0-dim tensor log α, differentiable; with ``dim``, one per row (``[S]``
            for many seeds' ``[S, B]``).
        log_probs: ``[*B]`` log π(ã|s) of fresh samples; detached here.
        target_entropy: H̄, a number (SAC's default is −D for a D-dimensional action).
        dim: the axis to average over, one loss per row with that row's log α; None: the
            whole tensor.

    Returns:
        A 0-dim tensor, or one per row with ``dim``.

    Example (log α = 0.5, log π = −1 and −3, H̄ = 1: −0.5·mean(0, −2) = 0.5; per row, with
    log α = 0.5 and 2 and H̄ = 2: −0.5·(−1 + 2) = −0.5 and −2·(−3 + 2) = 2):
        >>> temperature_loss(torch.tensor(0.5), torch.tensor([-1.0, -3.0]), target_entropy=1.0)
        tensor(0.5000)
        >>> temperature_loss(torch.tensor([0.5, 2.0]), torch.tensor([[-1.0], [-3.0]]), 2.0, dim=1)
        tensor([-0.5000,  2.0000])
    """
    fn = "temperature_loss"
    log_alpha = _checks.floats(fn, "log_alpha", log_alpha)
    log_probs = _checks.non_empty(fn, "log_probs", _checks.floats(fn, "log_probs", log_probs))
    dim, _ = _checks.reduction(fn, dim, None, "log_probs", log_probs)
    expected = () if dim is None else tuple(log_probs.shape[:dim] + log_probs.shape[dim + 1 :])
    if dim is not None:
        dim = dim % log_probs.dim()
    if tuple(log_alpha.shape) != expected:
        wanted = "a 0-dim tensor" if dim is None else f"shape {expected}, one per row"
        raise BadInputError(
            f"{fn}(): 'log_alpha' must be {wanted}; got shape {tuple(log_alpha.shape)}"
        )
    _checks.same_kind(fn, "log_probs", log_probs, "log_alpha", log_alpha)
    target_entropy = _checks.number(fn, "target_entropy", target_entropy)
    if dim is None:
        return -(log_alpha * (log_probs.detach() + target_entropy)).mean()
    return -(log_alpha.unsqueeze(dim) * (log_probs.detach() + target_entropy)).mean(dim=dim)
