"""The formulas under torch.func.vmap over a leading seed axis, as a trainer of many seeds does.

Each formula mapped over S stacked rows must equal the per-row calls stacked, values and gradients
(float64, 1e-12), while its value checks still raise outside vmap.
"""

from __future__ import annotations

import pytest
import torch
from torch.func import grad, vmap

import rlgrad
from rlgrad import _checks
from rlgrad.grpo import masked_mean

SEEDS, N, A, D, T = 3, 5, 4, 2, 6
TOL = {"rtol": 1e-12, "atol": 1e-12}


def randn(g: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=g, dtype=torch.float64)


def flags(g: torch.Generator, *shape: int, p: float = 0.3) -> torch.Tensor:
    return torch.rand(*shape, generator=g, dtype=torch.float64) < p


def case_inputs(name: str, g: torch.Generator) -> tuple[list[torch.Tensor], list[int]]:
    """``[S, ...]`` inputs of each case and the positions of the differentiable ones."""
    S = SEEDS
    old = -randn(g, S, N).abs()
    log_probs = old + 0.4 * randn(g, S, N)  # ratios e^±0.4: some inside the clip range, some out
    ratios = (0.4 * randn(g, S, N)).exp()
    if name in ("ppo_clip_loss",):
        return [log_probs, old, randn(g, S, N)], [0]
    if name == "ppo_objective":
        return [ratios, randn(g, S, N)], [0]
    if name in ("policy_gradient_loss",):
        return [log_probs, randn(g, S, N)], [0]
    if name == "approx_kl":
        return [log_probs, old], [0, 1]
    if name == "clip_fraction":
        return [ratios], []
    if name == "value_loss":
        return [randn(g, S, N), randn(g, S, N)], [0]
    if name == "value_loss_clipped":
        values = randn(g, S, N)
        return [values, randn(g, S, N), values + 0.5 * randn(g, S, N)], [0]
    if name in ("normalize_advantages",):
        return [randn(g, S, N)], [0]
    if name == "explained_variance":
        return [randn(g, S, N), randn(g, S, N)], []
    if name == "categorical_log_prob":
        return [randn(g, S, N, A), torch.randint(0, A, (S, N), generator=g)], [0]
    if name == "categorical_entropy":
        return [randn(g, S, N, A)], [0]
    if name == "gaussian_log_prob":
        return [randn(g, S, N, D), randn(g, S, N, D), 0.3 * randn(g, S, D)], [1, 2]
    if name == "gaussian_entropy":
        return [randn(g, S, N, D)], [0]
    if name == "entropy_loss":
        return [randn(g, S).abs()], [0]
    if name == "masked_mean":
        mask = flags(g, S, N, p=0.6)
        mask[:, 0] = True
        return [randn(g, S, N), mask], [0]
    if name in ("dqn_targets", "double_dqn_targets"):
        # terminated as 0/1 floats, so that the flag check is exercised; per-sample discounts
        inputs = [randn(g, S, N), randn(g, S, N, A), flags(g, S, N).double()]
        inputs.append(0.5 + 0.5 * torch.rand(S, N, generator=g, dtype=torch.float64))
        if name == "double_dqn_targets":
            inputs.append(randn(g, S, N, A))
        return inputs, []
    if name in ("dqn_loss", "dqn_loss_huber"):
        q = 2 * randn(g, S, N, A)
        return [q, torch.randint(0, A, (S, N), generator=g), randn(g, S, N)], [0]
    if name in ("gae", "discounted_returns", "td_errors"):
        rewards, values, next_values = randn(g, S, T, N), randn(g, S, T, N), randn(g, S, T, N)
        terminated, truncated = flags(g, S, T, N, p=0.2), flags(g, S, T, N, p=0.2)
        if name == "gae":
            return [rewards, values, next_values, terminated, truncated], [0, 1, 2]
        if name == "td_errors":
            return [rewards, values, next_values, terminated], [0, 1, 2]
        return [rewards, terminated, truncated, next_values], [0, 3]
    raise KeyError(name)


