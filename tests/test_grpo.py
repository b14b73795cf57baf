"""GRPO's formulas: group advantages of the seeds, masked means, the three aggregations, the
clip-higher range and the KL penalty — values, gradients against hand derivations, and errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import rlgrad
from rlgrad.grpo import AGGREGATIONS, grpo_token_loss, masked_mean

f64 = torch.float64


def batch(seed: int = 0, completions: int = 4, length: int = 6):
    g = torch.Generator().manual_seed(seed)
    log_probs = (torch.rand(completions, length, generator=g, dtype=f64) * -2).requires_grad_()
    old = log_probs.detach() + 0.05 * torch.randn(completions, length, generator=g, dtype=f64)
    ref = log_probs.detach() + 0.1 * torch.randn(completions, length, generator=g, dtype=f64)
    lengths = torch.tensor([length, 2, 4, 1][:completions])
    mask = torch.arange(length)[None, :] < lengths[:, None]
    advantages = torch.randn(completions, generator=g, dtype=f64)
    return log_probs, old, ref, mask, advantages


def test_one_right_answer_in_a_group_of_eight():
    advantages = rlgrad.group_advantages(torch.tensor([[1.0, 0, 0, 0, 0, 0, 0, 0]]))
    # μ = 1/8, population σ = √7/8: (1 − 1/8)/σ = √7 = 2.6458 and −(1/8)/σ = −1/√7 = −0.3780
    torch.testing.assert_close(advantages[0, 0], torch.tensor(7**0.5), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(advantages[0, 1:], torch.full((7,), -(7**-0.5)))


def test_masked_mean_leaves_padding_out_and_an_empty_row_is_zero():
    x = torch.tensor([[1.0, 3.0, 50.0], [7.0, 8.0, 9.0]])
    mask = torch.tensor([[1, 1, 0], [0, 0, 0]])
    assert masked_mean(x, mask).item() == 2.0
    torch.testing.assert_close(masked_mean(x, mask, dim=-1), torch.tensor([2.0, 0.0]))


@pytest.mark.parametrize("per_token", [False, True], ids=["per_completion", "per_token"])
@pytest.mark.parametrize("aggregation", sorted(AGGREGATIONS))
def test_a_seed_axis_gives_each_seeds_own_loss_and_gradient(aggregation, per_token):
    """[S, B, L] (many seeds trained at once): loss s and its gradient equal the call on seed
    s's [B, L] slices, in float64; the seeds' masks differ (seed 1 keeps other lengths)."""
    seeds = [batch(seed=s) for s in range(3)]
    stacked = [torch.stack([b[i].detach() for b in seeds]) for i in range(5)]
    log_probs, old, ref, _, advantages = stacked
    mask = torch.stack([seeds[0][3], seeds[0][3].flip(0), torch.ones_like(seeds[0][3])])
    if per_token:
        advantages = advantages[..., None] * torch.linspace(0.5, 1.5, 6, dtype=f64)
    options = {"clip_eps": 0.2, "clip_eps_high": 0.28, "beta": 0.04, "aggregation": aggregation}
    log_probs.requires_grad_()
    losses = grpo_token_loss(log_probs, old, advantages, mask, ref_log_probs=ref, **options)
    assert losses.shape == (3,)
    (gradients,) = torch.autograd.grad(losses.sum(), log_probs)
    for s in range(3):
        single = log_probs[s].detach().requires_grad_()
        loss = grpo_token_loss(single, old[s], advantages[s], mask[s], ref_log_probs=ref[s],
                               **options)  # fmt: skip
        loss.backward()
        torch.testing.assert_close(losses[s], loss, rtol=1e-12, atol=1e-15)
        torch.testing.assert_close(gradients[s], single.grad, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("aggregation", sorted(AGGREGATIONS))
def test_every_aggregation_passes_gradcheck(aggregation):
    log_probs, old, ref, mask, advantages = batch()

    def loss(lp):
        return grpo_token_loss(
            lp,
            old,
            advantages,
            mask,
            clip_eps=0.2,
            clip_eps_high=0.28,
            ref_log_probs=ref,
            beta=0.04,
            aggregation=aggregation,
            max_length=8,
        )

    assert torch.autograd.gradcheck(loss, (log_probs,))


def test_token_gradients_match_the_hand_derivation_of_each_aggregation():
    # at r = 1 (old = current) and β = 0, ∂ℓ_{b,t}/∂log π_{b,t} = −Â_b; each aggregation only
    # changes the weight of a token: 1/Σm, 1/(B·len_b), 1/(B·L_max)
    log_probs, _, _, mask, advantages = batch()
    old = log_probs.detach()
    m = mask.to(f64)
    lengths = m.sum(-1, keepdim=True)
    weights = {
        "token_mean": m / m.sum(),
        "seq_mean": m / (4 * lengths),
        "const_norm": m / (4 * 8),
    }
    for aggregation, weight in weights.items():
        log_probs.grad = None
        grpo_token_loss(
            log_probs, old, advantages, mask, aggregation=aggregation, max_length=8
        ).backward()
        torch.testing.assert_close(log_probs.grad, -advantages[:, None] * weight)


def test_aggregations_agree_when_lengths_agree_and_differ_when_they_do_not():
    log_probs, old, _, _, advantages = batch()
    full = torch.ones(4, 6, dtype=torch.bool)
    values = {
        a: grpo_token_loss(log_probs, old, advantages, full, aggregation=a) for a in AGGREGATIONS
    }
    torch.testing.assert_close(values["token_mean"], values["seq_mean"])
    torch.testing.assert_close(values["token_mean"], values["const_norm"])
    _, _, _, ragged, _ = batch()
    a = grpo_token_loss(log_probs, old, advantages, ragged, aggregation="token_mean")
    b = grpo_token_loss(log_probs, old, advantages, ragged, aggregation="seq_mean")
    assert not torch.allclose(a, b)


@given(st.integers(0, 2**31 - 1), st.sampled_from(sorted(AGGREGATIONS)))
def test_groups_with_equal_rewards_give_no_policy_gradient_and_no_nan(seed, aggregation):
    log_probs, old, _, mask, _ = batch(seed)
    rewards = torch.tensor([[1.0, 1.0], [0.0, 0.0]], dtype=f64)  # two groups of two, no signal
    advantages = rlgrad.group_advantages(rewards).reshape(4)
    loss = grpo_token_loss(log_probs, old, advantages, mask, aggregation=aggregation)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(log_probs.grad, torch.zeros_like(log_probs))


def test_clip_higher_lets_a_positive_advantage_push_further():
    log_probs = torch.tensor([[0.22314355]], dtype=f64, requires_grad=True)  # r = 1.25
    old, mask, advantage = torch.zeros(1, 1, dtype=f64), torch.ones(1, 1), torch.ones(1, dtype=f64)
    symmetric = grpo_token_loss(log_probs, old, advantage, mask, clip_eps=0.2)
    (grad_clipped,) = torch.autograd.grad(symmetric, log_probs)
    wider = grpo_token_loss(log_probs, old, advantage, mask, clip_eps=0.2, clip_eps_high=0.28)
    (grad_open,) = torch.autograd.grad(wider, log_probs)
    assert symmetric.item() == pytest.approx(-1.2) and grad_clipped.item() == 0.0
    assert wider.item() == pytest.approx(-1.25) and grad_open.item() == pytest.approx(-1.25)


def test_the_kl_penalty_is_beta_k3_and_vanishes_at_the_reference():
    log_probs, old, ref, mask, advantages = batch()
    plain = grpo_token_loss(log_probs, old, advantages, mask)
    penalized = grpo_token_loss(log_probs, old, advantages, mask, ref_log_probs=ref, beta=0.5)
    expected = plain + 0.5 * masked_mean(rlgrad.kl_k3(log_probs, ref), mask)
    torch.testing.assert_close(penalized, expected)
    at_reference = grpo_token_loss(
        log_probs, old, advantages, mask, ref_log_probs=log_probs.detach(), beta=0.5
    )
    torch.testing.assert_close(at_reference, plain)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"aggregation": "sum"}, "'aggregation' must be one of token_mean, seq_mean, const_norm"),
        ({"beta": 0.1}, "'ref_log_probs' is needed when beta = 0.1"),
        ({"advantages": torch.zeros(3)}, "'advantages' must have shape (4,)"),
        ({"mask": torch.ones(4, 5)}, "'mask' must have the shape of 'log_probs' (4, 6)"),
        ({"max_length": 0}, "'max_length' must be a positive integer"),
        ({"clip_eps": 0.0}, "'clip_eps' must be > 0"),
        ({"log_probs": torch.zeros(4, 6, 2, 2)}, "'log_probs' must have shape [B, L] or [S, B, L]"),
    ],
)
def test_bad_input_names_the_argument(changes, message):
    log_probs, old, _, mask, advantages = batch()
    arguments = {"log_probs": log_probs, "old_log_probs": old, "advantages": advantages}
    arguments = {**arguments, "mask": mask, **changes}
    if "log_probs" in changes:
        arguments["old_log_probs"] = torch.zeros_like(changes["log_probs"], dtype=f64)
    with pytest.raises(ValueError) as error:
        grpo_token_loss(**arguments)
    assert message in str(error.value) and "grpo_token_loss()" in str(error.value)
