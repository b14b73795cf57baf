"""Losses: gradcheck in float64, gradients against hand derivations, identities of PPO/entropy."""

import math

import pytest
import torch
from conftest import randn
from hypothesis import given
from hypothesis import strategies as st

import rlgrad

f64 = torch.float64


# --- gradcheck of every loss (float64 finite differences vs autograd) ------------------------


def test_gradcheck_policy_gradient_loss():
    log_probs, advantages = randn(7, seed=1, requires_grad=True), randn(7, seed=2)
    assert torch.autograd.gradcheck(
        lambda lp: rlgrad.policy_gradient_loss(lp, advantages), (log_probs,)
    )


def test_gradcheck_ppo_clip_loss_away_from_kinks():
    # gradcheck needs a differentiable point: keep every ratio off the clip boundaries 1 ± ε.
    old = randn(12, seed=3)
    log_probs = (old + torch.linspace(-0.6, 0.6, 12, dtype=f64) + 0.013).requires_grad_(True)
    advantages = randn(12, seed=4)
    assert torch.autograd.gradcheck(
        lambda lp: rlgrad.ppo_clip_loss(lp, old, advantages, clip_eps=0.2), (log_probs,)
    )


def test_gradcheck_value_losses():
    values, returns = randn(9, seed=5, requires_grad=True), randn(9, seed=6)
    old_values = values.detach() + torch.linspace(-1.0, 1.0, 9, dtype=f64) + 0.017
    assert torch.autograd.gradcheck(lambda v: rlgrad.value_loss(v, returns), (values,))
    assert torch.autograd.gradcheck(
        lambda v: rlgrad.value_loss(v, returns, old_values, clip_eps=0.3), (values,)
    )


@pytest.mark.parametrize("kind", ["mse", "huber"])
def test_gradcheck_dqn_loss(kind):
    q_values = randn(6, 3, seed=7, requires_grad=True)
    actions = torch.tensor([0, 2, 1, 1, 0, 2])
    targets = randn(6, seed=8) * 2 + 0.1
    assert torch.autograd.gradcheck(
        lambda q: rlgrad.dqn_loss(q, actions, targets, kind=kind), (q_values,)
    )


def test_gradcheck_entropy_and_kl():
    logits = randn(4, 5, seed=9, requires_grad=True)
    assert torch.autograd.gradcheck(rlgrad.categorical_entropy, (logits,))
    log_probs, ref = randn(8, seed=10, requires_grad=True), randn(8, seed=11)
    assert torch.autograd.gradcheck(lambda lp: rlgrad.kl_k3(lp, ref), (log_probs,))
    old = randn(8, seed=12)
    assert torch.autograd.gradcheck(lambda lp: rlgrad.approx_kl(lp, old), (log_probs,))


# --- gradients against hand derivations -----------------------------------------------------


def grad_of(loss_fn, x):
    x = x.detach().clone().requires_grad_(True)
    loss_fn(x).backward()
    return x.grad


def test_policy_gradient_loss_gradient_is_minus_advantage_times_score():
    # L = −mean(Â log π_θ(a)) for a softmax policy: ∇_θ L = −mean(Â ∇ log π) where
    # ∇_logits log π(a) = onehot(a) − π.
    logits = randn(5, 3, seed=13)
    actions = torch.tensor([0, 2, 1, 0, 2])
    advantages = randn(5, seed=14)

    def loss(z):
        log_probs = torch.log_softmax(z, -1).gather(-1, actions[:, None]).squeeze(-1)
        return rlgrad.policy_gradient_loss(log_probs, advantages)

    score = torch.nn.functional.one_hot(actions, 3).to(f64) - torch.softmax(logits, -1)
    torch.testing.assert_close(grad_of(loss, logits), -(advantages[:, None] * score) / 5)


