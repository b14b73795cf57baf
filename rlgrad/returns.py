"""Returns and advantages (course pages E.3.2, E.3.4, E.3.5): TD errors, reward-to-go, GAE, GRPO.

Trajectory tensors are time-major ``[T, *B]`` (a single stream ``[T]`` works). For step t,
``rewards[t]``, ``terminated[t]`` and ``truncated[t]`` are the outcome of (s_t, a_t);
``values[t] = V(s_t)`` and ``next_values[t] = V(s_{t+1})``, where at a truncation s_{t+1} is the
true final observation (not the reset observation that follows it). ``terminated`` removes the
bootstrap (the episode really ended); ``truncated`` only cuts the trace (the episode was stopped,
its future still has value V(s_{t+1})).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from rlgrad import _checks, _kernels, _masks
from rlgrad.errors import BadInputError

HALF_DTYPES = (torch.float16, torch.bfloat16)


def _trajectory(fn: str, name: str, x: object, rewards: Tensor) -> Tensor:
    x = _checks.tensor(fn, name, x)
    _checks.same_shape(fn, name, x, "rewards", rewards)
    _checks.same_kind(fn, name, x, "rewards", rewards)
    return x


def _rewards(fn: str, rewards: object) -> Tensor:
    rewards = _checks.tensor(fn, "rewards", rewards)
    _checks.rank_at_least(fn, "rewards", rewards, 1, "[T, *B]")
    return rewards


def _use_kernel(*tensors: Tensor) -> bool:
    """The compiled scan handles CPU float32/float64 data that needs no gradient, outside vmap
    (it reads the tensors' memory, which a batched tensor does not expose)."""
    first = tensors[0]
    return (
        first.is_cpu
        and first.dtype in (torch.float32, torch.float64)
        and not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))
        and first.numel() > 0
        and not any(_checks.batched(t) for t in tensors)
        and _kernels.available()
    )


def _checked(fn: str, named: dict[str, object], flags: dict[str, object]):
    """The arguments checked one by one (the explaining path): ``named`` float tensors shaped,
    typed and placed like ``rewards`` (the first), ``flags`` as bool tensors of that shape."""
    rewards = _rewards(fn, named["rewards"])
    floats = [
        rewards if name == "rewards" else _trajectory(fn, name, x, rewards)
        for name, x in named.items()
    ]
    bools = [_checks.flags(fn, name, x, "rewards", rewards) for name, x in flags.items()]
    return floats, bools


def _scan(
    fn, kernel, reference, named: dict[str, object], flags: dict[str, object], *hyper
) -> Tensor:
    """Run a reverse-time recursion by the compiled kernel when it applies, else by ``reference``.

    ``named`` are the float inputs (``rewards`` first), ``flags`` the flag inputs, both by argument
    name as the caller received them, ``hyper`` the checked scalars; kernel and reference take them
    in that order (the kernel also takes ``out``). The usual call passes the kernel's one-pass test
    and is checked for NaN and inf by the kernel itself; any other is checked argument by argument.
    """
    floats, bools = list(named.values()), list(flags.values())
    if not _kernels.takes(floats, bools):
        floats, bools = _checked(fn, named, flags)
        if floats[0].dtype in HALF_DTYPES:
            # A recursion accumulates rounding over T steps, which half precision cannot afford:
            # compute in float32 (differentiably) and return the input dtype.
            single = {name: x.float() for name, x in zip(named, floats, strict=True)}
            as_flags = dict(zip(flags, bools, strict=True))
            result = _scan(fn, kernel, reference, single, as_flags, *hyper)
            return result.to(floats[0].dtype)
        if not _use_kernel(*floats):
            for name, x in zip(named, floats, strict=True):
                _checks.finite(fn, name, x)
            return reference(*floats, *bools, *hyper)
        # The kernels read memory directly, as C-contiguous bool and float arrays.
        floats = [x.contiguous() for x in floats]
        bools = [x.contiguous() for x in bools]
    # The inputs are C-contiguous by now, and empty_like keeps a dense tensor's strides: the output
    # is C-contiguous too, without the memory_format argument (~10 µs less from memory:
    # benchmarks/probes/gae_overhead.py).
    out = torch.empty_like(floats[0])
    if not kernel(*floats, *bools, *hyper, out):
        _raise_non_finite(fn, dict(zip(named, floats, strict=True)))
    return out


