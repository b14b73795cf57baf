"""TD errors, discounted returns, GAE and group advantages: identities, fast path, batching."""

import decimal
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import rlgrad
from rlgrad import returns as returns_module


def rollout(seed, steps, batch, p_term, p_trunc, dtype=torch.float64):
    """Random [T, *B] rollout data with episode ends."""
    g = torch.Generator().manual_seed(seed)
    shape = (steps, *batch)
    rewards = torch.randn(shape, generator=g, dtype=dtype) * 3
    values = torch.randn(shape, generator=g, dtype=dtype)
    next_values = torch.randn(shape, generator=g, dtype=dtype)
    terminated = torch.rand(shape, generator=g) < p_term
    truncated = torch.rand(shape, generator=g) < p_trunc
    return rewards, values, next_values, terminated, truncated


rollouts = st.builds(
    rollout,
    seed=st.integers(0, 2**31 - 1),
    steps=st.integers(1, 24),
    # 37 and 4·20 columns: rows that start mid cache line, so the compiled scan uses its
    # per-element head and tail as well as whole lines.
    batch=st.sampled_from([(), (1,), (3,), (2, 3), (37,), (4, 20)]),
    p_term=st.sampled_from([0.0, 0.1, 0.5]),
    p_trunc=st.sampled_from([0.0, 0.1, 0.5]),
)
unit = st.floats(0.0, 1.0)


@given(rollouts, unit)
def test_gae_lambda_zero_is_td_error(data, gamma):
    rewards, values, next_values, terminated, truncated = data
    advantages = rlgrad.gae(rewards, values, next_values, terminated, truncated, gamma, lam=0.0)
    deltas = rlgrad.td_errors(rewards, values, next_values, terminated, gamma)
    torch.testing.assert_close(advantages, deltas, rtol=1e-12, atol=1e-12)


def consistent_next_values(values, next_values, terminated, truncated):
    """V(s_{t+1}) = values[t+1] wherever the rollout continues the same episode."""
    consistent = next_values.clone()
    continues = ~(terminated | truncated)
    consistent[:-1] = torch.where(continues[:-1], values[1:], next_values[:-1])
    return consistent


@given(rollouts, unit)
def test_gae_lambda_one_plus_value_is_bootstrapped_return(data, gamma):
    rewards, values, next_values, terminated, truncated = data
    next_values = consistent_next_values(values, next_values, terminated, truncated)
    advantages = rlgrad.gae(rewards, values, next_values, terminated, truncated, gamma, lam=1.0)
    returns = rlgrad.discounted_returns(rewards, terminated, truncated, gamma, next_values)
    torch.testing.assert_close(advantages + values, returns, rtol=1e-10, atol=1e-10)


@given(rollouts, unit, unit)
def test_gae_compiled_scan_equals_reference_loop(data, gamma, lam):
    rewards, values, next_values, terminated, truncated = data
    fast = rlgrad.gae(rewards, values, next_values, terminated, truncated, gamma, lam)
    slow = returns_module._gae_loop(rewards, values, next_values, terminated, truncated, gamma, lam)
    torch.testing.assert_close(fast, slow, rtol=1e-12, atol=1e-12)


@given(rollouts, unit)
def test_returns_compiled_scan_equals_reference_loop(data, gamma):
    rewards, _, next_values, terminated, truncated = data
    fast = rlgrad.discounted_returns(rewards, terminated, truncated, gamma, next_values)
    slow = returns_module._returns_loop(rewards, next_values, terminated, truncated, gamma)
    torch.testing.assert_close(fast, slow, rtol=1e-12, atol=1e-12)


@given(rollouts, unit, unit)
def test_gae_batched_call_equals_per_column_calls(data, gamma, lam):
    rewards, values, next_values, terminated, truncated = data
    batched = rlgrad.gae(rewards, values, next_values, terminated, truncated, gamma, lam)
    columns = [x.reshape(x.shape[0], -1) for x in data]
    for j in range(columns[0].shape[1]):
        single = rlgrad.gae(*(x[:, j] for x in columns), gamma, lam)
        torch.testing.assert_close(batched.reshape(batched.shape[0], -1)[:, j], single)