def test_losses_detach_advantages_targets_and_old_policies():
    advantages = randn(4, seed=15, requires_grad=True)
    old = randn(4, seed=16, requires_grad=True)
    log_probs = randn(4, seed=17, requires_grad=True)
    rlgrad.policy_gradient_loss(log_probs, advantages).backward()
    rlgrad.ppo_clip_loss(log_probs, old, advantages).backward()
    assert advantages.grad is None and old.grad is None
    returns = randn(4, seed=18, requires_grad=True)
    rlgrad.value_loss(log_probs, returns).backward()
    assert returns.grad is None
    targets = randn(4, seed=19, requires_grad=True)
    rlgrad.dqn_loss(
        randn(4, 2, seed=20, requires_grad=True), torch.zeros(4, dtype=torch.long), targets
    ).backward()
    assert targets.grad is None
    ref = randn(4, seed=21, requires_grad=True)
    rlgrad.kl_k3(log_probs, ref).sum().backward()
    assert ref.grad is None


def test_value_loss_gradient_is_mean_error():
    # L = mean ½(V − G)²: ∂L/∂V_i = (V_i − G_i)/N.
    values, returns = randn(6, seed=22), randn(6, seed=23)
    grad = grad_of(lambda v: rlgrad.value_loss(v, returns), values)
    torch.testing.assert_close(grad, (values - returns) / 6)


def test_clipped_value_loss_takes_the_pessimistic_branch():
    # V_old = 0, ε = 0.5, G = 2. V = 1.5: clipped 0.5 → max(0.25, 2.25) = 2.25, grad 0 (clipped
    # branch is flat in V). V = −1: V_clip = −0.5, max(9, 6.25) = 9, grad (V − G) = −3.
    returns, old = torch.tensor([2.0, 2.0], dtype=f64), torch.zeros(2, dtype=f64)
    values = torch.tensor([1.5, -1.0], dtype=f64)
    loss = rlgrad.value_loss(values, returns, old, clip_eps=0.5)
    assert loss.item() == pytest.approx(0.5 * (2.25 + 9.0) / 2)
    grad = grad_of(lambda v: rlgrad.value_loss(v, returns, old, clip_eps=0.5), values)
    torch.testing.assert_close(grad, torch.tensor([0.0, -3.0 / 2], dtype=f64))


def test_huber_gradient_is_clipped_td_error():
    # Huber(δ=1): ∂/∂Q = clip(Q − y, −1, 1)/N.
    q_values = torch.tensor([[0.0, 0.3], [5.0, 1.0], [-4.0, 2.0]], dtype=f64)
    actions = torch.tensor([1, 0, 0])
    targets = torch.tensor([0.0, 1.0, 0.0], dtype=f64)
    grad = grad_of(lambda q: rlgrad.dqn_loss(q, actions, targets, kind="huber"), q_values)
    expected = torch.zeros_like(q_values)
    expected[0, 1], expected[1, 0], expected[2, 0] = 0.3 / 3, 1.0 / 3, -1.0 / 3
    torch.testing.assert_close(grad, expected)


def test_double_dqn_uses_online_argmax_and_target_values():
    # Online net prefers action 0 (3 > 1); the target net values it at 0.5 (not its own max 2.0).
    rewards, terminated = torch.tensor([1.0]), torch.tensor([False])
    next_target, next_online = torch.tensor([[0.5, 2.0]]), torch.tensor([[3.0, 1.0]])
    plain = rlgrad.dqn_targets(rewards, next_target, terminated, 0.9)
    double = rlgrad.dqn_targets(rewards, next_target, terminated, 0.9, next_online)
    assert plain.item() == pytest.approx(1.0 + 0.9 * 2.0)
    assert double.item() == pytest.approx(1.0 + 0.9 * 0.5)