def _raise_non_finite(fn: str, named: dict[str, Tensor]) -> None:
    for name, x in named.items():
        _checks.finite(fn, name, x)
    raise _checks.NonFiniteError(
        f"{fn}(): the result overflowed to inf; rescale 'rewards' (largest magnitude "
        f"{max(x.abs().max().item() for x in named.values()):.3g})"
    )


def td_errors(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    gamma: float,
) -> Tensor:
    """One-step TD errors, δ_t = r_t + γ(1 − term_t)·V(s_{t+1}) − V(s_t).

    δ_t > 0 means the step went better than the critic expected. Truncation plays no part: a
    cut-off episode still bootstraps from V of its true final observation.

    Args:
        rewards: ``[T, *B]``.
        values: ``[T, *B]``, V(s_t).
        next_values: ``[T, *B]``, V(s_{t+1}).
        terminated: ``[T, *B]`` bool or 0/1.
        gamma: the discount γ ∈ [0, 1].

    Returns:
        ``[T, *B]``, differentiable in every tensor argument.

    Raises:
        TypeError / ValueError: on a non-tensor, a mismatched shape, dtype or device, a NaN or
        inf, a flag other than 0/1, or γ outside [0, 1].

    Example (course page E.3.6, exercise: V(s_t) = 5, R = 2, V(s_{t+1}) = 6, γ = 0.9 → δ = 2.4):
        >>> t = torch.tensor
        >>> td_errors(t([2.0]), t([5.0]), t([6.0]), t([False]), gamma=0.9)
        tensor([2.4000])
    """
    fn = "td_errors"
    rewards = _checks.finite(fn, "rewards", _rewards(fn, rewards))
    values = _checks.finite(fn, "values", _trajectory(fn, "values", values, rewards))
    next_values = _trajectory(fn, "next_values", next_values, rewards)
    _checks.finite(fn, "next_values", next_values)
    terminated = _checks.flags(fn, "terminated", terminated, "rewards", rewards)
    gamma = _checks.unit_interval(fn, "gamma", gamma)
    alive = (~terminated).to(rewards.dtype)
    return rewards + gamma * alive * next_values - values


def _returns_loop(
    rewards: Tensor, bootstrap: Tensor, terminated: Tensor, truncated: Tensor, gamma: float
) -> Tensor:
    """Reference (and autograd / GPU) path of :func:`discounted_returns`: one step at a time."""
    alive = (~terminated).to(rewards.dtype)
    returns: list[Tensor] = []
    for t in reversed(range(rewards.shape[0])):
        # After the last step the rollout is cut: the future is the bootstrap itself.
        later = returns[-1] if returns else bootstrap[t]
        future = torch.where(truncated[t], bootstrap[t], later)
        returns.append(rewards[t] + gamma * alive[t] * future)
    return torch.stack(returns[::-1]) if returns else rewards.clone()


def discounted_returns(
    rewards: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    gamma: float,
    next_values: Tensor | None = None,
) -> Tensor:
    """Reward-to-go G_t = r_t + γ(1 − term_t)·F_t, the Monte-Carlo return of REINFORCE.

    F_t = next_values[t] after a truncation or at the last step of the rollout (the bootstrap
    V(s_{t+1}); 0 when ``next_values`` is None), and F_t = G_{t+1} otherwise. After a termination
    the tail is 0 whatever ``next_values`` says.

    Args:
        rewards: ``[T, *B]``.
        terminated: ``[T, *B]`` bool or 0/1.
        truncated: ``[T, *B]`` bool or 0/1.
        gamma: the discount γ ∈ [0, 1].
        next_values: ``[T, *B]`` or None; only entries at truncations and at t = T − 1 are read.

    Returns:
        ``[T, *B]``. Differentiable in ``rewards`` and ``next_values`` when they require grad.
        float16 and bfloat16 inputs are computed in float32 and returned in their own dtype.

    Raises:
        TypeError / ValueError: as :func:`td_errors`.

    Example (γ = 0.5; the episode ends at t = 1; a new one is cut off by the rollout after t = 2
    and bootstraps from V = 4: G = [1 + 0.5·2, 2, 3 + 0.5·4]):
        >>> t = torch.tensor
        >>> discounted_returns(t([1.0, 2.0, 3.0]), t([0, 1, 0]), t([0, 0, 0]), gamma=0.5,
        ...                    next_values=t([9.0, 9.0, 4.0]))
        tensor([2., 2., 5.])
    """
    fn = "discounted_returns"
    gamma = _checks.unit_interval(fn, "gamma", gamma)
    if next_values is None:
        next_values = torch.zeros_like(_rewards(fn, rewards))
    named = {"rewards": rewards, "next_values": next_values}
    flags = {"terminated": terminated, "truncated": truncated}
    return _scan(fn, _kernels.return_scan, _returns_loop, named, flags, gamma)