@given(rollouts, unit, unit, st.floats(-5.0, 5.0))
def test_termination_cuts_bootstrap_and_truncation_keeps_it(data, gamma, lam, shift):
    rewards, values, next_values, terminated, truncated = data
    base = rlgrad.gae(rewards, values, next_values, terminated, truncated, gamma, lam)
    base_returns = rlgrad.discounted_returns(rewards, terminated, truncated, gamma, next_values)

    # Changing V(s_{t+1}) where the episode terminated changes nothing.
    moved = next_values + shift * terminated
    same = rlgrad.gae(rewards, values, moved, terminated, truncated, gamma, lam)
    torch.testing.assert_close(same, base)
    same_returns = rlgrad.discounted_returns(rewards, terminated, truncated, gamma, moved)
    torch.testing.assert_close(same_returns, base_returns)

    # At a truncation (not a termination) the bootstrap counts: A_t and G_t move by γ·shift.
    cut_only = truncated & ~terminated
    moved = next_values + shift * cut_only
    changed = rlgrad.gae(rewards, values, moved, terminated, truncated, gamma, lam)
    torch.testing.assert_close(changed[cut_only], base[cut_only] + gamma * shift)
    changed_returns = rlgrad.discounted_returns(rewards, terminated, truncated, gamma, moved)
    torch.testing.assert_close(changed_returns[cut_only], base_returns[cut_only] + gamma * shift)


@given(rollouts, unit, unit, st.data())
def test_rewards_after_an_episode_end_do_not_leak_backwards(data, gamma, lam, draw):
    rewards, values, next_values, terminated, truncated = data
    # every column gets an episode end at step `cut` (a termination or a truncation), so each
    # generated case exercises the property; rewards after the end must not reach A_0..A_cut
    cut = draw.draw(st.integers(0, rewards.shape[0] - 1), label="cut")
    if draw.draw(st.booleans(), label="terminate"):
        terminated = terminated.clone()
        terminated[cut] = True
    else:
        truncated = truncated.clone()
        truncated[cut] = True
    base = rlgrad.gae(rewards, values, next_values, terminated, truncated, gamma, lam)
    later = rewards.clone()
    later[cut + 1 :] += 100.0
    moved = rlgrad.gae(later, values, next_values, terminated, truncated, gamma, lam)
    torch.testing.assert_close(moved[: cut + 1], base[: cut + 1])
    if cut + 1 < rewards.shape[0]:  # and the bump does reach the steps after the end
        assert not torch.equal(moved[cut + 1 :], base[cut + 1 :])


def test_rewards_after_a_cut_do_not_leak_backwards_explicit():
    # One stream, truncated at t = 1: A_0 and A_1 ignore r_2, r_3.
    r = torch.tensor([1.0, 1.0, 1.0, 1.0], dtype=torch.float64)
    v = torch.zeros(4, dtype=torch.float64)
    term = torch.zeros(4, dtype=torch.bool)
    trunc = torch.tensor([False, True, False, False])
    base = rlgrad.gae(r, v, v, term, trunc, 0.9, 0.8)
    bumped = rlgrad.gae(
        r + torch.tensor([0, 0, 5.0, 5.0], dtype=torch.float64), v, v, term, trunc, 0.9, 0.8
    )
    torch.testing.assert_close(bumped[:2], base[:2])
    assert bumped[2] != base[2]
    # A_0 = 1 + 0.72·1 (V = 0 everywhere) = 1.72.
    assert base[0].item() == pytest.approx(1.72)