def test_dqn_targets_batched_equal_loop():
    rewards = randn(3, 4, seed=24)
    next_q = randn(3, 4, 5, seed=25)
    terminated = torch.rand(3, 4, generator=torch.Generator().manual_seed(0)) < 0.3
    batched = rlgrad.dqn_targets(rewards, next_q, terminated, 0.99)
    for i in range(3):
        for j in range(4):
            one = rlgrad.dqn_targets(rewards[i, j], next_q[i, j], terminated[i, j], 0.99)
            torch.testing.assert_close(batched[i, j], one)


def test_semi_gradient_batch_is_mean_of_single_updates():
    w = randn(3, seed=26)
    phi, phi_next, rewards = randn(5, 3, seed=27), randn(5, 3, seed=28), randn(5, seed=29)
    terminated = torch.tensor([False, True, False, False, True])
    batched = rlgrad.semi_gradient_td_update(w, phi, phi_next, rewards, terminated, 0.9, 0.1)
    singles = torch.stack(
        [
            rlgrad.semi_gradient_td_update(
                w, phi[i], phi_next[i], rewards[i], terminated[i], 0.9, 0.1
            )
            for i in range(5)
        ]
    )
    torch.testing.assert_close(batched, singles.mean(0))


# --- PPO identities (hypothesis) --------------------------------------------------------------

samples = st.integers(0, 2**31 - 1)
clip = st.floats(0.05, 0.5)


@given(samples, clip)
def test_ppo_equals_importance_weighted_pg_inside_the_clip_range(seed, clip_eps):
    g = torch.Generator().manual_seed(seed)
    old = torch.randn(16, generator=g, dtype=f64)
    # Log-ratios strictly inside (log(1 − ε), log(1 + ε)).
    log_ratios = (torch.rand(16, generator=g, dtype=f64) * 1.8 - 0.9) * math.log1p(clip_eps) * 0.9
    log_probs = (old + log_ratios).requires_grad_(True)
    advantages = torch.randn(16, generator=g, dtype=f64)
    ratios = torch.exp(log_ratios)
    objective = rlgrad.ppo_objective(ratios, advantages, clip_eps)
    torch.testing.assert_close(objective, ratios * advantages)
    rlgrad.ppo_clip_loss(log_probs, old, advantages, clip_eps).backward()
    torch.testing.assert_close(log_probs.grad, -(ratios * advantages) / 16)


@given(samples, clip)
def test_ppo_gradient_equals_pg_gradient_at_ratio_one(seed, clip_eps):
    g = torch.Generator().manual_seed(seed)
    log_probs = torch.randn(10, generator=g, dtype=f64)
    advantages = torch.randn(10, generator=g, dtype=f64)
    ppo = grad_of(lambda lp: rlgrad.ppo_clip_loss(lp, log_probs, advantages, clip_eps), log_probs)
    pg = grad_of(lambda lp: rlgrad.policy_gradient_loss(lp, advantages), log_probs)
    torch.testing.assert_close(ppo, pg)


@given(samples, clip)
def test_ppo_gradient_vanishes_where_the_clip_is_active(seed, clip_eps):
    g = torch.Generator().manual_seed(seed)
    advantages = torch.randn(20, generator=g, dtype=f64)
    # Push each ratio beyond the clip on the side its advantage favours.
    beyond = 1.0 + torch.sign(advantages) * (
        clip_eps + 0.01 + torch.rand(20, generator=g, dtype=f64) * 0.3
    )
    ratios = beyond.clamp_min(1e-3).requires_grad_(True)
    objective = rlgrad.ppo_objective(ratios, advantages, clip_eps)
    torch.testing.assert_close(
        objective, ratios.detach().clamp(1 - clip_eps, 1 + clip_eps) * advantages
    )
    objective.sum().backward()
    assert bool((ratios.grad == 0).all())


def test_ppo_keeps_full_gradient_on_the_unfavourable_side():
    # Â < 0 and r = 1.5 > 1 + ε: the unclipped term is smaller, the gradient is Â (not clipped).
    ratios = torch.tensor([1.5], dtype=f64, requires_grad=True)
    objective = rlgrad.ppo_objective(ratios, torch.tensor([-2.0], dtype=f64), 0.2)
    assert objective.item() == pytest.approx(-3.0)
    objective.backward()
    assert ratios.grad.item() == -2.0