class NStepReturns(NamedTuple):
    """What :func:`n_step_returns` gives for each window: the target is
    ``returns + discounts · (1 − terminated) · V(s_{t+steps})``."""

    returns: Tensor  # Σ_{k<K} γ^k r_{t+k}
    discounts: Tensor  # γ^K, the weight of the bootstrap
    terminated: Tensor  # bool: the window ended in a termination (no bootstrap)
    steps: Tensor  # K ∈ [1, n] (int64): the bootstrap state is s_{t+K}


def n_step_returns(
    rewards: Tensor, terminated: Tensor, truncated: Tensor, gamma: float
) -> NStepReturns:
    """The n-step return of each window of n steps, stopped at the first end of episode:

        K = min(n, 1 + first k with term_k or trunc_k)
        G = Σ_{k<K} γ^k r_k,    target = G + γ^K (1 − term_{K−1}) · V(s_K)

    A termination inside the window removes the bootstrap; a truncation keeps it, from V of the
    true final observation s_K. With n = 1 this is DQN's one-step target r + γ(1 − term)·V(s').
    A replay buffer can also mark a window ``truncated`` where its stored stream ends.

    Args:
        rewards: ``[n, *B]``: for each of the B windows, the n steps starting at its transition.
        terminated: ``[n, *B]`` bool or 0/1.
        truncated: ``[n, *B]`` bool or 0/1; steps after the first end are ignored.
        gamma: the discount γ ∈ [0, 1].

    Returns:
        :class:`NStepReturns` of ``[*B]`` tensors; ``returns`` is differentiable in ``rewards``.

    Raises:
        TypeError / ValueError: as :func:`discounted_returns`, and for an empty window.

    Example (γ = 0.5, n = 3; the first window runs its 3 steps, the second terminates at k = 1):
        >>> t = torch.tensor
        >>> out = n_step_returns(t([[1.0, 1.0], [2.0, 2.0], [4.0, 4.0]]),
        ...                      t([[0, 0], [0, 1], [0, 0]]), t([[0, 0], [0, 0], [0, 0]]), 0.5)
        >>> out.returns, out.discounts, out.terminated, out.steps
        (tensor([3., 2.]), tensor([0.1250, 0.2500]), tensor([False,  True]), tensor([3, 2]))
    """
    fn = "n_step_returns"
    rewards = _rewards(fn, rewards)
    if rewards.shape[0] == 0:
        raise BadInputError(f"{fn}(): 'rewards' must hold at least one step; got shape (0, ...)")
    terminated = _checks.flags(fn, "terminated", terminated, "rewards", rewards)
    truncated = _checks.flags(fn, "truncated", truncated, "rewards", rewards)
    gamma = _checks.unit_interval(fn, "gamma", gamma)
    _checks.finite(fn, "rewards", rewards)
    running = torch.ones_like(terminated[0])  # the window has not ended before step k
    returns = torch.zeros_like(rewards[0])
    ended_in_termination = torch.zeros_like(terminated[0])
    steps = torch.zeros(rewards.shape[1:], dtype=torch.int64, device=rewards.device)
    for k in range(rewards.shape[0]):
        returns = returns + rewards[k] * running * gamma**k  # rewards first: keeps their dtype
        steps += running
        ended_in_termination |= running & terminated[k]
        running = running & ~(terminated[k] | truncated[k])
    discounts = torch.pow(torch.full_like(returns, gamma), steps.to(rewards.dtype))
    return NStepReturns(returns, discounts, ended_in_termination, steps)