CASES = {
    "ppo_clip_loss": lambda lp, old, adv: rlgrad.ppo_clip_loss(lp, old, adv, clip_eps=0.2),
    "ppo_objective": lambda r, adv: rlgrad.ppo_objective(r, adv, clip_eps=0.2),
    "policy_gradient_loss": rlgrad.policy_gradient_loss,
    "approx_kl": rlgrad.approx_kl,
    "clip_fraction": lambda r: rlgrad.clip_fraction(r, clip_eps=0.2),
    "value_loss": rlgrad.value_loss,
    "value_loss_clipped": lambda v, g, old: rlgrad.value_loss(v, g, old, clip_eps=0.2),
    "normalize_advantages": rlgrad.normalize_advantages,
    "explained_variance": rlgrad.explained_variance,
    "categorical_log_prob": rlgrad.categorical_log_prob,
    "categorical_entropy": rlgrad.categorical_entropy,
    "gaussian_log_prob": rlgrad.gaussian_log_prob,
    "gaussian_entropy": rlgrad.gaussian_entropy,
    "entropy_loss": lambda h: rlgrad.entropy_loss(h, ent_coef=0.01),
    "masked_mean": masked_mean,
    "dqn_targets": lambda r, q, term, gamma: rlgrad.dqn_targets(r, q, term, gamma),
    "double_dqn_targets": lambda r, q, term, gamma, q_online: rlgrad.dqn_targets(
        r, q, term, gamma, next_q_online=q_online
    ),
    "dqn_loss": rlgrad.dqn_loss,
    "dqn_loss_huber": lambda q, a, y: rlgrad.dqn_loss(q, a, y, kind="huber"),
    "gae": lambda r, v, nv, term, trunc: rlgrad.gae(r, v, nv, term, trunc, gamma=0.9, lam=0.8),
    "discounted_returns": lambda r, term, trunc, nv: rlgrad.discounted_returns(
        r, term, trunc, gamma=0.9, next_values=nv
    ),
    "td_errors": lambda r, v, nv, term: rlgrad.td_errors(r, v, nv, term, gamma=0.9),
}


def gradients(outputs: torch.Tensor, wrt: list[torch.Tensor]) -> list[torch.Tensor]:
    found = torch.autograd.grad(outputs.sum(), wrt, allow_unused=True)
    return [torch.zeros_like(x) if d is None else d for x, d in zip(wrt, found, strict=True)]


@pytest.mark.parametrize("name", sorted(CASES))
def test_vmap_over_seeds_equals_the_per_seed_loop_values_and_gradients(name):
    inputs, differentiable = case_inputs(name, torch.Generator().manual_seed(len(name)))
    for i in differentiable:
        inputs[i].requires_grad_(True)
    fn = CASES[name]
    mapped = vmap(fn)(*inputs)
    looped = torch.stack([fn(*(x[s] for x in inputs)) for s in range(SEEDS)])
    torch.testing.assert_close(mapped, looped, **TOL)
    assert torch.isfinite(mapped).all()
    if differentiable:
        wrt = [inputs[i] for i in differentiable]
        for d_mapped, d_looped in zip(gradients(mapped, wrt), gradients(looped, wrt), strict=True):
            torch.testing.assert_close(d_mapped, d_looped, **TOL)
            assert d_looped.abs().sum() > 0  # a gradient that is all 0 would compare nothing


@pytest.mark.parametrize("name", ["gae", "discounted_returns"])
def test_vmap_without_autograd_equals_the_compiled_scan_per_seed(name):
    # Without gradients a plain call takes the numba kernel; under vmap the torch loop must run
    # (the kernel reads memory a batched tensor does not have) and give the same numbers.
    inputs, _ = case_inputs(name, torch.Generator().manual_seed(7))
    fn = CASES[name]
    with torch.no_grad():
        mapped = vmap(fn)(*inputs)
        looped = torch.stack([fn(*(x[s] for x in inputs)) for s in range(SEEDS)])
    torch.testing.assert_close(mapped, looped, **TOL)


def ppo_loss_of(log_probs, old_log_probs, advantages):
    return rlgrad.ppo_clip_loss(log_probs, old_log_probs, advantages, clip_eps=0.2)


