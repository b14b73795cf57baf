"""The ``dim`` keyword: one result per row of ``[S, B]`` (a seed each), natively, without vmap.

Row s of ``f(x, mask=m, dim=1)`` must equal ``f(x[s][m[s]])``, values and gradients (float64,
1e-12); a row that keeps too few samples gives the documented finite value (0) with a zero
gradient, outside vmap too, where ``dim=None`` would refuse the mask.
"""

from __future__ import annotations

import pytest
import torch
from test_masks import MASKED

import rlgrad

TOL = {"rtol": 1e-12, "atol": 1e-12}

# The functions that take mask= and dim=, as test_masks lists them: (call, number of tensor
# arguments, the fewest kept samples a row needs for a real value; a row with fewer gives 0).
FUNCTIONS = MASKED
# normalize_advantages returns the input's shape; the others reduce the axis away.
KEEPS_SHAPE = {"normalize_advantages"}


def random_case(seed: int, count: int, at_least: int, extra: tuple[int, ...] = ()):
    """``count`` tensors of a random shape [S, B, *extra] and a mask of that shape whose first
    row (along B) keeps nothing, second keeps one sample, and the others random subsets."""
    g = torch.Generator().manual_seed(seed)
    S = int(torch.randint(4, 7, (), generator=g))
    B = int(torch.randint(3, 10, (), generator=g))
    shape = (S, B, *extra)
    # log-ratios of ±0.5 put some PPO ratios outside the clip range 1 ± 0.2
    xs = [0.5 * torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(count)]
    mask = torch.rand(shape, generator=g) < 0.6
    mask[:, :at_least] = True  # every other row keeps enough, shuffled along B below
    order = torch.rand(shape, generator=g).argsort(dim=1)
    mask = mask.gather(1, order)
    mask[0] = False
    mask[1] = False
    mask[1, int(torch.randint(0, B, (), generator=g))] = True
    weights = torch.rand(shape, generator=g, dtype=torch.float64) + 0.5
    return xs, mask, weights


def grads(scalar: torch.Tensor, xs: list[torch.Tensor]) -> list[torch.Tensor]:
    if not scalar.requires_grad:
        return [torch.zeros_like(x) for x in xs]
    found = torch.autograd.grad(scalar, xs, allow_unused=True)
    return [torch.zeros_like(x) if d is None else d for x, d in zip(xs, found, strict=True)]


def lines(shape: torch.Size, dim: int):
    """Every index of ``shape`` with a full slice at ``dim``: the rows a reduction over it sees."""
    others = [range(n) for i, n in enumerate(shape) if i != dim]
    for index in torch.cartesian_prod(*(torch.tensor(r) for r in others)).reshape(-1, len(others)):
        index = [int(i) for i in index]
        index.insert(dim, slice(None))
        yield tuple(index)


def per_row_reference(name, xs, mask, weights, dim):
    """Σ over rows of weights·f(row's kept samples), by a Python loop over the rows; and the
    expected result, with the documented 0 for rows that keep too few."""
    fn, _, at_least = FUNCTIONS[name]
    reduced_shape = xs[0].shape if name in KEEPS_SHAPE else xs[0].sum(dim=dim).shape
    expected = torch.zeros(reduced_shape, dtype=torch.float64)
    scalar = torch.zeros((), dtype=torch.float64)
    for row in lines(xs[0].shape, dim):
        kept = mask[row] if mask is not None else torch.ones_like(xs[0][row], dtype=torch.bool)
        if int(kept.sum()) < at_least:
            continue  # the documented value, 0, stays; it depends on nothing
        out = fn(*(x[row][kept] for x in xs))
        if name in KEEPS_SHAPE:
            expected[row] = torch.zeros_like(expected[row]).masked_scatter(kept, out.detach())
            scalar = scalar + (weights[row][kept] * out).sum()
        else:
            reduced = row[:dim] + row[dim + 1 :]
            expected[reduced] = out.detach()
            scalar = scalar + weights[row][0] * out
    return expected, scalar