def test_clip_fraction_and_approx_kl_values():
    ratios = torch.tensor([0.5, 0.85, 1.0, 1.19, 1.21, 2.0])
    assert rlgrad.clip_fraction(ratios, 0.2).item() == pytest.approx(3 / 6)
    # k3 of log r = [0, log 2]: (1 − 1 − 0) and (2 − 1 − log 2) = 0.3069; mean 0.1534.
    lp = torch.tensor([0.0, math.log(2.0)], dtype=f64)
    assert rlgrad.approx_kl(lp, torch.zeros(2, dtype=f64)).item() == pytest.approx(
        (1 - math.log(2.0)) / 2
    )


def test_approx_kl_estimates_the_true_kl():
    # Sampling a ~ π_old and averaging (r − 1) − log r recovers KL(π_old ‖ π).
    old_probs = torch.tensor([0.5, 0.3, 0.2], dtype=f64)
    new_probs = torch.tensor([0.4, 0.4, 0.2], dtype=f64)
    true_kl = (old_probs * (old_probs / new_probs).log()).sum().item()
    actions = torch.multinomial(
        old_probs, 200_000, replacement=True, generator=torch.Generator().manual_seed(0)
    )
    estimate = rlgrad.approx_kl(new_probs.log()[actions], old_probs.log()[actions]).item()
    assert estimate == pytest.approx(true_kl, rel=0.03)


# --- entropy and KL ---------------------------------------------------------------------------


@given(samples, st.integers(1, 12), st.floats(0.01, 30.0))
def test_entropy_between_zero_and_log_num_actions(seed, num_actions, temperature):
    logits = (
        torch.randn(5, num_actions, generator=torch.Generator().manual_seed(seed), dtype=f64)
        * temperature
    )
    entropy = rlgrad.categorical_entropy(logits)
    assert bool((entropy >= -1e-12).all())
    assert bool((entropy <= math.log(num_actions) + 1e-12).all())


def test_entropy_uniform_deterministic_and_masked():
    assert rlgrad.categorical_entropy(torch.zeros(3, dtype=f64)).item() == pytest.approx(
        math.log(3)
    )
    assert rlgrad.categorical_entropy(torch.tensor([0.0, -1e4], dtype=f64)).item() == 0.0
    masked = torch.tensor([0.0, 0.0, float("-inf")], dtype=f64, requires_grad=True)
    entropy = rlgrad.categorical_entropy(masked)
    assert entropy.item() == pytest.approx(math.log(2))
    entropy.backward()
    assert bool(torch.isfinite(masked.grad).all())


def test_entropy_gradient_matches_the_seed_formula_through_the_softmax():
    # dH/dz_j = Σ_a ∂H/∂π_a · ∂π_a/∂z_j with ∂H/∂π_a = −(log π_a + 1)
    # and ∂π_a/∂z_j = π_a(1[a=j] − π_j).
    logits = torch.tensor([0.2, -0.4, 1.1], dtype=f64)
    pi = torch.softmax(logits, -1)
    jacobian = torch.diag(pi) - pi[:, None] * pi[None, :]
    expected = jacobian.T @ (-(pi.log() + 1))
    torch.testing.assert_close(rlgrad.gradient(rlgrad.categorical_entropy, logits), expected)


def test_kl_k3_nonnegative_zero_at_equality_and_unbiased():
    lp = randn(100, seed=30)
    assert bool((rlgrad.kl_k3(lp, randn(100, seed=31)) >= 0).all())
    assert bool((rlgrad.kl_k3(lp, lp) == 0).all())
    # E_{a~π}[k3] = KL(π ‖ π_ref).
    probs = torch.tensor([0.6, 0.3, 0.1], dtype=f64)
    ref = torch.tensor([0.3, 0.3, 0.4], dtype=f64)
    exact = (probs * (probs / ref).log()).sum().item()
    expectation = (probs * rlgrad.kl_k3(probs.log(), ref.log())).sum().item()
    assert expectation == pytest.approx(exact, abs=1e-12)


