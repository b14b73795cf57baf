"""Value losses (course pages E.3.2, E.3.5 and the TD exercises): critic regression, DQN, linear TD.

Targets are constants for the step that fits them (bootstrapped TD targets would otherwise chase
themselves), so every loss here detaches its targets and says so.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rlgrad import _checks, _masks
from rlgrad.errors import BadInputError


def value_loss(
    values: Tensor,
    returns: Tensor,
    old_values: Tensor | None = None,
    clip_eps: float | None = None,
    *,
    mask: Tensor | None = None,
    dim: int | None = None,
) -> Tensor:
    """The critic's regression loss, L = mean(½(V(s_t) − G_t)²).

    With ``old_values`` and ``clip_eps`` it is PPO's clipped variant (as in the PPO2 baselines):
    V_clip = V_old + clip(V − V_old, −ε, ε) and L = mean(½ max((V − G)², (V_clip − G)²)).

    With a mask m the mean is over the kept samples, Σ_t m_t(·) / Σ_t m_t: the loss of
    ``values[mask]``, ``returns[mask]`` (and ``old_values[mask]``). Masked-out entries reach
    neither the result nor the gradient, whatever finite value they hold (NaN and inf are refused
    outside vmap, as anywhere). Outside vmap a mask that keeps no sample is refused; under
    ``torch.func.vmap`` such a row gives 0.

    With ``dim`` (many seeds at once, ``[S, B]`` with ``dim=1``) the mean runs over that axis
    only, one loss per row: row s is the loss of that row's kept samples, and a row keeping none
    gives 0 with a gradient of 0, also outside vmap (nothing is refused for counts). NaN and inf
    are refused in every entry outside vmap, kept or not, as without ``dim``.

    Args:
        values: ``[*B]`` V(s_t), differentiable.
        returns: ``[*B]`` targets G_t; detached here.
        old_values: ``[*B]`` V_old(s_t) at collection time, or None; detached here.
        clip_eps: ε > 0, given together with ``old_values``.
        mask: ``[*B]`` bool or 0/1, the samples to average over (the result of the call on
            ``x[mask]``), or None for all.
        dim: the axis of ``[*B]`` to average over (e.g. 1 for ``[S, B]``), one loss per row;
            None for all of them.

    Returns:
        A 0-dim tensor, or ``[*B]`` without ``dim``.

    Example (½((1 − 3)² + (2 − 2)²)/2 = 1):
        >>> value_loss(torch.tensor([1.0, 2.0]), torch.tensor([3.0, 2.0]))
        tensor(1.)
    """
    fn = "value_loss"
    values = _checks.floats(fn, "values", values)
    if dim is None:
        _checks.non_empty(fn, "values", values)
    returns = _checks.floats(fn, "returns", returns, "values", values).detach()
    if (old_values is None) != (clip_eps is None):
        raise BadInputError(
            f"{fn}(): 'old_values' and 'clip_eps' go together for the clipped loss; "
            f"got old_values={'a tensor' if old_values is not None else None}, "
            f"clip_eps={clip_eps!r}"
        )
    if old_values is not None:
        old_values = _checks.floats(fn, "old_values", old_values, "values", values).detach()
        clip_eps = _checks.positive(fn, "clip_eps", clip_eps)
    dim, mask = _checks.reduction(fn, dim, mask, "values", values)
    if mask is not None:
        values, returns = _masks.zero_outside(mask, values, returns)
        if old_values is not None:
            (old_values,) = _masks.zero_outside(mask, old_values)
    squared = (values - returns) ** 2
    if old_values is not None:
        clipped = old_values + (values - old_values).clamp(-clip_eps, clip_eps)
        squared = torch.maximum(squared, (clipped - returns) ** 2)
    return 0.5 * _masks.mean(squared, mask, dim)


def dqn_targets(
    rewards: Tensor,
    next_q_target: Tensor,
    terminated: Tensor,
    gamma: float | Tensor,
    next_q_online: Tensor | None = None,
) -> Tensor:
    """DQN's TD targets (Mnih et al. 2015), y = r + γ(1 − term)·max_a' Q_θ⁻(s', a').

    With ``next_q_online`` it is double DQN (van Hasselt et al. 2016): the online network picks
    a* = argmax_a' Q_θ(s', a') and the target network evaluates it,
    y = r + γ(1 − term)·Q_θ⁻(s', a*), which removes the max operator's upward bias. Only
    termination removes the bootstrap: at a time-limit truncation s' is the true final
    observation and its value still counts.

    Args:
        rewards: ``[*B]``.
        next_q_target: ``[*B, A]`` Q_θ⁻(s', ·) from the target network.
        terminated: ``[*B]`` bool or 0/1.
        gamma: the discount γ ∈ [0, 1], or a ``[*B]`` tensor of per-sample discounts, such as
            the γ^K of :func:`~rlgrad.returns.n_step_returns` (then ``rewards`` are the n-step
            returns and s' is the state K steps later).
        next_q_online: ``[*B, A]`` Q_θ(s', ·) from the online network, or None.

    Returns:
        ``[*B]``, detached (targets are constants for the update).

    Example (r = 1, γ = 0.9, max Q⁻ = 2 → y = 2.8; a terminal step → y = r):
        >>> dqn_targets(torch.tensor([1.0, 1.0]), torch.tensor([[0.0, 2.0], [5.0, 3.0]]),
        ...             torch.tensor([False, True]), gamma=0.9)
        tensor([2.8000, 1.0000])
    """
    fn = "dqn_targets"
    rewards = _checks.floats(fn, "rewards", rewards)
    next_q_target = _checks.floats(fn, "next_q_target", next_q_target)
    _checks.same_kind(fn, "next_q_target", next_q_target, "rewards", rewards)
    if next_q_target.dim() != rewards.dim() + 1 or next_q_target.shape[:-1] != rewards.shape:
        raise BadInputError(
            f"{fn}(): 'next_q_target' must have shape {(*rewards.shape, 'A')} (the shape of "
            f"'rewards' plus an action axis); got {tuple(next_q_target.shape)}"
        )
    if next_q_target.shape[-1] == 0:
        raise BadInputError(f"{fn}(): 'next_q_target' must have at least one action; got A = 0")
    terminated = _checks.flags(fn, "terminated", terminated, "rewards", rewards)
    gamma = _checks.discounts(fn, "gamma", gamma, "rewards", rewards)
    next_q_target = next_q_target.detach()
    if next_q_online is None:
        next_value = next_q_target.max(dim=-1).values
    else:
        next_q_online = _checks.floats(
            fn, "next_q_online", next_q_online, "next_q_target", next_q_target
        )
        best = next_q_online.detach().argmax(dim=-1, keepdim=True)
        next_value = next_q_target.gather(-1, best).squeeze(-1)
    alive = (~terminated).to(rewards.dtype)
    return (rewards.detach() + gamma * alive * next_value).detach()


def _squared(errors: Tensor) -> Tensor:
    return 0.5 * errors**2


def _huber(errors: Tensor) -> Tensor:
    return F.huber_loss(errors, torch.zeros_like(errors), reduction="none", delta=1.0)


_DQN_LOSSES = {"mse": _squared, "huber": _huber}


def dqn_loss(
    q_values: Tensor,
    actions: Tensor,
    targets: Tensor,
    kind: str = "mse",
    *,
    dim: int | None = None,
) -> Tensor:
    """DQN's loss on the taken actions, L = mean(ℓ(Q_θ(s, a) − y)), with y detached.

    ``kind="mse"``: ℓ(x) = ½x² (the course's loss, so ∇L = (Q − y)∇Q, the TD error times ∇Q).
    ``kind="huber"``: ℓ(x) = ½x² for |x| ≤ 1 and |x| − ½ beyond (δ = 1), whose gradient is the
    TD error clipped to [−1, 1] (Mnih et al. 2015).

    With ``dim`` (many seeds at once, ``[S, B]`` with ``dim=1``) the mean runs over that axis
    only: one loss per row, row s the loss of ``q_values[s]``, ``actions[s]``, ``targets[s]``.

    Args:
        q_values: ``[*B, A]`` Q_θ(s, ·), differentiable.
        actions: ``[*B]`` integer actions in [0, A).
        targets: ``[*B]`` TD targets y; detached here.
        kind: "mse" or "huber".
        dim: the axis of ``[*B]`` to average over (e.g. 1 for ``[S, B]``); None for all.

    Returns:
        A 0-dim tensor, or ``[*B]`` without ``dim``.

    Example (Q(s, 1) = 2, y = 5: ½·3² = 4.5 and Huber 3 − ½ = 2.5):
        >>> q, a, y = torch.tensor([[0.0, 2.0]]), torch.tensor([1]), torch.tensor([5.0])
        >>> dqn_loss(q, a, y), dqn_loss(q, a, y, kind="huber")
        (tensor(4.5000), tensor(2.5000))

    Two seeds, one loss each (seed 1: Q(s, 0) = 2, y = 1: ½·1² = 0.5):
        >>> dqn_loss(torch.stack([q, q.flip(-1)]), torch.stack([a, 1 - a]),
        ...          torch.stack([y, torch.tensor([1.0])]), dim=1)
        tensor([4.5000, 0.5000])
    """
    fn = "dqn_loss"
    q_values = _checks.floats(fn, "q_values", q_values)
    _checks.rank_at_least(fn, "q_values", q_values, 1, "[*B, A]")
    actions = _checks.tensor(fn, "actions", actions, floating=False)
    if actions.dtype == torch.bool or actions.is_complex() or actions.is_floating_point():
        raise TypeError(f"{fn}(): 'actions' must be an integer tensor; got dtype {actions.dtype}")
    if actions.shape != q_values.shape[:-1]:
        raise BadInputError(
            f"{fn}(): 'actions' must have shape {tuple(q_values.shape[:-1])} ('q_values' without "
            f"its action axis); got {tuple(actions.shape)}"
        )
    num_actions = q_values.shape[-1]
    out_of_range = (actions < 0) | (actions >= num_actions)
    if not _checks.batched(actions) and bool(out_of_range.any()):
        bad = actions[out_of_range][0].item()
        raise BadInputError(f"{fn}(): 'actions' must lie in [0, {num_actions}); got {bad}")
    targets = _checks.tensor(fn, "targets", targets)
    _checks.same_shape(fn, "targets", targets, "actions", actions)
    _checks.same_kind(fn, "targets", targets, "q_values", q_values)
    _checks.finite(fn, "targets", targets)
    if kind not in _DQN_LOSSES:
        raise BadInputError(f"{fn}(): 'kind' must be one of {sorted(_DQN_LOSSES)}; got {kind!r}")
    _checks.non_empty(fn, "targets", targets)
    dim, _ = _checks.reduction(fn, dim, None, "targets", targets)
    taken = q_values.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
    return _masks.mean(_DQN_LOSSES[kind](taken - targets.detach()), None, dim)


def semi_gradient_td_update(
    weights: Tensor,
    features: Tensor,
    next_features: Tensor,
    rewards: Tensor,
    terminated: Tensor,
    gamma: float,
    lr: float,
) -> Tensor:
    """One semi-gradient TD(0) step for a linear value V(s) = w·φ(s) (Sutton & Barto §9.3):

        δ = r + γ(1 − term)·w·φ(s') − w·φ(s),    w ← w + α·δ·φ(s)

    It is gradient descent on ½δ² with the target r + γ w·φ(s') held constant; the full gradient
    would also differentiate the target. For a batch the step uses the mean of δ·φ(s).

    Args:
        weights: ``[D]``.
        features: ``[*B, D]`` φ(s) (``[D]`` for one transition).
        next_features: ``[*B, D]`` φ(s').
        rewards: ``[*B]`` (0-dim for one transition).
        terminated: ``[*B]`` bool or 0/1.
        gamma: the discount γ ∈ [0, 1].
        lr: the step size α > 0.

    Returns:
        ``[D]`` the updated weights (a new tensor, no gradient).

    Example (w = [1, 0], φ(s) = [1, 0], φ(s') = [0, 1], r = 1, γ = 0.9: δ = 1 + 0 − 1 = 0;
    with r = 2, δ = 1 and w ← [1, 0] + 0.5·1·[1, 0] = [1.5, 0]):
        >>> w, phi, phi_next = torch.tensor([1.0, 0.0]), torch.eye(2)[0], torch.eye(2)[1]
        >>> r, done = torch.tensor(2.0), torch.tensor(False)
        >>> semi_gradient_td_update(w, phi, phi_next, r, done, gamma=0.9, lr=0.5)
        tensor([1.5000, 0.0000])
    """
    fn = "semi_gradient_td_update"
    weights = _checks.floats(fn, "weights", weights)
    if weights.dim() != 1:
        raise BadInputError(f"{fn}(): 'weights' must have shape [D]; got {tuple(weights.shape)}")
    features = _checks.floats(fn, "features", features)
    _checks.same_kind(fn, "features", features, "weights", weights)
    if features.dim() < 1 or features.shape[-1] != weights.shape[0]:
        raise BadInputError(
            f"{fn}(): 'features' must have shape [*B, {weights.shape[0]}] (D from 'weights'); "
            f"got {tuple(features.shape)}"
        )
    next_features = _checks.floats(fn, "next_features", next_features, "features", features)
    rewards = _checks.tensor(fn, "rewards", rewards)
    if rewards.shape != features.shape[:-1]:
        raise BadInputError(
            f"{fn}(): 'rewards' must have shape {tuple(features.shape[:-1])} ('features' without "
            f"D); got {tuple(rewards.shape)}"
        )
    _checks.same_kind(fn, "rewards", rewards, "weights", weights)
    _checks.finite(fn, "rewards", rewards)
    terminated = _checks.flags(fn, "terminated", terminated, "rewards", rewards)
    gamma = _checks.unit_interval(fn, "gamma", gamma)
    lr = _checks.positive(fn, "lr", lr)
    with torch.no_grad():
        alive = (~terminated).to(weights.dtype)
        td_error = rewards + gamma * alive * (next_features @ weights) - features @ weights
        step = (td_error.unsqueeze(-1) * features).reshape(-1, weights.shape[0]).mean(dim=0)
        return weights + lr * step


def explained_variance(
    values: Tensor, returns: Tensor, *, mask: Tensor | None = None, dim: int | None = None
) -> Tensor:
    """How much of the variance of the returns the critic explains: 1 − Var[G − V] / Var[G].

    1 is a perfect critic, 0 one no better than a constant, negative one worse than a constant;
    a diagnostic logged by PPO and A2C trainers. NaN when the returns have no variance.

    With a mask m both variances are over the kept samples (Bessel-corrected, as ``Tensor.var``),
    Var_m[x] = Σ_t m_t (x_t − x̄)² / (Σ_t m_t − 1) with x̄ = Σ_t m_t x_t / Σ_t m_t: the value
    of ``explained_variance(values[mask], returns[mask])``, whatever finite values the
    masked-out entries hold. Outside vmap a mask must keep at least 2 samples; under
    ``torch.func.vmap`` a row that keeps fewer gives 0.

    With ``dim`` (many seeds at once, ``[S, B]`` with ``dim=1``) both variances run over that axis
    only, one value per row: row s is the call on that row's kept samples, and a row with fewer
    than 2 (kept, or along ``dim`` without a mask) gives 0, also outside vmap; nothing is refused
    for counts. NaN and inf are refused in every entry outside vmap, kept or not.

    Args:
        values: ``[*B]`` V(s_t).
        returns: ``[*B]`` G_t.
        mask: ``[*B]`` bool or 0/1, the samples to compare, or None for all.
        dim: the axis of ``[*B]`` to compare over (e.g. 1 for ``[S, B]``), one value per row;
            None for all of them.

    Returns:
        A 0-dim tensor, or ``[*B]`` without ``dim``; without gradient.

    Example (G = [0, 2, 4, 6] has sample variance 6.667; G − V = [1, −1, 1, −1] has 1.333, so
    1 − 1.333/6.667 = 0.8):
        >>> returns = torch.tensor([0.0, 2.0, 4.0, 6.0])
        >>> explained_variance(returns - torch.tensor([1.0, -1.0, 1.0, -1.0]), returns)
        tensor(0.8000)
    """
    fn = "explained_variance"
    values = _checks.floats(fn, "values", values)
    returns = _checks.floats(fn, "returns", returns, "values", values)
    dim, mask = _checks.reduction(fn, dim, mask, "values", values, at_least=2)
    if mask is None:
        if dim is None:
            return (1 - (returns - values).var() / returns.var()).detach()
        return (1 - (returns - values).var(dim=dim) / returns.var(dim=dim)).detach()
    values, returns = _masks.zero_outside(mask, values.detach(), returns.detach())
    residual_variance, _, enough = _masks.var(returns - values, mask, dim)
    return_variance, _, _ = _masks.var(returns, mask, dim)
    explained = torch.where(enough, 1 - residual_variance / return_variance, 0.0)
    return explained if dim is None else explained.squeeze(dim)


@torch.no_grad()
def polyak_update(targets, sources, tau: float) -> None:
    """Move target parameters towards their sources in place, θ⁻ ← τθ + (1 − τ)θ⁻.

    τ = 1 copies θ exactly (DQN's periodic hard update); a small τ (0.005 in SAC and TD3) makes
    θ⁻ an exponential moving average of θ. Targets never receive gradients.

    Every pair is checked before any target moves, so a refused call leaves all targets as they
    were: a NaN or inf in a source would stay in an averaged target for good, and a dtype
    mismatch would either fail in torch's own words or, at τ = 1, be converted silently.

    Args:
        targets: an iterable of floating tensors θ⁻ (e.g. ``target_network.parameters()``),
            updated in place; at least one.
        sources: an iterable of floating tensors θ, in the same order, each of its target's
            shape, dtype and device.
        tau: τ ∈ (0, 1].

    Raises:
        TypeError: a non-tensor or non-floating entry, or a source of another dtype.
        ValueError: τ outside (0, 1], no targets (an exhausted generator, say), lists of
            different lengths, a source of another shape or device.
        NonFiniteError: a NaN or inf in a source.

    Example (τ = 0.25: 0.25·4 + 0.75·0 = 1):
        >>> target, source = torch.zeros(2), torch.full((2,), 4.0)
        >>> polyak_update([target], [source], tau=0.25)
        >>> target
        tensor([1., 1.])
    """
    fn = "polyak_update"
    tau = _checks.unit_interval(fn, "tau", tau)
    if tau == 0.0:
        raise BadInputError(f"{fn}(): 'tau' must be in (0, 1]; got 0 (the target would never move)")
    targets, sources = list(targets), list(sources)
    if len(targets) != len(sources):
        raise BadInputError(
            f"{fn}(): 'targets' and 'sources' must pair up; got {len(targets)} and {len(sources)}"
        )
    if not targets:
        raise BadInputError(
            f"{fn}(): 'targets' must hold at least one tensor; got none (an exhausted generator, "
            f"such as a .parameters() iterator used twice?)"
        )
    for i, (target, source) in enumerate(zip(targets, sources, strict=True)):
        _checks.tensor(fn, f"targets[{i}]", target)
        _checks.tensor(fn, f"sources[{i}]", source)
        _checks.same_shape(fn, f"sources[{i}]", source, f"targets[{i}]", target)
        _checks.same_kind(fn, f"sources[{i}]", source, f"targets[{i}]", target)
    # One reduction and one host sync for all sources (this runs every training step); only a
    # non-finite sum, from a real NaN/inf or an overflow, looks tensor by tensor for the culprit.
    sums = [source.sum() for source in sources]
    if not _checks.all_finite(torch.stack([total.to(sums[0]) for total in sums])):
        for i, source in enumerate(sources):
            _checks.finite(fn, f"sources[{i}]", source)
    for target, source in zip(targets, sources, strict=True):
        if tau == 1.0:
            target.copy_(source)
        else:
            target.lerp_(source, tau)


def epsilon_schedule(step: float, decay_steps: float, start: float, end: float) -> float:
    """A linearly decaying exploration rate, ε(t) = ε_start + (ε_end − ε_start)·min(1, t / D).

    ε falls from ``start`` at t = 0 to ``end`` at t = D = ``decay_steps`` and stays there (DQN's
    schedule; D = exploration_fraction · total_steps). D = 0 means ε = ε_end from the start.

    Args:
        step: t ≥ 0, environment steps so far.
        decay_steps: D ≥ 0.
        start: ε_start ∈ [0, 1].
        end: ε_end ∈ [0, 1].

    Returns:
        ε(t), a float.

    Example (halfway from 1 to 0.1: 0.55):
        >>> epsilon_schedule(500, 1000, 1.0, 0.1)
        0.55
    """
    fn = "epsilon_schedule"
    step = _checks.non_negative(fn, "step", step)
    decay_steps = _checks.non_negative(fn, "decay_steps", decay_steps)
    start = _checks.unit_interval(fn, "start", start)
    end = _checks.unit_interval(fn, "end", end)
    fraction = min(step / decay_steps, 1.0) if decay_steps > 0 else 1.0
    return start + (end - start) * fraction