def _gae_loop(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    gamma: float,
    lam: float,
) -> Tensor:
    """Reference (and autograd / GPU) path of :func:`gae`: the recursion one step at a time."""
    alive = (~terminated).to(rewards.dtype)
    continues = (~(terminated | truncated)).to(rewards.dtype)
    deltas = rewards + gamma * alive * next_values - values
    advantages: list[Tensor] = []
    for t in reversed(range(rewards.shape[0])):
        later = gamma * lam * continues[t] * advantages[-1] if advantages else 0.0
        advantages.append(deltas[t] + later)
    return torch.stack(advantages[::-1]) if advantages else deltas


def gae(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    gamma: float,
    lam: float,
) -> Tensor:
    """Generalized Advantage Estimation (Schulman et al. 2016, eq. 16), computed backwards:

        δ_t = r_t + γ(1 − term_t)·V(s_{t+1}) − V(s_t)
        A_t = δ_t + γλ(1 − term_t)(1 − trunc_t)·A_{t+1},    A_{T−1} = δ_{T−1}

    i.e. A_t = Σ_l (γλ)^l δ_{t+l} within an episode. λ = 0 gives the TD error (low variance,
    biased by the critic); λ = 1 gives the bootstrapped Monte-Carlo return minus V (unbiased for
    an exact V, high variance). A termination removes the bootstrap and cuts the trace; a
    truncation keeps the bootstrap V(s_{t+1}) of the true final observation and only cuts the trace.

    Args:
        rewards: ``[T, *B]``.
        values: ``[T, *B]``, V(s_t).
        next_values: ``[T, *B]``, V(s_{t+1}) of the true next state.
        terminated: ``[T, *B]`` bool or 0/1.
        truncated: ``[T, *B]`` bool or 0/1.
        gamma: the discount γ ∈ [0, 1].
        lam: the trace parameter λ ∈ [0, 1].

    Returns:
        ``[T, *B]`` advantages. On CPU float32/float64 without autograd a compiled scan computes
        them (numba); with inputs that require grad, on GPU, under ``torch.func.vmap``, or
        without numba, a per-step torch loop does, which is differentiable. Both give the same
        numbers. float16 and bfloat16 inputs are computed in float32 and returned in their own
        dtype: the recursion accumulates rounding over T steps, which half precision cannot
        afford.

    Raises:
        TypeError / ValueError: as :func:`td_errors`, and for λ outside [0, 1].

    Example (γ = 0.5, λ = 1, V = 0: A = [1 + 0.5·(2 + 0.5·4), 2 + 0.5·4, 4]):
        >>> t = torch.tensor
        >>> z, no = torch.zeros(3), torch.zeros(3, dtype=torch.bool)
        >>> gae(t([1.0, 2.0, 4.0]), z, z, no, no, gamma=0.5, lam=1.0)
        tensor([3., 4., 4.])
    """
    fn = "gae"
    gamma = _checks.unit_interval(fn, "gamma", gamma)
    lam = _checks.unit_interval(fn, "lam", lam)
    named = {"rewards": rewards, "values": values, "next_values": next_values}
    flags = {"terminated": terminated, "truncated": truncated}
    return _scan(fn, _kernels.gae_scan, _gae_loop, named, flags, gamma, lam)


def _power_of_two_near_max(x: Tensor) -> Tensor:
    """s = 2^(e − 1) where max|x| = m·2^e, m ∈ [½, 1) (frexp): 1 ≤ max|x|/s < 2 on the last axis.

    x/s is exact (a power of two only shifts the exponent) and less than 2 in size, so the sums
    and squares of a mean or a σ taken on x/s can neither overflow (1e200² is inf) nor underflow
    (1e-200² is 0) where the result itself is representable. Only values so much smaller than
    max|x| that x/s is subnormal lose digits, and a sum with max|x| drops those digits anyway. A
    group of zeros gets s = ½. ``[*P, 1]``, a constant for autograd: σ = s·σ(x/s) does not depend
    on s.
    """
    largest = x.detach().abs().amax(dim=-1, keepdim=True)
    return torch.ldexp(torch.ones_like(largest), torch.frexp(largest).exponent - 1)