# ----- small formulas the trainers used to write inline -----


def test_entropy_loss_is_minus_beta_times_the_entropy_and_zero_without_a_bonus():
    logits = torch.tensor([[0.0, 1.0, -1.0]], dtype=torch.float64, requires_grad=True)
    mean_entropy = rlgrad.categorical_entropy(logits).mean()
    loss = rlgrad.entropy_loss(mean_entropy, 0.01)
    assert loss.item() == pytest.approx(-0.01 * mean_entropy.item())
    (grad,) = torch.autograd.grad(loss, logits, retain_graph=True)
    (entropy_grad,) = torch.autograd.grad(mean_entropy, logits)
    torch.testing.assert_close(grad, -0.01 * entropy_grad)  # descending it raises H
    # β = 0: a constant, so no gradient reaches the entropy
    zero = rlgrad.entropy_loss(rlgrad.categorical_entropy(logits).mean(), 0.0)
    assert zero.item() == 0.0 and not zero.requires_grad
    # one average per seed: one loss per seed
    per_seed = torch.tensor([0.5, 0.25], dtype=torch.float64)
    torch.testing.assert_close(rlgrad.entropy_loss(per_seed, 0.1), -0.1 * per_seed)
    assert rlgrad.entropy_loss(per_seed, 0.0).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match=r"entropy_loss\(\): 'mean_entropy' must be a 0-dim"):
        rlgrad.entropy_loss(torch.ones(3, 2), 0.01)


def test_clipped_fractions_count_only_the_side_the_advantage_pushes_towards():
    ratios = torch.tensor([0.5, 0.5, 1.5, 1.5, 1.25, 1.0])
    advantages = torch.tensor([-1.0, 1.0, 1.0, -1.0, 1.0, 1.0])
    # ε = 0.2: low clipped only (0.5, Â < 0); high only (1.5, Â > 0) and (1.25, Â > 0)
    low, high = rlgrad.clipped_fractions(ratios, advantages, 0.2)
    assert (low.item(), high.item()) == pytest.approx((1 / 6, 2 / 6))
    # ε_high = 0.28 (DAPO): 1.25 is inside the wider upper range
    low, high = rlgrad.clipped_fractions(ratios, advantages, 0.2, clip_eps_high=0.28)
    assert (low.item(), high.item()) == pytest.approx((1 / 6, 1 / 6))
    # where a side is clipped, ppo_objective's gradient with respect to r is 0 there
    r = ratios.clone().requires_grad_(True)
    rlgrad.ppo_objective(r, advantages, 0.2).sum().backward()
    assert r.grad.tolist() == pytest.approx([0.0, 1.0, 0.0, -1.0, 0.0, 1.0])


def test_equal_reward_groups_marks_the_groups_with_zero_advantages():
    rewards = torch.tensor([[1.0, 1.0, 1.0], [0.0, 1.0, 1.0], [2.0, 2.0, 2.0]])
    equal = rlgrad.equal_reward_groups(rewards)
    assert equal.tolist() == [True, False, True]
    advantages = rlgrad.group_advantages(rewards)
    assert (advantages[equal] == 0).all() and (advantages[~equal] != 0).all()