def weighted(name: str, out: torch.Tensor, weights: torch.Tensor, dim: int) -> torch.Tensor:
    """A scalar that weighs every result entry differently (Σ Â over a row is 0 for normalized
    Â, so a plain sum would not see a wrong gradient); the reference uses the same weights."""
    if name in KEEPS_SHAPE:
        return (weights * out).sum()
    return (weights.select(dim, 0) * out).sum()


@pytest.mark.parametrize("dim", [1, -1])
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_each_row_is_the_call_on_its_kept_samples(name, seed, dim):
    fn, count, at_least = FUNCTIONS[name]
    xs, mask, weights = random_case(seed, count, at_least)
    xs = [x.requires_grad_(True) for x in xs]

    out = fn(*xs, mask=mask, dim=dim)
    expected, reference_scalar = per_row_reference(name, xs, mask, weights, 1)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, **TOL)
    d_out = grads(weighted(name, out, weights, 1), xs)
    d_expected = grads(reference_scalar, xs)
    for a, b in zip(d_out, d_expected, strict=True):
        torch.testing.assert_close(a, b, **TOL)
        assert (a[~mask] == 0).all()
    if out.requires_grad:
        assert any(d[2:].abs().sum() > 0 for d in d_out)  # something to compare
    # the rows that keep too few: finite zeros, zero gradients, and no error
    too_few = slice(0, 2) if at_least == 2 else slice(0, 1)
    assert (out[too_few] == 0).all()
    for d in d_out:
        assert torch.isfinite(d).all()
        assert (d[too_few] == 0).all()