def _mean(x: Tensor) -> Tensor:
    """μ = s·mean(x/s) over the last axis (kept): the plain mean without its sum overflowing."""
    s = _power_of_two_near_max(x)
    return s * (x / s).mean(dim=-1, keepdim=True)


def _scaled_std(centered: Tensor, correction: int) -> tuple[Tensor, Tensor, Tensor]:
    """(x − μ)/s, σ/s = sqrt(Σ ((x − μ)/s)² / (n − correction)) and s, over the last axis (kept).

    The standard deviation σ of x from x − μ, right for any finite x whose differences are
    representable: the squares of x − μ need not be, those of (x − μ)/s are (s from
    :func:`_power_of_two_near_max`). σ/s is returned rather than σ so that (x − μ)/(σ + ε) can be
    taken as ((x − μ)/s)/(σ/s + ε/s), the same number where σ is a normal float and the right one
    where it is subnormal (σ of 2⁻¹⁰⁷⁴·[0, 1, −1] rounds to 2⁻¹⁰⁷⁴, σ/s is √(2/3)).
    """
    s = _power_of_two_near_max(centered)
    scaled = centered / s
    n = centered.shape[-1]
    return scaled, (scaled.square().sum(dim=-1, keepdim=True) / (n - correction)).sqrt(), s


def _over_s(eps: float, s: Tensor) -> Tensor:
    """ε/s as a true division: torch takes ``eps / s`` as eps·(1/s), NaN for ε = 0, s < 2⁻¹⁰²⁴.

    ε/s is inf where ε > 0 and s < ε·2⁻¹⁰²⁴, which turns advantages that would be subnormal
    (below 2⁻¹⁰²² in size) into 0.
    """
    return torch.div(eps, s)


def normalize_advantages(
    advantages: Tensor, eps: float = 1e-8, *, mask: Tensor | None = None, dim: int | None = None
) -> Tensor:
    """Batch-normalized advantages, (A − mean(A)) / (std(A) + ε), over all elements or ``dim``.

    With a mask m the mean and std are over the kept entries and the masked-out ones give 0:

        μ = Σ m A / Σ m,    σ = sqrt(Σ m (A − μ)² / (Σ m − 1)),    Â = m·(A − μ) / (σ + ε)

    so ``out[mask]`` equals ``normalize_advantages(advantages[mask], eps)``, whatever finite
    values the masked-out entries hold (they get no gradient). Outside vmap a mask must keep at
    least 2 entries; under ``torch.func.vmap`` a row that keeps fewer gives 0 everywhere.

    With ``dim`` (many seeds at once, ``[S, B]`` with ``dim=1``) μ and σ are per row, the sums
    running over that axis only: row s of the result is the call on that row's kept entries
    (placed back, 0 elsewhere), and a row with fewer than 2 (kept, or along ``dim`` without a
    mask) is all 0 with a gradient of 0, also outside vmap; nothing is refused for counts. NaN
    and inf are refused in every entry outside vmap, kept or not.

    std is the sample standard deviation (Bessel-corrected), as in Stable-Baselines3 and CleanRL.
    Rescaling keeps the policy step size independent of the reward scale; centring acts as an
    extra baseline. Unlike :func:`group_advantages` it keeps the plain formula: it runs on every
    minibatch of PPO, A2C and REINFORCE, whose advantages never come near 1e154, where the
    squares overflow.

    Args:
        advantages: any shape; at least 2 elements when ``dim`` is None.
        eps: ε ≥ 0 in the denominator.
        mask: bool or 0/1 of the shape of ``advantages``, the entries to normalize over, or None
            for all.
        dim: the axis to normalize along (e.g. 1 for ``[S, B]``), each row on its own; None
            for all entries together.

    Returns:
        The shape of ``advantages``.

    Example:
        >>> normalize_advantages(torch.tensor([1.0, 2.0, 3.0]))
        tensor([-1.,  0.,  1.])
    """
    fn = "normalize_advantages"
    advantages = _checks.floats(fn, "advantages", advantages)
    eps = _checks.non_negative(fn, "eps", eps)
    if dim is None and advantages.numel() < 2:
        raise BadInputError(
            f"{fn}(): 'advantages' needs at least 2 elements for a standard deviation; "
            f"got shape {tuple(advantages.shape)}"
        )
    dim, mask = _checks.reduction(fn, dim, mask, "advantages", advantages, at_least=2)
    if mask is None:
        if dim is None:
            return (advantages - advantages.mean()) / (advantages.std() + eps)
        mean = advantages.mean(dim=dim, keepdim=True)
        return (advantages - mean) / (advantages.std(dim=dim, keepdim=True) + eps)
    (advantages,) = _masks.zero_outside(mask, advantages)
    variance, centered, enough = _masks.var(advantages, mask, dim)
    return torch.where(mask & enough, centered / (variance.sqrt() + eps), 0.0)


