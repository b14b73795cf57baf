"""The ``mask`` keyword: f(x, mask=m) is f(x[m]), without indexing, also under vmap per row."""

from __future__ import annotations

import pytest
import torch
from torch.func import vmap

import rlgrad
from rlgrad.grpo import masked_mean

N = 9
TOL = {"rtol": 1e-12, "atol": 1e-12}

# Each masked function on per-sample tensors [N]: (call, number of tensor arguments, the fewest
# samples a mask must keep).
MASKED = {
    "ppo_clip_loss": (lambda lp, old, a, **m: rlgrad.ppo_clip_loss(lp, old, a, 0.2, **m), 3, 1),
    "policy_gradient_loss": (rlgrad.policy_gradient_loss, 2, 1),
    "approx_kl": (rlgrad.approx_kl, 2, 1),
    "clip_fraction": (lambda r, **m: rlgrad.clip_fraction(r.exp(), 0.2, **m), 1, 1),
    "value_loss": (rlgrad.value_loss, 2, 1),
    "value_loss_clipped": (lambda v, g, old, **m: rlgrad.value_loss(v, g, old, 0.2, **m), 3, 1),
    "normalize_advantages": (rlgrad.normalize_advantages, 1, 2),
    "explained_variance": (rlgrad.explained_variance, 2, 2),
}


def samples(seed: int, count: int, rows: tuple[int, ...] = ()) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    # log-ratios of ±0.5 put some PPO ratios outside the clip range 1 ± 0.2
    return [0.5 * torch.randn(*rows, N, generator=g, dtype=torch.float64) for _ in range(count)]


def random_mask(seed: int, at_least: int, rows: tuple[int, ...] = ()) -> torch.Tensor:
    g = torch.Generator().manual_seed(1000 + seed)
    mask = torch.rand(*rows, N, generator=g) < 0.6
    mask[..., :at_least] = True  # enough kept samples, and then shuffled along the row
    return mask.gather(-1, torch.rand(*rows, N, generator=g).argsort(dim=-1))