@pytest.mark.parametrize("dim", [1, -1])
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_without_a_mask_each_row_is_the_call_on_the_row(name, dim):
    fn, count, at_least = FUNCTIONS[name]
    xs, _, weights = random_case(11, count, at_least)
    xs = [x.requires_grad_(True) for x in xs]
    out = fn(*xs, dim=dim)
    expected, reference_scalar = per_row_reference(name, xs, None, weights, 1)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, **TOL)
    d_out = grads(weighted(name, out, weights, 1), xs)
    for a, b in zip(d_out, grads(reference_scalar, xs), strict=True):
        torch.testing.assert_close(a, b, **TOL)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_three_dimensions_reduce_the_middle_axis(name):
    # [S, B, K] with dim=1: one result per (s, k), each the call on x[s, :, k] where kept.
    fn, count, at_least = FUNCTIONS[name]
    xs, mask, weights = random_case(21, count, at_least, extra=(3,))
    xs = [x.requires_grad_(True) for x in xs]
    out = fn(*xs, mask=mask, dim=1)
    expected, reference_scalar = per_row_reference(name, xs, mask, weights, 1)
    assert out.shape == expected.shape
    assert expected.shape[:1] + expected.shape[-1:] == (xs[0].shape[0], 3)
    torch.testing.assert_close(out, expected, **TOL)
    d_out = grads(weighted(name, out, weights, 1), xs)
    for a, b in zip(d_out, grads(reference_scalar, xs), strict=True):
        torch.testing.assert_close(a, b, **TOL)
    # the last axis as the reduced one gives each [s, b] its own result
    out_last = fn(*xs, mask=mask, dim=2)
    expected_last, _ = per_row_reference(name, xs, mask, weights, 2)
    torch.testing.assert_close(out_last, expected_last, **TOL)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_dim_none_still_reduces_everything(name):
    fn, count, at_least = FUNCTIONS[name]
    xs, mask, _ = random_case(31, count, at_least)
    # whole tensor, unmasked: the same arithmetic as on the flattened samples, bit for bit
    whole = fn(*xs, dim=None)
    flat = fn(*(x.flatten() for x in xs))
    assert torch.equal(whole.flatten() if name in KEEPS_SHAPE else whole, flat)
    masked = fn(*xs, mask=mask, dim=None)
    indexed = fn(*(x[mask] for x in xs))
    torch.testing.assert_close(masked[mask] if name in KEEPS_SHAPE else masked, indexed, **TOL)
    # and a mask that keeps too few for the whole call is still refused without dim
    nothing = torch.zeros_like(mask)
    with pytest.raises(rlgrad.BadInputError, match="'mask' must keep at least"):
        fn(*xs, mask=nothing)
    assert torch.isfinite(fn(*xs, mask=nothing, dim=1)).all()


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_an_axis_too_short_without_a_mask_gives_zeros_not_nan(name):
    fn, count, at_least = FUNCTIONS[name]
    xs = [torch.randn(3, at_least - 1, dtype=torch.float64, requires_grad=True)]
    xs = xs + [torch.randn(3, at_least - 1, dtype=torch.float64) for _ in range(count - 1)]
    out = fn(*xs, dim=1)
    assert out.shape == ((3, at_least - 1) if name in KEEPS_SHAPE else (3,))
    assert (out == 0).all()
    for d in grads(out.sum(), xs[:1]):
        assert (d == 0).all()


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_large_padding_changes_nothing_under_dim(name):
    # exp(1e200) and 1e200² are inf, and 0·inf NaN: padding is set aside before any arithmetic,
    # per row too.
    fn, count, at_least = FUNCTIONS[name]
    xs, mask, weights = random_case(41, count, at_least)
    assert not mask.all()
    # clip_fraction takes exp of its input: −1e200 becomes a ratio of 0, far outside the range
    padding = -1e200 if name == "clip_fraction" else 1e200
    padded = [torch.where(mask, x, padding).requires_grad_(True) for x in xs]
    clean = [torch.where(mask, x, 0.0).requires_grad_(True) for x in xs]
    out_padded, out_clean = fn(*padded, mask=mask, dim=1), fn(*clean, mask=mask, dim=1)
    assert torch.equal(out_padded, out_clean)
    d_padded = grads(weighted(name, out_padded, weights, 1), padded)
    for a, b in zip(d_padded, grads(weighted(name, out_clean, weights, 1), clean), strict=True):
        assert torch.equal(a, b)
        assert (a[~mask] == 0).all()


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_nan_padding_is_refused_under_dim_and_names_the_seed(name):
    # The documented choice: outside vmap every entry is checked, kept or not, as without dim; the
    # index in the message starts with the seed, so a trainer can tell which one diverged.
    fn, count, at_least = FUNCTIONS[name]
    xs, mask, _ = random_case(51, count, at_least)
    xs[0][2, 0] = float("nan")
    mask[2, 0] = False
    with pytest.raises(rlgrad.NonFiniteError, match=r"at index \(2, 0\)"):
        fn(*xs, mask=mask, dim=1)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_a_dim_that_is_no_axis_is_refused(name):
    fn, count, _ = FUNCTIONS[name]
    xs = [torch.randn(2, 3, dtype=torch.float64) for _ in range(count)]
    with pytest.raises(rlgrad.BadInputError, match=r"'dim' must be an axis of .* \(2, 3\), in "):
        fn(*xs, dim=2)
    with pytest.raises(rlgrad.BadInputError, match=r"'dim' must be an axis"):
        fn(*xs, dim=-3)
    for wrong in (True, 1.0):
        with pytest.raises(TypeError, match=r"'dim' must be an integer or None"):
            fn(*xs, dim=wrong)


def test_the_worked_example_of_two_seeds():
    # seed 0 keeps both: −(e^0.1·2 + 1·1)/2; seed 1 keeps its first only: r = 1, Â = 3 → −3.
    log_probs = torch.tensor([[0.1, 0.0], [0.0, 5.0]], dtype=torch.float64)
    advantages = torch.tensor([[2.0, 1.0], [3.0, 9.0]], dtype=torch.float64)
    mask = torch.tensor([[True, True], [True, False]])
    old_log_probs = torch.zeros_like(log_probs)
    loss = rlgrad.ppo_clip_loss(log_probs, old_log_probs, advantages, mask=mask, dim=1)
    expected = torch.tensor([-(2 * torch.e**0.1 + 1) / 2, -3.0], dtype=torch.float64)
    torch.testing.assert_close(loss, expected, **TOL)