def test_float32_kernel_matches_float64_reference():
    data = rollout(7, 300, (16,), 0.02, 0.02, dtype=torch.float32)
    fast = rlgrad.gae(*data, 0.99, 0.95)
    assert fast.dtype == torch.float32
    reference = returns_module._gae_loop(
        *(x.double() if x.is_floating_point() else x for x in data), 0.99, 0.95
    )
    torch.testing.assert_close(fast.double(), reference, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("offset", [0, 1, 5])
def test_gae_kernel_matches_the_loop_into_an_output_at_any_offset(dtype, offset):
    data = rollout(11, 40, (37,), 0.05, 0.05, dtype=dtype)
    reference = returns_module._gae_loop(*data, 0.99, 0.95)
    out = torch.empty(40 * 37 + offset, dtype=dtype)[offset:].view(40, 37)
    assert returns_module._kernels.gae_scan(*data, 0.99, 0.95, out)
    tolerance = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(out, reference, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("fn", ["gae", "discounted_returns"])
def test_a_flag_byte_other_than_one_still_counts_as_true(fn):
    # a uint8 buffer viewed as bool can hold 2 or 255 for "true"; torch reads it as True, and
    # so must the compiled scan (reading the byte as a number gave 1 − 2 = −1 before)
    rewards, values, next_values, terminated, truncated = rollout(3, 30, (8,), 0.2, 0.2)
    odd_terminated = (terminated.to(torch.uint8) * 2).view(torch.bool)
    odd_truncated = (truncated.to(torch.uint8) * 255).view(torch.bool)
    assert odd_terminated.view(torch.uint8).max() == 2
    if fn == "gae":
        expected = rlgrad.gae(rewards, values, next_values, terminated, truncated, 0.9, 0.8)
        got = rlgrad.gae(rewards, values, next_values, odd_terminated, odd_truncated, 0.9, 0.8)
    else:
        expected = rlgrad.discounted_returns(rewards, terminated, truncated, 0.9, next_values)
        got = rlgrad.discounted_returns(rewards, odd_terminated, odd_truncated, 0.9, next_values)
    assert torch.equal(got, expected)


@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_are_scanned_in_float32(half):
    data = rollout(5, 500, (16,), 0.002, 0.002, dtype=torch.float64)
    exact = rlgrad.gae(*data, 0.99, 0.95)
    low = tuple(x.to(half) if x.is_floating_point() else x for x in data)
    result = rlgrad.gae(*low, 0.99, 0.95)
    assert result.dtype == half
    # exactly the float32 scan of the same (rounded) inputs, rounded once at the end
    single = tuple(x.float() if x.is_floating_point() else x for x in low)
    assert torch.equal(result, rlgrad.gae(*single, 0.99, 0.95).to(half))
    # and closer to the exact advantages than the recursion run in half precision itself
    in_half = returns_module._gae_loop(*low, 0.99, 0.95)
    error = (result.double() - exact).abs().max()
    assert error < (in_half.double() - exact).abs().max()
    # still differentiable, through the float32 loop
    rewards = low[0].clone().requires_grad_(True)
    rlgrad.gae(rewards, *low[1:], 0.99, 0.95).float().sum().backward()
    assert rewards.grad.dtype == half and torch.isfinite(rewards.grad.float()).all()


@pytest.mark.parametrize("column", [0, 20, 36])
def test_gae_kernel_reports_an_infinite_input_in_any_column(column):
    """Row 5 of a [40, 37] float32 rollout is split into head, lines and tail differently."""
    rewards, values, next_values, terminated, truncated = rollout(
        12, 40, (37,), 0.0, 0.0, dtype=torch.float32
    )
    values[5, column] = math.inf
    with pytest.raises(
        ValueError, match=rf"'values' must be finite; got inf at index \(5, {column}\)"
    ):
        rlgrad.gae(rewards, values, next_values, terminated, truncated, 0.99, 0.95)


def _replace(data, index, x):
    return tuple(x if i == index else y for i, y in enumerate(data))


def _kernel_takes(data) -> bool:
    return returns_module._kernels.takes(data[:3], data[3:])


def test_kernel_takes_only_what_it_can_read_directly():
    """The one-pass test of the usual call: True only for tensors the scan can view as they are.
    Anything else must go to the argument-by-argument checks, which explain what is wrong."""
    data = rollout(13, 6, (3,), 0.2, 0.2)
    assert _kernel_takes(data)
    assert _kernel_takes(tuple(x.float() if x.is_floating_point() else x for x in data))
    rejected = {
        "non-contiguous values": _replace(data, 1, data[1].T.contiguous().T),
        "float flags": _replace(data, 3, data[3].double()),
        "non-contiguous flags": _replace(data, 4, data[4].T.contiguous().T),
        "mixed dtypes": _replace(data, 2, data[2].float()),
        "float16": tuple(x.half() if x.is_floating_point() else x for x in data),
        "a shape mismatch": _replace(data, 1, data[1][:, :2].contiguous()),
        "a flag shape mismatch": _replace(data, 3, data[3][:5].contiguous()),
        "a parameter": _replace(data, 1, torch.nn.Parameter(data[1], requires_grad=False)),
        "gradients": _replace(data, 0, data[0].clone().requires_grad_(True)),
        "a list": _replace(data, 2, data[2].tolist()),
        "a non-tensor flag": _replace(data, 4, data[4].tolist()),
        "an empty rollout": tuple(x[:0] for x in data),
        "a 0-dim rollout": tuple(x[0, 0] for x in data),
    }
    for case, arguments in rejected.items():
        assert not _kernel_takes(arguments), case
    with torch.no_grad():
        assert _kernel_takes(rejected["gradients"])
        assert not _kernel_takes(rejected["a shape mismatch"])
    # What the one-pass test refuses still gets the same advantages, by the checked path.
    base = rlgrad.gae(*data, 0.97, 0.9)
    for case in ("non-contiguous values", "float flags", "a parameter", "gradients"):
        advantages = rlgrad.gae(*rejected[case], 0.97, 0.9)
        torch.testing.assert_close(advantages, base, msg=case)


def test_gae_accepts_float_flags_and_non_contiguous_inputs():
    r, v, nv, term, trunc = rollout(3, 10, (4,), 0.2, 0.2)
    base = rlgrad.gae(r, v, nv, term, trunc, 0.97, 0.9)
    as_floats = rlgrad.gae(r, v, nv, term.double(), trunc.double(), 0.97, 0.9)
    torch.testing.assert_close(as_floats, base)
    transposed = [x.T.contiguous().T for x in (r, v, nv, term, trunc)]
    assert not transposed[0].is_contiguous()
    torch.testing.assert_close(rlgrad.gae(*transposed, 0.97, 0.9), base)


def test_gae_is_differentiable_through_the_reference_path():
    r, v, nv, term, trunc = rollout(5, 6, (2,), 0.2, 0.2)
    v.requires_grad_(True)
    nv.requires_grad_(True)

    def advantages(values, next_values):
        return rlgrad.gae(r, values, next_values, term, trunc, 0.9, 0.7)

    assert torch.autograd.gradcheck(advantages, (v, nv))
    # ∂A_0/∂V(s_0) = −1 always (δ_0 contains −V(s_0) and nothing else does).
    (grad,) = torch.autograd.grad(advantages(v, nv)[0, 0], v)
    assert grad[0, 0].item() == -1.0


def test_discounted_returns_reverse_cumsum_without_discount():
    # γ = 1, no episode end, no bootstrap: G_t = Σ_{k≥t} r_k.
    r = torch.tensor([1.0, 2.0, 3.0, 4.0])
    no = torch.zeros(4, dtype=torch.bool)
    torch.testing.assert_close(
        rlgrad.discounted_returns(r, no, no, 1.0), torch.tensor([10.0, 9.0, 7.0, 4.0])
    )


def test_discounted_returns_bootstraps_last_step_and_truncations():
    # γ = 0.5; truncated at t = 0 with V(s_1^final) = 8: G_0 = 1 + 0.5·8 = 5;
    # last step bootstraps from next_values[2] = 2: G_2 = 3 + 1 = 4, G_1 = 2 + 0.5·4 = 4.
    r = torch.tensor([1.0, 2.0, 3.0])
    term = torch.zeros(3, dtype=torch.bool)
    trunc = torch.tensor([True, False, False])
    nv = torch.tensor([8.0, 100.0, 2.0])
    torch.testing.assert_close(
        rlgrad.discounted_returns(r, term, trunc, 0.5, nv), torch.tensor([5.0, 4.0, 4.0])
    )
    # Without next_values every bootstrap is 0: G_2 = 3, G_1 = 2 + 0.5·3 = 3.5, G_0 = 1.
    torch.testing.assert_close(
        rlgrad.discounted_returns(r, term, trunc, 0.5), torch.tensor([1.0, 3.5, 3.0])
    )


def test_discounted_returns_gradient_reaches_rewards_and_bootstrap():
    r = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64, requires_grad=True)
    nv = torch.tensor([0.0, 0.0, 5.0], dtype=torch.float64, requires_grad=True)
    no = torch.zeros(3, dtype=torch.bool)
    g = rlgrad.discounted_returns(r, no, no, 0.9, nv)
    g[0].backward()
    # G_0 = r_0 + 0.9 r_1 + 0.81 r_2 + 0.729 V.
    torch.testing.assert_close(r.grad, torch.tensor([1.0, 0.9, 0.81], dtype=torch.float64))
    assert nv.grad[2].item() == pytest.approx(0.729)


def test_empty_rollouts_give_empty_results():
    empty = torch.zeros(0, 3)
    flags = torch.zeros(0, 3, dtype=torch.bool)
    assert rlgrad.gae(empty, empty, empty, flags, flags, 0.9, 0.9).shape == (0, 3)
    assert rlgrad.discounted_returns(empty, flags, flags, 0.9).shape == (0, 3)


# --- group advantages and normalization ------------------------------------------------------


group_rewards = st.builds(
    lambda seed, prompts, size, discrete: (
        torch.randint(0, 2, (prompts, size), generator=torch.Generator().manual_seed(seed)).double()
        if discrete
        else torch.randn(
            prompts, size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
        )
        * 5
    ),
    seed=st.integers(0, 2**31 - 1),
    prompts=st.integers(1, 6),
    size=st.integers(2, 16),
    discrete=st.booleans(),
)


@given(group_rewards)
def test_group_advantages_have_mean_zero_and_population_std_one(rewards):
    advantages = rlgrad.group_advantages(rewards, eps=0.0)
    varied = rewards.std(dim=-1) > 0
    torch.testing.assert_close(
        advantages.mean(-1), torch.zeros(rewards.shape[0], dtype=torch.float64)
    )
    if bool(varied.any()):
        torch.testing.assert_close(
            advantages[varied].std(-1, correction=0),
            torch.ones(int(varied.sum()), dtype=torch.float64),
        )
    assert bool((advantages[~varied] == 0).all())


@given(group_rewards)
def test_unbiased_group_advantages_are_rescaled_by_sqrt_g_minus_one_over_g(rewards):
    size = rewards.shape[-1]
    population = rlgrad.group_advantages(rewards, eps=0.0)
    sample = rlgrad.group_advantages(rewards, eps=0.0, unbiased=True)
    torch.testing.assert_close(sample, population * math.sqrt((size - 1) / size))


def test_unbiased_factor_at_group_of_eight():
    # sqrt(7/8) = 0.9354: TRL-style advantages are 0.935× the seeds' at G = 8.
    rewards = torch.tensor([[1.0, 0, 0, 0, 0, 0, 0, 0]], dtype=torch.float64)
    population = rlgrad.group_advantages(rewards)
    sample = rlgrad.group_advantages(rewards, unbiased=True)
    assert (sample[0, 0] / population[0, 0]).item() == pytest.approx(0.9354, abs=1e-4)
    # Population σ of one 1 among eight is √(7)/8: Â = (7/8)/(√7/8) = √7 = 2.6458, and the
    # zeros get (−1/8)/(√7/8) = −1/√7 = −0.3780.
    assert population[0, 0].item() == pytest.approx(2.6458, abs=1e-4)
    assert population[0, 1].item() == pytest.approx(-0.3780, abs=1e-4)


def test_equal_groups_give_exact_zeros_never_nan():
    rewards = torch.tensor([[0.1, 0.1, 0.1], [1.0, 1.0, 1.0], [0.0, 1.0, 2.0]])
    for kwargs in ({}, {"eps": 0.0}, {"unbiased": True}, {"scale": False}):
        advantages = rlgrad.group_advantages(rewards, **kwargs)
        assert bool((advantages[:2] == 0).all()), kwargs
        assert bool(torch.isfinite(advantages).all())
    single = rlgrad.group_advantages(torch.tensor([[3.0]]))
    assert single.item() == 0.0


def test_group_advantages_batch_of_groups_equals_loop():
    rewards = torch.randn(4, 3, 6, generator=torch.Generator().manual_seed(0))
    batched = rlgrad.group_advantages(rewards)
    for i in range(4):
        for j in range(3):
            torch.testing.assert_close(batched[i, j], rlgrad.group_advantages(rewards[i, j]))


def test_normalize_advantages_mean_zero_sample_std_one():
    advantages = torch.randn(50, 4, generator=torch.Generator().manual_seed(1)) * 7 + 3
    normalized = rlgrad.normalize_advantages(advantages)
    assert normalized.mean().item() == pytest.approx(0.0, abs=1e-6)
    assert normalized.std().item() == pytest.approx(1.0, abs=1e-6)


# ----- group and batch normalization at any scale: no overflow in the squares or the sums -----


def decimal_advantages(rows, correction, eps):
    """(r − μ)/(σ + ε) per row in 60-digit decimal arithmetic, which has no overflow or underflow:
    a reference computed another way than rlgrad's scaled floats."""
    with decimal.localcontext() as context:
        context.prec = 60
        out = []
        for row in rows:
            values = [decimal.Decimal(r) for r in row]  # exact: every float is a finite decimal
            mean = sum(values) / len(values)
            centered = [v - mean for v in values]
            std = (sum(c * c for c in centered) / (len(values) - correction)).sqrt()
            out.append([float(c / (std + decimal.Decimal(eps))) for c in centered])
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("scale", [1e-300, 1e-200, 1e-5, 1.0, 1e5, 1e200, 1e300])
@pytest.mark.parametrize("unbiased", [False, True])
@pytest.mark.parametrize("eps", [0.0, 1e-8])
def test_group_advantages_match_a_decimal_reference_at_any_scale(scale, unbiased, eps):
    # At 1e200 the plain σ squares past 1e308 (inf, so every advantage was 0); at 1e-200 the
    # squares fall below 1e-308 (σ = 0). The offset makes μ large next to σ as well.
    rewards = (
        torch.randn(3, 5, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
        + torch.tensor([[0.0], [10.0], [-3.0]], dtype=torch.float64)
    ) * scale
    advantages = rlgrad.group_advantages(rewards, eps=eps, unbiased=unbiased)
    expected = decimal_advantages(rewards.tolist(), 1 if unbiased else 0, eps)
    torch.testing.assert_close(advantages, expected, rtol=1e-12, atol=0.0)
    if eps == 0.0 or scale >= 1.0:  # ε is negligible next to σ: the advantages have std ≈ 1
        assert advantages.abs().max().item() > 0.5


@pytest.mark.parametrize(
    ("rewards", "eps", "expected"),
    [
        # The case: μ = 5e199, σ = 5e199 (its plain square, 2.5e399, is inf).
        ([1e200, 1.0], 1e-8, [1.0, -1.0]),
        # σ = 5e-201, whose plain square 2.5e-401 is 0: Â = ±5e-201/5e-201.
        ([1e-200, 0.0], 0.0, [1.0, -1.0]),
        # Differences 1e307 are representable, the plain sum 4.8e308 (and so μ) is not:
        # μ = 1.6e308, r − μ = ±1e307 and 0, σ = 1e307·√(2/3), Â = ±√(3/2) = ±1.2247.
        ([1.7e308, 1.6e308, 1.5e308], 1e-8, [math.sqrt(1.5), 0.0, -math.sqrt(1.5)]),
        # Subnormals [1, 2, 0]·2⁻¹⁰⁷⁴: μ = 2⁻¹⁰⁷⁴, r − μ = [0, 1, −1]·2⁻¹⁰⁷⁴, σ = √(2/3)·2⁻¹⁰⁷⁴,
        # which as a float rounds to 2⁻¹⁰⁷⁴: Â must still be ±√(3/2), not ±1.
        ([5e-324, 1e-323, 0.0], 0.0, [0.0, math.sqrt(1.5), -math.sqrt(1.5)]),
        # ε = 1e-8 next to σ ≈ 4e-324: Â = (r − μ)/(σ + ε) ≈ ±5e-324/1e-8 ≈ ±5e-316, subnormal
        # itself; rlgrad takes ε/s = 1e-8·2¹⁰⁷⁴ = inf there and returns 0 (the atol below).
        ([5e-324, 1e-323, 0.0], 1e-8, [0.0, 5e-324 / 1e-8, -5e-324 / 1e-8]),
    ],
)
def test_group_advantages_at_the_ends_of_the_float64_range(rewards, eps, expected):
    advantages = rlgrad.group_advantages(torch.tensor([rewards], dtype=torch.float64), eps=eps)
    # atol: advantages below the smallest normal float, 2⁻¹⁰²², may come out as 0.
    torch.testing.assert_close(
        advantages, torch.tensor([expected], dtype=torch.float64), rtol=1e-12, atol=2.0**-1022
    )


@given(
    group_rewards,
    st.floats(1e-250, 1e250).filter(lambda c: c > 0),
    st.booleans(),
)
def test_group_advantages_do_not_depend_on_the_reward_scale(rewards, c, unbiased):
    """Â(c·r) = Â(r) for c > 0 at ε = 0: c cancels between r − μ and σ. c·r rounds to the nearest
    float, so the two agree to a few ulps of the rewards, not bit for bit."""
    scaled = rlgrad.group_advantages(rewards * c, eps=0.0, unbiased=unbiased)
    plain = rlgrad.group_advantages(rewards, eps=0.0, unbiased=unbiased)
    torch.testing.assert_close(scaled, plain, rtol=1e-9, atol=1e-9)


def decimal_batch_scaled(rows, correction, eps):
    """(r − μ_group)/(σ_batch + ε) in 60-digit decimal arithmetic, the batch being every row."""
    with decimal.localcontext() as context:
        context.prec = 60
        values = [[decimal.Decimal(r) for r in row] for row in rows]
        everything = [v for row in values for v in row]
        mean = sum(everything) / len(everything)
        std = (sum((v - mean) ** 2 for v in everything) / (len(everything) - correction)).sqrt()
        return torch.tensor(
            [
                [float((v - sum(row) / len(row)) / (std + decimal.Decimal(eps))) for v in row]
                for row in values
            ],
            dtype=torch.float64,
        )


@pytest.mark.parametrize("scale", [1e-200, 1.0, 1e200])
@pytest.mark.parametrize("unbiased", [False, True])
def test_batch_scaled_group_advantages_match_a_decimal_reference_at_any_scale(scale, unbiased):
    # TRL's scale_rewards="batch": the plain (r − μ_g)/(batch.std() + ε) is 0 at 1e200 (σ inf)
    rewards = (
        torch.randn(3, 4, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
        + torch.tensor([[0.0], [4.0], [-2.0]], dtype=torch.float64)
    ) * scale
    advantages = rlgrad.batch_scaled_group_advantages(rewards, eps=0.0, unbiased=unbiased)
    expected = decimal_batch_scaled(rewards.tolist(), 1 if unbiased else 0, 0.0)
    torch.testing.assert_close(advantages, expected, rtol=1e-12, atol=0.0)
    assert advantages.abs().max().item() > 0.1
    if scale == 1.0:  # where it can, the plain formula gives the same numbers
        centered = rewards - rewards.mean(dim=-1, keepdim=True)
        plain = centered / (rewards.std(correction=1 if unbiased else 0) + 1e-8)
        torch.testing.assert_close(
            rlgrad.batch_scaled_group_advantages(rewards, unbiased=unbiased), plain
        )


def test_batch_scaled_advantages_of_one_process_share_use_the_whole_batch():
    rewards = torch.tensor([[1.0, 0.0], [2.0, 2.0], [5.0, 1.0], [0.0, 3.0]], dtype=torch.float64)
    whole = rlgrad.batch_scaled_group_advantages(rewards)
    share = rlgrad.batch_scaled_group_advantages(rewards[:2], batch_rewards=rewards.flatten())
    torch.testing.assert_close(share, whole[:2], rtol=0, atol=0)
    assert not torch.equal(share, rlgrad.batch_scaled_group_advantages(rewards[:2]))
    assert bool((whole[1] == 0).all())  # an equal group carries no signal
    equal = rlgrad.batch_scaled_group_advantages(torch.full((2, 3), 7.0))
    assert bool((equal == 0).all())
    with pytest.raises(
        ValueError, match=r"batch_scaled_group_advantages\(\): the batch must hold at least 2"
    ):
        rlgrad.batch_scaled_group_advantages(torch.tensor([[1.0]]), unbiased=True)


def test_group_advantage_gradients_match_finite_differences_and_rescale():
    rewards = torch.tensor([[0.3, -1.2, 2.0, 0.5], [1.0, 1.0, 1.0, 1.0]], dtype=torch.float64)
    weights = torch.tensor([[1.0, -2.0, 0.5, 3.0], [1.0, 2.0, 3.0, 4.0]], dtype=torch.float64)
    for unbiased in (False, True):
        torch.autograd.gradcheck(
            lambda r: rlgrad.group_advantages(r, unbiased=unbiased),  # noqa: B023
            (rewards[:1].clone().requires_grad_(),),
        )
    # Â(c·r) = Â(r) at ε = 0, so ∂Â(c·r)/∂(c·r) = (1/c)·∂Â/∂r: at c = 1e200 the gradient is
    # 1e-200 times the one at c = 1 (the plain σ's gradient there is NaN); the equal group's is 0.
    grads = []
    for c in (1.0, 1e200):
        r = (rewards * c).requires_grad_()
        (rlgrad.group_advantages(r, eps=0.0) * weights).sum().backward()
        grads.append(r.grad * c)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-12, atol=0.0)
    assert bool((grads[0][1] == 0).all()) and bool((grads[0][0] != 0).all())


# ----- n-step returns (DQN's n-step targets) -----


@given(rollouts, unit)
def test_n_step_target_equals_discounted_return_bootstrapped_at_every_step(data, gamma):
    """G + γ^K(1 − term)·V(s_K) is the reward-to-go of the window whose bootstrap at a cut (a
    truncation or the window's end) is V of the next state: the same quantity two ways."""
    rewards, _, next_values, terminated, truncated = data
    window = rlgrad.n_step_returns(rewards, terminated, truncated, gamma)
    reward_to_go = rlgrad.discounted_returns(rewards, terminated, truncated, gamma, next_values)
    bootstrap = (
        next_values.reshape(rewards.shape[0], -1)
        .gather(0, (window.steps - 1).reshape(1, -1))
        .reshape(window.returns.shape)
    )
    target = window.returns + window.discounts * (~window.terminated) * bootstrap
    torch.testing.assert_close(target, reward_to_go[0], rtol=1e-10, atol=1e-10)


@given(rollouts, unit)
def test_one_step_window_is_the_one_step_target(data, gamma):
    rewards, _, _, terminated, truncated = data
    window = rlgrad.n_step_returns(rewards[:1], terminated[:1], truncated[:1], gamma)
    torch.testing.assert_close(window.returns, rewards[0])
    torch.testing.assert_close(window.discounts, torch.full_like(rewards[0], gamma))
    assert torch.equal(window.terminated, terminated[0])
    assert bool((window.steps == 1).all())


def test_n_step_window_stops_at_the_first_end_and_ignores_later_steps():
    t = torch.tensor
    rewards = t([[1.0, 1.0, 1.0], [10.0, 10.0, 10.0], [100.0, 100.0, 100.0]], dtype=torch.float64)
    terminated = t([[0, 0, 0], [0, 1, 0], [1, 0, 0]])
    truncated = t([[0, 1, 0], [0, 0, 0], [0, 0, 0]])
    window = rlgrad.n_step_returns(rewards, terminated, truncated, 0.9)
    # column 0 terminates at k = 2; column 1 is truncated at k = 0 (the later termination is in
    # another episode); column 2 runs all three steps and bootstraps with γ³
    expected = t([1 + 9 + 81, 1.0, 1 + 9 + 81], dtype=torch.float64)
    torch.testing.assert_close(window.returns, expected)
    torch.testing.assert_close(window.discounts, t([0.729, 0.9, 0.729], dtype=torch.float64))
    assert window.terminated.tolist() == [True, False, False]
    assert window.steps.tolist() == [3, 1, 3]


def test_n_step_targets_through_dqn_targets_with_per_sample_discounts():
    t = torch.tensor
    window = rlgrad.n_step_returns(
        t([[1.0, 1.0], [2.0, 2.0]]), t([[0, 0], [0, 1]]), t([[0, 0], [0, 0]]), gamma=0.5
    )
    next_q = t([[4.0, 8.0], [3.0, 1.0]])
    targets = rlgrad.dqn_targets(window.returns, next_q, window.terminated, window.discounts)
    # 1 + 0.5·2 + 0.25·8 = 4 with a bootstrap; 1 + 0.5·2 = 2 after the termination
    torch.testing.assert_close(targets, t([4.0, 2.0]))


def test_n_step_returns_gradient_matches_discount_weights():
    rewards = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    no = torch.zeros(4, 3, dtype=torch.bool)
    torch.autograd.gradcheck(lambda r: rlgrad.n_step_returns(r, no, no, 0.7).returns, (rewards,))
    rlgrad.n_step_returns(rewards, no, no, 0.7).returns.sum().backward()
    expected = torch.tensor([1.0, 0.7, 0.49, 0.343], dtype=torch.float64)[:, None].expand(4, 3)
    torch.testing.assert_close(rewards.grad, expected)