def weighted(out: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """A scalar that depends on every output entry differently (Σ Â is 0 for normalized Â)."""
    return (out * weights[: out.numel()].reshape(out.shape)).sum()


def grads(scalar: torch.Tensor, xs: list[torch.Tensor]) -> list[torch.Tensor]:
    if not scalar.requires_grad:
        return [torch.zeros_like(x) for x in xs]
    found = torch.autograd.grad(scalar, xs, allow_unused=True)
    return [torch.zeros_like(x) if d is None else d for x, d in zip(xs, found, strict=True)]


def on_kept(name: str, out: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The part of a masked call's result that f(x[mask]) gives: normalize keeps the shape."""
    return out[mask] if name == "normalize_advantages" else out


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("name", sorted(MASKED))
def test_a_mask_gives_the_call_on_the_kept_samples_values_and_gradients(name, seed):
    fn, count, at_least = MASKED[name]
    xs = [x.requires_grad_(True) for x in samples(seed, count)]
    mask = random_mask(seed, at_least)
    assert 0 < mask.sum() < N  # the mask really leaves samples out
    weights = torch.linspace(0.5, 2.0, N, dtype=torch.float64)

    masked = fn(*xs, mask=mask)
    indexed = fn(*(x[mask] for x in xs))
    torch.testing.assert_close(on_kept(name, masked, mask), indexed, **TOL)
    if name == "normalize_advantages":
        assert (masked[~mask] == 0).all()
    d_masked = grads(weighted(on_kept(name, masked, mask), weights), xs)
    d_indexed = grads(weighted(indexed, weights), xs)
    for a, b in zip(d_masked, d_indexed, strict=True):
        torch.testing.assert_close(a, b, **TOL)
        assert (a[~mask] == 0).all()
    if masked.requires_grad:
        assert any(d.abs().sum() > 0 for d in d_masked)  # something to compare


@pytest.mark.parametrize("name", sorted(MASKED))
def test_an_all_true_mask_equals_no_mask(name):
    fn, count, _ = MASKED[name]
    xs = samples(1, count)
    everything = torch.ones(N, dtype=torch.bool)
    torch.testing.assert_close(fn(*xs, mask=everything), fn(*xs), **TOL)


# The formulas as they were coded before the mask existed: without a mask the numbers must stay
# bit for bit (float32, where rounding differences would show).
def old_ppo(lp, old, a):
    return -rlgrad.ppo_objective(torch.exp(lp - old), a, 0.2).mean()


def old_value_loss_clipped(v, g, old):
    clipped = old + (v - old).clamp(-0.2, 0.2)
    return 0.5 * torch.maximum((v - g) ** 2, (clipped - g) ** 2).mean()


OLD = {
    "ppo_clip_loss": old_ppo,
    "policy_gradient_loss": lambda lp, a: -(a * lp).mean(),
    "approx_kl": lambda lp, old: (torch.expm1(lp - old) - (lp - old)).mean(),
    "clip_fraction": lambda r: ((r.exp() - 1.0).abs() > 0.2).to(r.dtype).mean(),
    "value_loss": lambda v, g: 0.5 * ((v - g) ** 2).mean(),
    "value_loss_clipped": old_value_loss_clipped,
    "normalize_advantages": lambda a: (a - a.mean()) / (a.std() + 1e-8),
    "explained_variance": lambda v, g: 1 - (g - v).var() / g.var(),
}


@pytest.mark.parametrize("name", sorted(MASKED))
def test_without_a_mask_the_numbers_are_bit_for_bit_the_old_ones(name):
    fn, count, _ = MASKED[name]
    for seed in range(3):
        xs = [x.float() for x in samples(seed, count, rows=(7,))]
        assert torch.equal(fn(*xs), OLD[name](*xs))


def test_masked_mean_keeps_its_old_arithmetic():
    x = samples(2, 1, rows=(3,))[0].float()
    mask = random_mask(2, 1, rows=(3,)).int()
    weights = mask.float()
    assert torch.equal(masked_mean(x, mask), (x * weights).sum() / weights.sum().clamp(min=1.0))
    expected = (x * weights).sum(dim=-1) / weights.sum(dim=-1).clamp(min=1.0)
    assert torch.equal(masked_mean(x, mask, dim=-1), expected)


@pytest.mark.parametrize("name", sorted(MASKED))
def test_under_vmap_each_row_keeps_its_own_samples(name):
    fn, count, at_least = MASKED[name]
    rows = 4
    xs = [x.requires_grad_(True) for x in samples(5, count, rows=(rows,))]
    masks = random_mask(5, at_least, rows=(rows,))
    masks[0] = True  # one row keeps everything, the others different subsets
    assert len({tuple(m.tolist()) for m in masks}) == rows
    weights = torch.linspace(0.5, 2.0, N, dtype=torch.float64)

    mapped = vmap(lambda *args: fn(*args[:-1], mask=args[-1]))(*xs, masks)
    per_row = [fn(*(x[s][masks[s]] for x in xs)) for s in range(rows)]
    for s in range(rows):
        torch.testing.assert_close(on_kept(name, mapped[s], masks[s]), per_row[s], **TOL)
    scalar = sum(weighted(on_kept(name, mapped[s], masks[s]), weights) for s in range(rows))
    expected = sum(weighted(out, weights) for out in per_row)
    for a, b in zip(grads(scalar, xs), grads(expected, xs), strict=True):
        torch.testing.assert_close(a, b, **TOL)


@pytest.mark.parametrize("name", sorted(MASKED))
def test_under_vmap_a_row_that_keeps_too_few_samples_gives_a_finite_zero(name):
    fn, count, at_least = MASKED[name]
    xs = [x.requires_grad_(True) for x in samples(6, count, rows=(3,))]
    masks = random_mask(6, at_least, rows=(3,))
    masks[1] = False
    masks[1, 4] = at_least == 2  # one sample is too few for a standard deviation
    mapped = vmap(lambda *args: fn(*args[:-1], mask=args[-1]))(*xs, masks)
    assert (mapped[1] == 0).all()
    assert torch.isfinite(mapped).all()
    for d in grads(mapped.sum(), xs):
        assert torch.isfinite(d).all()
        assert (d[1] == 0).all()


@pytest.mark.parametrize("name", sorted(MASKED))
def test_outside_vmap_a_mask_that_keeps_too_few_samples_is_refused(name):
    fn, count, at_least = MASKED[name]
    xs = samples(7, count)
    mask = torch.zeros(N, dtype=torch.bool)
    mask[3] = at_least == 2
    with pytest.raises(rlgrad.BadInputError) as refused:
        fn(*xs, mask=mask)
    message = str(refused.value)
    assert "\n" not in message
    assert f"'mask' must keep at least {at_least} sample(s)" in message
    assert f"got {at_least - 1} of {N}" in message


@pytest.mark.parametrize("name", sorted(MASKED))
def test_a_mask_of_another_shape_is_refused(name):
    fn, count, _ = MASKED[name]
    with pytest.raises(rlgrad.BadInputError, match=r"'mask' must have the shape of"):
        fn(*samples(8, count), mask=torch.ones(N, 1, dtype=torch.bool))


@pytest.mark.parametrize("name", sorted(MASKED))
def test_large_masked_out_values_change_nothing(name):
    # exp(1e30) is inf and 0·inf NaN: padding must be set aside before any arithmetic.
    fn, count, at_least = MASKED[name]
    xs = samples(9, count)
    mask = random_mask(9, at_least)
    padded = [torch.where(mask, x, 1e30).requires_grad_(True) for x in xs]
    clean = [torch.where(mask, x, 0.0).requires_grad_(True) for x in xs]
    out_padded, out_clean = fn(*padded, mask=mask), fn(*clean, mask=mask)
    assert torch.equal(out_padded, out_clean)
    weights = torch.linspace(0.5, 2.0, N, dtype=torch.float64)
    d_padded = grads(weighted(out_padded, weights), padded)
    for a, b in zip(d_padded, grads(weighted(out_clean, weights), clean), strict=True):
        assert torch.equal(a, b)
        assert (a[~mask] == 0).all()


@pytest.mark.parametrize("name", sorted(MASKED))
def test_nan_padding_is_refused_outside_vmap_and_harmless_under_it(name):
    # The documented choice: outside vmap every entry is checked for NaN, padding included (a
    # NaN is a diverging run's symptom wherever it sits); under vmap, where nothing is checked, a
    # NaN in a masked-out entry reaches neither the result nor the gradient.
    fn, count, at_least = MASKED[name]
    xs = samples(10, count, rows=(2,))
    masks = random_mask(10, at_least, rows=(2,))
    masks[:, 0] = False
    with_nan = [torch.where(masks, x, 0.0) for x in xs]
    for x in with_nan:
        x[:, 0] = float("nan")
    with pytest.raises(rlgrad.NonFiniteError):
        fn(*(x[0] for x in with_nan), mask=masks[0])
    with_nan = [x.requires_grad_(True) for x in with_nan]
    mapped = vmap(lambda *args: fn(*args[:-1], mask=args[-1]))(*with_nan, masks)
    expected = torch.stack([fn(*(x[s] for x in xs), mask=masks[s]) for s in range(2)])
    torch.testing.assert_close(mapped, expected, **TOL)
    for d in grads(mapped.sum(), with_nan):
        assert torch.isfinite(d).all()
        assert (d[:, 0] == 0).all()