def test_vmap_of_grad_and_grad_of_vmap_equal_the_per_seed_gradients():
    # vmap(grad(f)) wraps a BatchedTensor in a GradTrackingTensor, grad(vmap(f)) the other way
    # round: the checks must see the batch through either wrapping.
    log_probs, old, advantages = case_inputs("ppo_clip_loss", torch.Generator().manual_seed(3))[0]
    looped = torch.stack(
        [grad(ppo_loss_of)(log_probs[s], old[s], advantages[s]) for s in range(SEEDS)]
    )
    per_seed = vmap(grad(ppo_loss_of))(log_probs, old, advantages)
    summed = grad(lambda lp: vmap(ppo_loss_of)(lp, old, advantages).sum())(log_probs)
    torch.testing.assert_close(per_seed, looped, **TOL)
    torch.testing.assert_close(summed, looped, **TOL)


def test_batched_sees_the_batch_through_every_wrapping():
    x = torch.ones(3, 2)
    seen = []

    def record(row):
        seen.append(_checks.batched(row))
        return row.sum()

    vmap(record)(x)
    vmap(grad(record))(x)
    grad(lambda x: vmap(record)(x).sum())(x)
    grad(record)(x[0])  # autograd alone batches nothing: its values can still be checked
    assert seen == [True, True, True, False]
    assert not _checks.batched(x)


def test_a_nan_seed_under_vmap_spoils_its_own_loss_only():
    # The trainer guards each seed itself: a NaN in one seed's data must not raise, nor leak into
    # the other seeds' losses.
    log_probs, old, advantages = case_inputs("ppo_clip_loss", torch.Generator().manual_seed(5))[0]
    log_probs[1, 2] = float("nan")
    losses = vmap(ppo_loss_of)(log_probs, old, advantages)
    assert torch.isnan(losses[1])
    assert torch.isfinite(losses[[0, 2]]).all()


def test_a_per_seed_gamma_is_refused_with_a_message_under_vmap():
    rewards = torch.zeros(SEEDS, T, N, dtype=torch.float64)
    z = torch.zeros_like(rewards, dtype=torch.bool)
    gammas = torch.full((SEEDS,), 0.9, dtype=torch.float64)
    with pytest.raises(TypeError, match=r"gae\(\): 'gamma' must be a number, the same for every"):
        vmap(lambda r, g: rlgrad.gae(r, r, r, z[0], z[0], gamma=g, lam=0.9))(rewards, gammas)


@pytest.mark.parametrize("name", sorted(CASES))
def test_outside_vmap_a_nan_is_still_refused(name):
    inputs, _ = case_inputs(name, torch.Generator().manual_seed(11))
    row = [x[0].clone() for x in inputs]
    first_float = next(i for i, x in enumerate(row) if x.is_floating_point())
    row[first_float].view(-1)[0] = float("nan")
    with pytest.raises(rlgrad.NonFiniteError, match=r"NaN|nan"):
        CASES[name](*row)


def test_outside_vmap_flags_other_than_0_or_1_are_still_refused():
    rewards = torch.zeros(N, dtype=torch.float64)
    terminated = torch.full((N,), 0.5, dtype=torch.float64)
    with pytest.raises(rlgrad.BadInputError, match="0/1"):
        rlgrad.dqn_targets(rewards, torch.zeros(N, A, dtype=torch.float64), terminated, 0.9)


def test_masked_actions_under_vmap_give_the_per_seed_entropy_and_kl():
    # Under vmap the entropy and the KL cannot look for −inf first; they take the path that
    # handles it, with the numbers (and finite gradients) of the checked per-seed calls.
    g = torch.Generator().manual_seed(13)
    logits, other = randn(g, SEEDS, N, A), randn(g, SEEDS, N, A)
    logits[0, 1, 2] = logits[2, 0, 0] = float("-inf")
    other[0, 1, 2] = float("-inf")  # q may mask where p does
    logits.requires_grad_(True)
    for fn in (lambda p, q: rlgrad.categorical_entropy(p), rlgrad.categorical_kl):
        mapped = vmap(fn)(logits, other)
        looped = torch.stack([fn(logits[s], other[s]) for s in range(SEEDS)])
        torch.testing.assert_close(mapped, looped, **TOL)
        (d_mapped,), (d_looped,) = gradients(mapped, [logits]), gradients(looped, [logits])
        torch.testing.assert_close(d_mapped, d_looped, **TOL)
        assert torch.isfinite(d_mapped).all()
