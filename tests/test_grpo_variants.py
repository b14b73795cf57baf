"""GSPO's sequence ratio and loss, and DAPO's overlong penalty: worked values, gradients by hand
and by finite differences, the identities with GRPO's token loss, and errors."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from rlgrad.grpo import AGGREGATIONS, grpo_token_loss, gspo_loss, sequence_log_ratios
from rlgrad.grpo_variants import overlong_penalty
from rlgrad.policy import ppo_objective

f64 = torch.float64


def test_the_sequence_log_ratio_is_the_log_of_the_geometric_mean_over_the_mask():
    # row 0: token ratios 2 and 8 → geometric mean √16 = 4; the padded third token is left out
    # row 1: one token of ratio 1/2; row 2: no token at all → log s = 0
    log_probs = torch.log(
        torch.tensor([[2.0, 8.0, 50.0], [0.5, 3.0, 3.0], [7.0, 7.0, 7.0]], dtype=f64)
    )
    log_probs.requires_grad_()
    mask = torch.tensor([[1, 1, 0], [1, 0, 0], [0, 0, 0]])
    result = sequence_log_ratios(log_probs, torch.zeros(3, 3, dtype=f64), mask)
    torch.testing.assert_close(result, torch.tensor([math.log(4), math.log(0.5), 0.0], dtype=f64))
    # ∂ log s_b / ∂ log π_{b,t} = m_{b,t} / |o_b|
    result.sum().backward()
    expected = torch.tensor([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=f64)
    torch.testing.assert_close(log_probs.grad, expected)


def worked_example():
    # completion 0: token log-ratios 0.1 and 0.3 → log s = 0.2, s = e^0.2 = 1.2214, Â = +1
    # completion 1: one token (two padded) of log-ratio −0.1 → s = e^−0.1 = 0.9048, Â = −2
    old = torch.tensor([[-1.0, -2.0, 0.0], [-0.5, 0.0, 0.0]], dtype=f64)
    log_probs = (
        old + torch.tensor([[0.1, 0.3, 9.0], [-0.1, 4.0, -4.0]], dtype=f64)
    ).requires_grad_()
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    return log_probs, old, torch.tensor([1.0, -2.0], dtype=f64), mask


def test_gspo_worked_by_hand_value_and_gradient():
    log_probs, old, advantages, mask = worked_example()
    loss = gspo_loss(log_probs, old, advantages, mask, clip_eps=0.2)
    # completion 0: min(1.2214·1, clip(1.2214, 0.8, 1.2)·1) = 1.2 (the clip binds) → ℓ = −1.2
    # completion 1: min(0.9048·(−2), 0.9048·(−2)) = −1.8097 (inside the range) → ℓ = +1.8097
    # seq_mean: (−1.2 + 1.8097)/2 = 0.30484
    s1 = math.exp(-0.1)
    assert loss.item() == pytest.approx((-1.2 + 2 * s1) / 2)
    loss.backward()
    # completion 0 is clipped: no gradient; completion 1's token gets −(1/(B·|o|))·s·Â
    # = −(1/2)·s·(−2) = s
    expected = torch.tensor([[0.0, 0.0, 0.0], [s1, 0.0, 0.0]], dtype=f64)
    torch.testing.assert_close(log_probs.grad, expected)
    # token_mean weighs a completion by its length: (2·(−1.2) + 1·1.8097)/3 = −0.19677
    by_token = gspo_loss(log_probs, old, advantages, mask, clip_eps=0.2, aggregation="token_mean")
    assert by_token.item() == pytest.approx((2 * -1.2 + 2 * s1) / 3)


def test_gspo_differs_from_the_token_loss_when_token_ratios_differ():
    # token log-ratios +0.3 and −0.3: s = e^0 = 1, inside the range, so GSPO's L = −Â = −1; the
    # token loss clips e^0.3 = 1.35 to 1.2 and keeps e^−0.3 = 0.7408: L = −(1.2 + 0.7408)/2
    old = torch.zeros(1, 2, dtype=f64)
    log_probs = torch.tensor([[0.3, -0.3]], dtype=f64)
    advantages, mask = torch.ones(1, dtype=f64), torch.ones(1, 2)
    assert gspo_loss(log_probs, old, advantages, mask, clip_eps=0.2).item() == pytest.approx(-1.0)
    token = grpo_token_loss(log_probs, old, advantages, mask, aggregation="seq_mean")
    assert token.item() == pytest.approx(-(1.2 + math.exp(-0.3)) / 2)


CLIPS = dict(clip_eps=0.2, clip_eps_high=0.28, max_length=8)


def random_batch(seed: int, completions: int, length: int):
    g = torch.Generator().manual_seed(seed)
    log_probs = torch.rand(completions, length, generator=g, dtype=f64) * -3
    ref = log_probs + 0.2 * torch.randn(completions, length, generator=g, dtype=f64)
    advantages = torch.randn(completions, generator=g, dtype=f64)
    return g, log_probs, ref, advantages


def assert_same_value_and_gradient(log_probs, old, advantages, mask, ref, beta, aggregation):
    def value_and_gradient(loss_fn):
        x = log_probs.clone().requires_grad_()
        options = dict(ref_log_probs=ref, beta=beta, aggregation=aggregation, **CLIPS)
        loss = loss_fn(x, old, advantages, mask, **options)
        (gradient,) = torch.autograd.grad(loss, x)
        return loss, gradient

    gspo, gspo_gradient = value_and_gradient(gspo_loss)
    token, token_gradient = value_and_gradient(grpo_token_loss)
    torch.testing.assert_close(gspo, token)
    torch.testing.assert_close(gspo_gradient, token_gradient)


# (seed, completions B, length L, β, aggregation); log-ratios drawn up to ±0.5 reach past both
# clip edges (log 1.28 = 0.25, log 0.8 = −0.22)
BATCHES = (
    st.integers(0, 2**31 - 1),
    st.integers(1, 6),
    st.integers(1, 5),
    st.floats(0.0, 0.5),
    st.sampled_from(sorted(AGGREGATIONS)),
)


@given(*BATCHES)
def test_gspo_equals_the_token_loss_when_every_completion_has_one_token(
    seed, completions, length, beta, aggregation
):
    g, log_probs, ref, advantages = random_batch(seed, completions, length)
    where = torch.randint(length, (completions,), generator=g)  # the one generated token
    mask = torch.nn.functional.one_hot(where, length).bool()  # [B, L], one 1 a row
    old = log_probs + torch.empty(completions, length, dtype=f64).uniform_(-0.5, 0.5, generator=g)
    assert_same_value_and_gradient(log_probs, old, advantages, mask, ref, beta, aggregation)


@given(*BATCHES)
def test_gspo_equals_the_token_loss_when_a_completions_token_ratios_are_equal(
    seed, completions, length, beta, aggregation
):
    g, log_probs, ref, advantages = random_batch(seed, completions, length)
    lengths = torch.randint(0, length + 1, (completions, 1), generator=g)  # 0 to L tokens
    mask = torch.arange(length)[None, :] < lengths
    shifts = torch.empty(completions, 1, dtype=f64).uniform_(-0.5, 0.5, generator=g)  # log r_b
    noise = torch.randn(completions, length, generator=g, dtype=f64)  # padding may hold anything
    old = torch.where(mask, log_probs - shifts, log_probs + noise)
    assert_same_value_and_gradient(log_probs, old, advantages, mask, ref, beta, aggregation)


@pytest.mark.parametrize("aggregation", sorted(AGGREGATIONS))
def test_gspo_token_with_its_stop_gradients_has_the_same_value_and_gradient(aggregation):
    # GSPO-token: s_{b,t} = sg[s_b] · π_θ(o_{b,t}) / sg[π_θ(o_{b,t})], one advantage per completion
    g, log_probs, _, advantages = random_batch(3, 4, 5)
    old = log_probs + 0.2 * torch.randn(4, 5, generator=g, dtype=f64)
    mask = torch.arange(5)[None, :] < torch.tensor([[5], [2], [4], [1]])
    x = log_probs.clone().requires_grad_()
    log_s = sequence_log_ratios(x, old, mask).detach()
    ratios = torch.exp(x - x.detach() + log_s[:, None])
    losses = -ppo_objective(ratios, advantages[:, None].expand_as(x), 0.2, 0.28)
    gspo_token = AGGREGATIONS[aggregation](losses, mask.to(f64), 8)
    (expected,) = torch.autograd.grad(gspo_token, x)
    y = log_probs.clone().requires_grad_()
    loss = gspo_loss(y, old, advantages, mask, aggregation=aggregation, **CLIPS)
    (gradient,) = torch.autograd.grad(loss, y)
    torch.testing.assert_close(loss, gspo_token)
    torch.testing.assert_close(gradient, expected)


@pytest.mark.parametrize("aggregation", sorted(AGGREGATIONS))
def test_gspo_passes_gradcheck(aggregation):
    g, log_probs, ref, advantages = random_batch(0, 4, 6)
    old = log_probs + 0.1 * torch.randn(4, 6, generator=g, dtype=f64)
    mask = torch.arange(6)[None, :] < torch.tensor([[6], [2], [4], [1]])

    def loss(x):
        return gspo_loss(
            x,
            old,
            advantages,
            mask,
            clip_eps=0.05,
            clip_eps_high=0.08,
            ref_log_probs=ref,
            beta=0.04,
            aggregation=aggregation,
            max_length=8,
        )

    assert torch.autograd.gradcheck(loss, (log_probs.clone().requires_grad_(),))


@pytest.mark.parametrize(
    "function, changes, message",
    [
        (
            gspo_loss,
            {"advantages": torch.zeros(2, 3, dtype=f64)},
            "'advantages' must have shape (2,) (one per completion); got (2, 3)",
        ),
        (gspo_loss, {"aggregation": "sum"}, "'aggregation' must be one of"),
        (gspo_loss, {"beta": 0.1}, "'ref_log_probs' is needed when beta = 0.1"),
        (gspo_loss, {"clip_eps": -1.0}, "'clip_eps' must be > 0"),
        (gspo_loss, {"mask": torch.ones(2, 2)}, "'mask' must have the shape of 'log_probs' (2, 3)"),
        (
            sequence_log_ratios,
            {"old_log_probs": torch.zeros(2, 3)},
            "'old_log_probs' must have the dtype",
        ),
        (sequence_log_ratios, {"mask": torch.full((2, 3), 0.5)}, "'mask' must hold only 0/1"),
    ],
)
def test_bad_gspo_input_names_the_function_and_the_argument(function, changes, message):
    log_probs, old, advantages, mask = worked_example()
    arguments = {"log_probs": log_probs, "old_log_probs": old, "mask": mask}
    if function is gspo_loss:
        arguments["advantages"] = advantages
    with pytest.raises((ValueError, TypeError)) as error:
        function(**{**arguments, **changes})
    assert message in str(error.value) and f"{function.__name__}()" in str(error.value)


def test_overlong_penalty_at_the_boundaries_by_hand():
    # L_max = 16, L_buf = 4: no penalty through 12 tokens, then −1/4 per token to −1 at 16
    lengths = torch.tensor([0, 12, 13, 14, 16, 20])
    penalty = overlong_penalty(lengths, max_length=16, overlong_buffer=4)
    assert penalty.tolist() == [0.0, 0.0, -0.25, -0.5, -1.0, -1.0]
    assert penalty.dtype == torch.get_default_dtype()
    half = overlong_penalty(lengths.to(f64), 16, 4, penalty_factor=0.5)
    assert half.dtype == f64 and half.tolist() == [0.0, 0.0, -0.125, -0.25, -0.5, -0.5]
    # a buffer as long as the limit starts the ramp at the first token: −1/16 per token
    assert overlong_penalty(torch.tensor([0, 1, 8]), 16, 16).tolist() == [0.0, -0.0625, -0.5]


@given(st.integers(1, 64), st.data())
def test_overlong_penalty_is_dapos_three_case_rule(max_length, data):
    buffer = data.draw(st.integers(1, max_length))
    lengths = data.draw(st.lists(st.integers(0, 2 * max_length), min_size=1, max_size=8))

    def dapo(length):  # the paper's piecewise form
        if length <= max_length - buffer:
            return 0.0
        if length <= max_length:
            return ((max_length - buffer) - length) / buffer
        return -1.0

    result = overlong_penalty(torch.tensor(lengths), max_length, buffer).tolist()
    assert result == pytest.approx([dapo(n) for n in lengths])


@pytest.mark.parametrize(
    "arguments, error, message",
    [
        (
            {"overlong_buffer": 17},
            ValueError,
            "'overlong_buffer' must lie in [1, max_length = 16]; got 17",
        ),
        (
            {"overlong_buffer": 0},
            ValueError,
            "'overlong_buffer' must lie in [1, max_length = 16]; got 0",
        ),
        ({"overlong_buffer": -2}, ValueError, "'overlong_buffer' must be >= 0; got -2"),
        ({"max_length": 0, "overlong_buffer": 1}, ValueError, "'max_length' must be >= 1"),
        ({"max_length": 16.0}, TypeError, "'max_length' must be an integer"),
        ({"penalty_factor": -1.0}, ValueError, "'penalty_factor' must be >= 0"),
        (
            {"lengths": torch.tensor([3, -1])},
            ValueError,
            "'lengths' must be >= 0; got -1.0 at index (1,)",
        ),
        ({"lengths": torch.tensor([3.0, math.nan])}, ValueError, "'lengths' must be finite"),
        ({"lengths": torch.tensor([True])}, TypeError, "'lengths' must hold integer or float"),
        ({"lengths": [3, 4]}, TypeError, "'lengths' must be a torch.Tensor"),
    ],
)
def test_bad_overlong_penalty_input_names_the_argument(arguments, error, message):
    call = {"lengths": torch.tensor([3, 4]), "max_length": 16, "overlong_buffer": 4, **arguments}
    with pytest.raises(error) as raised:
        overlong_penalty(**call)
    assert message in str(raised.value) and "overlong_penalty()" in str(raised.value)