def group_advantages(
    rewards: Tensor, eps: float = 1e-8, unbiased: bool = False, scale: bool = True
) -> Tensor:
    """GRPO group-relative advantages (Shao et al. 2024), Â_i = (r_i − μ) / (σ + ε).

        μ = (1/G) Σ_i r_i,    σ = sqrt((1/G) Σ_i (r_i − μ)²)    (the course's population σ)

    computed as μ = s·(1/G) Σ_i r_i/s and Â_i = ((r_i − μ)/s')/(σ/s' + ε/s') with
    σ/s' = sqrt((1/G) Σ_i ((r_i − μ)/s')²), for powers of two s and s' near max|r_i| and
    max|r_i − μ| (dividing by them is exact): the same numbers, but no sum or square can overflow
    or underflow, so the advantages are right for any finite rewards whose differences are
    representable (1e200 and 1e-200 alike; the plain σ of [1e200, 1] is inf, that of
    [1e-200, 0] is 0).

    The group is the last dimension: ``rewards[p, i]`` scores answer i to prompt p. With
    ``unbiased=True`` σ is the sample standard deviation (divide by G − 1), as TRL, verl and
    OpenRLHF compute it; since sample σ = population σ·sqrt(G/(G − 1)), those advantages are
    sqrt((G − 1)/G) times the default ones (≈ 0.935× at G = 8). ``scale=False`` returns r_i − μ
    (Dr. GRPO). A group whose rewards are all equal carries no signal and gets exactly 0, never NaN.

    Args:
        rewards: ``[*P, G]``, G ≥ 1 (G ≥ 2 when ``unbiased``).
        eps: ε ≥ 0 added to σ.
        unbiased: divide by G − 1 instead of G.
        scale: divide by σ + ε.

    Returns:
        ``[*P, G]``; each group has mean 0 and, when ``scale``, std ≈ 1.

    Example (course page E.3.4: r = [2, 4, 6, 8] has μ = 5, σ = √5, so Â₄ = 3/√5 ≈ 1.34):
        >>> group_advantages(torch.tensor([[2.0, 4.0, 6.0, 8.0]]))
        tensor([[-1.3416, -0.4472,  0.4472,  1.3416]])
    """
    fn = "group_advantages"
    rewards = _checks.floats(fn, "rewards", rewards)
    _checks.rank_at_least(fn, "rewards", rewards, 1, "[*P, G] (groups on the last axis)")
    eps = _checks.non_negative(fn, "eps", eps)
    group_size = rewards.shape[-1]
    if group_size == 0 or (unbiased and group_size < 2):
        need = 2 if unbiased else 1
        raise BadInputError(
            f"{fn}(): the group (last axis of 'rewards') must hold at least {need} reward(s)"
            f"{' with unbiased=True' if unbiased else ''}; got shape {tuple(rewards.shape)}"
        )
    # (r − μ) is not exactly 0 for equal floats (the mean rounds), and σ + ε would then blow that
    # rounding error up; equal groups are set to 0 explicitly.
    all_equal = (rewards == rewards[..., :1]).all(dim=-1, keepdim=True)  # equal_reward_groups
    centered = torch.where(all_equal, 0.0, rewards - _mean(rewards))
    if not scale:
        return centered
    scaled, std, s = _scaled_std(centered, correction=1 if unbiased else 0)  # (r − μ)/s, σ/s
    return scaled / torch.where(all_equal, 1.0, std + _over_s(eps, s))