def test_polyak_update_moves_targets_by_tau_and_copies_at_one():
    target, source = torch.tensor([0.0, 2.0]), torch.tensor([4.0, -2.0])
    rlgrad.polyak_update([target], [source], tau=0.25)
    # 0.25·4 + 0.75·0 = 1; 0.25·(−2) + 0.75·2 = 1
    assert target.tolist() == [1.0, 1.0]
    rlgrad.polyak_update([target], [source], tau=1.0)
    assert torch.equal(target, source)
    net, copy_ = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    before = [p.detach().clone() for p in copy_.parameters()]
    rlgrad.polyak_update(copy_.parameters(), net.parameters(), tau=0.1)
    for b, t, s in zip(before, copy_.parameters(), net.parameters(), strict=True):
        torch.testing.assert_close(t.detach(), 0.1 * s.detach() + 0.9 * b)
    with pytest.raises(ValueError, match=r"polyak_update\(\): 'tau' must be in \(0, 1\]"):
        rlgrad.polyak_update([target], [source], tau=0.0)
    with pytest.raises(ValueError, match="must pair up"):
        rlgrad.polyak_update([target], [], tau=0.5)


@pytest.mark.parametrize("tau", [0.005, 1.0])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_polyak_update_refuses_a_non_finite_source_and_moves_no_target(tau, bad):
    # Before the check a NaN source entered the target: lerp gives NaN, copy_ copies it.
    targets = [torch.zeros(2), torch.ones(3)]
    sources = [torch.full((2,), 4.0), torch.tensor([1.0, bad, 2.0])]
    with pytest.raises(rlgrad.NonFiniteError) as error:
        rlgrad.polyak_update(targets, sources, tau=tau)
    assert str(error.value) == (
        f"polyak_update(): 'sources[1]' must be finite; got {bad} at index (1,)"
    )
    # the first pair, which is fine, did not move either: the checks run before any update
    assert targets[0].tolist() == [0.0, 0.0] and targets[1].tolist() == [1.0, 1.0, 1.0]


def test_polyak_update_finds_finite_sources_whose_sum_overflows():
    # 3e38 + 3e38 overflows float32 to inf in the one-reduction check; every entry is finite, so
    # the tensor-by-tensor check must let the update through (0.5·3e38 + 0.5·0 = 1.5e38).
    target, source = torch.zeros(2), torch.full((2,), 3e38)
    rlgrad.polyak_update([target], [source], tau=0.5)
    assert target.tolist() == [pytest.approx(1.5e38, rel=1e-6)] * 2


@pytest.mark.parametrize("tau", [0.5, 1.0])
def test_polyak_update_refuses_mixed_dtypes(tau):
    # float32 target, float64 source: lerp_ raised torch's own error, copy_ (τ = 1) converted
    target, source = torch.zeros(2), torch.ones(2, dtype=torch.float64)
    with pytest.raises(TypeError) as error:
        rlgrad.polyak_update([target], [source], tau=tau)
    assert str(error.value).startswith(
        "polyak_update(): 'sources[0]' must have the dtype of 'targets[0]' (torch.float32); "
        "got torch.float64"
    )
    assert target.tolist() == [0.0, 0.0]


def test_polyak_update_names_the_pair_on_other_bad_input():
    net = torch.nn.Linear(3, 2)
    parameters = net.parameters()
    list(parameters)  # the generator is now exhausted: nothing would be updated
    with pytest.raises(ValueError, match=r"polyak_update\(\): 'targets' must hold at least one"):
        rlgrad.polyak_update(parameters, parameters, tau=0.5)
    with pytest.raises(
        ValueError,
        match=r"polyak_update\(\): 'sources\[0\]' must have the shape of 'targets\[0\]' "
        r"\(2,\); got \(3,\)",
    ):
        rlgrad.polyak_update([torch.zeros(2)], [torch.zeros(3)], tau=0.5)
    with pytest.raises(TypeError, match=r"polyak_update\(\): 'targets\[0\]' must be a torch"):
        rlgrad.polyak_update([[0.0, 0.0]], [torch.zeros(2)], tau=0.5)
    with pytest.raises(TypeError, match=r"'sources\[0\]' must be a floating-point tensor"):
        rlgrad.polyak_update([torch.zeros(2)], [torch.zeros(2, dtype=torch.long)], tau=0.5)