def batch_scaled_group_advantages(
    rewards: Tensor,
    eps: float = 1e-8,
    unbiased: bool = False,
    batch_rewards: Tensor | None = None,
) -> Tensor:
    """GRPO advantages centred per group, scaled by the batch: Â_i = (r_i − μ_g) / (σ_B + ε).

        μ_g = mean of the group of r_i,    σ_B = std of every reward in the batch

    TRL's ``scale_rewards="batch"`` (after Liu et al. 2025, "Understanding R1-Zero-Like
    Training", who find that σ per group over-weights the groups that are nearly all right or all
    wrong): one σ for the whole batch keeps the centring per group but weighs every group alike.
    ``batch_rewards`` is the whole batch when ``rewards`` is one process's share of it (every
    process's rewards, gathered); by default ``rewards`` itself. Computed with the same powers of
    two as :func:`group_advantages` (the centred rewards and the batch's deviations divided by
    s near their largest), so no sum or square overflows: right for any finite rewards whose
    differences are representable. A batch whose rewards are all equal gets 0 everywhere.

    Args:
        rewards: ``[*P, G]``, groups on the last axis.
        eps: ε ≥ 0 added to σ_B.
        unbiased: σ_B the sample standard deviation (divide by n − 1), else the population's.
        batch_rewards: every reward of the batch (any shape), or None for ``rewards``.

    Returns:
        ``[*P, G]``.

    Example (groups [1, 0] and [2, 2]: centred ±½ and 0; σ_B of [1, 0, 2, 2] is √(11/16) ≈
    0.829, so Â = ±0.603 and 0):
        >>> batch_scaled_group_advantages(torch.tensor([[1.0, 0.0], [2.0, 2.0]]))
        tensor([[ 0.6030, -0.6030],
                [ 0.0000,  0.0000]])
    """
    fn = "batch_scaled_group_advantages"
    rewards = _checks.floats(fn, "rewards", rewards)
    eps = _checks.non_negative(fn, "eps", eps)
    everything = rewards if batch_rewards is None else batch_rewards
    everything = _checks.floats(fn, "batch_rewards", everything).reshape(-1)
    if everything.numel() < (2 if unbiased else 1):
        raise BadInputError(
            f"{fn}(): the batch must hold at least {2 if unbiased else 1} reward(s) for its "
            f"standard deviation{' with unbiased=True' if unbiased else ''}; got "
            f"{everything.numel()}"
        )
    centered = group_advantages(rewards, scale=False)  # r_i − μ_g, exactly 0 in equal groups
    batch_equal = (everything == everything[0]).all()
    deviations = torch.where(batch_equal, 0.0, everything - _mean(everything))
    _, std, s = _scaled_std(deviations, correction=1 if unbiased else 0)  # σ_B/s
    return (centered / s) / torch.where(batch_equal, 1.0, std + _over_s(eps, s))


def equal_reward_groups(rewards: Tensor) -> Tensor:
    """Which groups have all-equal rewards, r_1 = r_2 = … = r_G, ``[*P]`` bool.

    Such a group carries no signal: :func:`group_advantages` gives every member 0, so no
    gradient comes from it (GRPO's ``frac_reward_zero_std`` is the mean of this; DAPO's dynamic
    sampling drops these groups).

    Args:
        rewards: ``[*P, G]``, groups on the last axis.

    Returns:
        ``[*P]`` bool.

    Example (the second group scored every answer 1):
        >>> equal_reward_groups(torch.tensor([[0.0, 1.0], [1.0, 1.0]]))
        tensor([False,  True])
    """
    fn = "equal_reward_groups"
    rewards = _checks.floats(fn, "rewards", rewards)
    _checks.rank_at_least(fn, "rewards", rewards, 1, "[*P, G] (groups on the last axis)")
    return (rewards == rewards[..., :1]).all(dim=-1)
