"""SAC and TD3 formulas: the squashed Gaussian against autograd's change of variables, the critic
targets, target smoothing, and the actor and temperature losses (gradcheck, hand-derived
gradients, identities)."""

import math

import pytest
import torch
from conftest import randn
from hypothesis import given, settings
from hypothesis import strategies as st

import rlgrad

f64 = torch.float64


# --- the squashed Gaussian ---------------------------------------------------------------------


def change_of_variables_log_prob(u, means, log_stds, scale, shift):
    """log N(u) − log |det ∂a/∂u| with the Jacobian of a = scale·tanh(u) + shift from autograd."""
    jacobian = torch.autograd.functional.jacobian(lambda x: scale * torch.tanh(x) + shift, u)
    _, log_det = torch.linalg.slogdet(jacobian)
    gaussian = torch.distributions.Normal(means, log_stds.exp()).log_prob(u).sum()
    return gaussian - log_det


@pytest.mark.parametrize("seed", range(4))
def test_squashed_log_prob_equals_the_change_of_variables_from_autograd(seed):
    dims = 3
    u, means, log_stds = (
        randn(dims, seed=seed),
        randn(dims, seed=seed + 10),
        randn(dims, seed=seed + 20) * 0.5,
    )
    scale = torch.tensor([0.5, 2.0, 3.0], dtype=f64)
    shift = torch.tensor([1.0, -1.0, 0.0], dtype=f64)  # moves no mass: absent from the formula
    expected = change_of_variables_log_prob(u, means, log_stds, scale, shift)
    got = rlgrad.squashed_gaussian_log_prob(u[None], means[None], log_stds, action_scale=scale)
    torch.testing.assert_close(got, expected[None], rtol=0, atol=1e-12)


def test_squashed_density_integrates_to_one_over_the_action_interval():
    # a ∈ (−2, 2) (scale 2), u = atanh(a / 2); trapezoid rule over a fine grid of a.
    scale, mean, log_std = 2.0, 0.3, math.log(0.5)
    actions = torch.linspace(-scale, scale, 400_001, dtype=f64)[1:-1]
    u = torch.atanh(actions / scale)
    density = rlgrad.squashed_gaussian_log_prob(
        u[:, None],
        torch.full((len(u), 1), mean, dtype=f64),
        torch.tensor([log_std], dtype=f64),
        action_scale=scale,
    ).exp()
    assert torch.trapezoid(density, actions).item() == pytest.approx(1.0, abs=1e-6)


def test_squashed_log_prob_stays_finite_where_the_direct_form_fails():
    # float32: 1 − tanh²(12) rounds to 0 and log 0 = −inf; the stable form gives the float64 value
    u = torch.tensor([[12.0, -15.0]])
    zeros = torch.zeros(1, 2)
    direct = (torch.log(1 - torch.tanh(u) ** 2)).sum()
    assert torch.isinf(direct)
    got = rlgrad.squashed_gaussian_log_prob(u, zeros, torch.zeros(2))
    exact = rlgrad.squashed_gaussian_log_prob(u.double(), zeros.double(), torch.zeros(2, dtype=f64))
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got.double(), exact, rtol=1e-6, atol=0)
    # by hand: log(1 − tanh² u) = log sech² u ≈ 2(log 2 − |u|) for large |u|
    gaussian = -0.5 * (12.0**2 + 15.0**2) - math.log(2 * math.pi)
    assert exact.item() == pytest.approx(gaussian - 2 * (math.log(2) - 12) - 2 * (math.log(2) - 15))


def test_gradcheck_squashed_log_prob():
    u, means = randn(5, 2, seed=1), randn(5, 2, seed=2, requires_grad=True)
    log_stds = (randn(2, seed=3) * 0.3).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda m, s: rlgrad.squashed_gaussian_log_prob(u, m, s, action_scale=1.5), (means, log_stds)
    )
    # through the sample too, as SAC's reparameterized actor needs: u = μ + σε
    noise = randn(5, 2, seed=4)
    assert torch.autograd.gradcheck(
        lambda m, s: rlgrad.squashed_gaussian_log_prob(m + s.exp() * noise, m, s), (means, log_stds)
    )


def test_squashed_log_prob_refuses_bad_scales_and_shapes():
    u = torch.zeros(2, 3)
    with pytest.raises(
        ValueError, match=r"squashed_gaussian_log_prob\(\): 'action_scale' must be > 0"
    ):
        rlgrad.squashed_gaussian_log_prob(u, u, torch.zeros(3), action_scale=0.0)
    with pytest.raises(
        ValueError, match=r"'action_scale' must be a number or have shape \[D\] = \(3,\)"
    ):
        rlgrad.squashed_gaussian_log_prob(u, u, torch.zeros(3), action_scale=torch.ones(2))
    with pytest.raises(ValueError, match=r"'pre_tanh_actions' must have the shape of 'means'"):
        rlgrad.squashed_gaussian_log_prob(torch.zeros(2, 2), u, torch.zeros(3))


# --- critic targets ----------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    batch=st.integers(1, 6),
    critics=st.integers(1, 3),
    gamma=st.floats(0.0, 1.0),
    seed=st.integers(0, 10_000),
)
def test_soft_targets_at_zero_temperature_are_the_clipped_double_q_targets(
    batch, critics, gamma, seed
):
    rewards, next_q = randn(batch, seed=seed), randn(batch, critics, seed=seed + 1)
    log_probs = randn(batch, seed=seed + 2) * 3
    terminated = randn(batch, seed=seed + 3) > 0
    soft = rlgrad.soft_q_targets(rewards, next_q, log_probs, terminated, gamma, alpha=0.0)
    clipped = rlgrad.clipped_double_q_targets(rewards, next_q, terminated, gamma)
    torch.testing.assert_close(soft, clipped, rtol=0, atol=0)
    # and by hand, per sample
    for i in range(batch):
        expected = rewards[i] + (0.0 if terminated[i] else gamma * next_q[i].min())
        assert clipped[i].item() == pytest.approx(float(expected), abs=1e-12)


def test_soft_targets_by_hand_with_per_sample_discounts_and_a_termination():
    # n-step discounts γ^K = 0.9 and 0.81; the second window ended in a termination → y = r
    rewards = torch.tensor([1.0, 2.0], dtype=f64)
    next_q = torch.tensor([[3.0, 2.5], [10.0, 11.0]], dtype=f64)
    log_probs = torch.tensor([-1.0, -4.0], dtype=f64)
    y = rlgrad.soft_q_targets(
        rewards, next_q, log_probs, torch.tensor([0, 1]), torch.tensor([0.9, 0.81], dtype=f64), 0.2
    )
    # 1 + 0.9·(2.5 − 0.2·(−1)) = 1 + 0.9·2.7 = 3.43
    torch.testing.assert_close(y, torch.tensor([3.43, 2.0], dtype=f64))


def test_targets_are_detached_from_critics_and_policy():
    next_q = randn(4, 2, seed=1, requires_grad=True)
    log_probs = randn(4, seed=2, requires_grad=True)
    rewards, terminated = randn(4, seed=3), torch.zeros(4, dtype=torch.bool)
    alpha = torch.tensor(0.3, dtype=f64, requires_grad=True)
    for y in (
        rlgrad.soft_q_targets(rewards, next_q, log_probs, terminated, 0.99, alpha),
        rlgrad.clipped_double_q_targets(rewards, next_q, terminated, 0.99),
    ):
        assert not y.requires_grad


def test_critic_target_errors_name_the_function_and_the_shapes():
    rewards = torch.zeros(3)
    with pytest.raises(
        ValueError, match=r"soft_q_targets\(\): 'next_q_targets' must have shape \(3, 'K'\)"
    ):
        rlgrad.soft_q_targets(rewards, torch.zeros(3), torch.zeros(3), torch.zeros(3), 0.99, 0.1)
    with pytest.raises(
        ValueError, match=r"clipped_double_q_targets\(\): 'terminated' must hold only 0/1"
    ):
        rlgrad.clipped_double_q_targets(rewards, torch.zeros(3, 2), torch.full((3,), 0.5), 0.99)
    with pytest.raises(ValueError, match=r"soft_q_targets\(\): 'alpha' must be >= 0"):
        rlgrad.soft_q_targets(
            rewards, torch.zeros(3, 2), torch.zeros(3), torch.zeros(3), 0.99, -1.0
        )
    with pytest.raises(ValueError, match=r"'next_q_targets' must hold at least one critic"):
        rlgrad.clipped_double_q_targets(rewards, torch.zeros(3, 0), torch.zeros(3), 0.99)


# --- CrossQ: the critic values and targets of one joint pass -----------------------------------


def test_joint_soft_q_targets_by_hand():
    # B = 2, K = 2: rows 0-1 are Q(s, a), rows 2-3 are Q(s′, a′); γ = (0.9, 0.81), α = 0.5
    joint = torch.tensor([[1.0, 2.0], [3.0, 4.0], [3.0, 2.0], [5.0, 7.0]], dtype=f64)
    rewards = torch.tensor([1.0, -1.0], dtype=f64)
    log_probs = torch.tensor([-2.0, 0.5], dtype=f64)
    discounts = torch.tensor([0.9, 0.81], dtype=f64)
    q_values, targets = rlgrad.joint_soft_q_targets(
        joint, rewards, log_probs, torch.tensor([False, True]), discounts, 0.5
    )
    torch.testing.assert_close(q_values, torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=f64))
    # y₀ = 1 + 0.9·(min(3, 2) − 0.5·(−2)) = 1 + 0.9·3 = 3.7; the second pair terminated: y₁ = r = −1
    torch.testing.assert_close(targets, torch.tensor([3.7, -1.0], dtype=f64))


def test_joint_soft_q_targets_train_only_the_first_half():
    # the critic loss L = mean ½(Q_k(s, a) − y)² over B·K entries: ∂L/∂Q_k(s, a) = (Q − y)/(B·K),
    # and nothing reaches Q(s′, a′) (y is a constant)
    joint = randn(6, 2, seed=1, requires_grad=True)  # B = 3, K = 2
    rewards, log_probs = randn(3, seed=2), randn(3, seed=3)
    q_values, targets = rlgrad.joint_soft_q_targets(
        joint, rewards, log_probs, torch.zeros(3, dtype=torch.bool), 0.99, 0.2
    )
    assert q_values.requires_grad and not targets.requires_grad
    loss = rlgrad.value_loss(q_values, targets[:, None].expand_as(q_values))
    (gradient,) = torch.autograd.grad(loss, joint)
    expected = (joint[:3] - targets[:, None]).detach() / 6
    torch.testing.assert_close(gradient[:3], expected, rtol=1e-12, atol=0)
    assert torch.equal(gradient[3:], torch.zeros(3, 2, dtype=f64))


@given(
    batch=st.integers(1, 5),
    critics=st.integers(1, 3),
    gamma=st.floats(0.0, 1.0),
    alpha=st.floats(0.0, 2.0),
    seed=st.integers(0, 10_000),
)
@settings(max_examples=25, deadline=None)
def test_joint_soft_q_targets_are_soft_q_targets_of_the_second_half(
    batch, critics, gamma, alpha, seed
):
    # with an extra batch axis R = 2: rewards [B, 2], joint values [2B, 2, K]
    joint = randn(2 * batch, 2, critics, seed=seed)
    rewards, log_probs = randn(batch, 2, seed=seed + 1), randn(batch, 2, seed=seed + 2)
    terminated = randn(batch, 2, seed=seed + 3) > 0.5
    q_values, targets = rlgrad.joint_soft_q_targets(
        joint, rewards, log_probs, terminated, gamma, alpha
    )
    separate = rlgrad.soft_q_targets(rewards, joint[batch:], log_probs, terminated, gamma, alpha)
    assert torch.equal(q_values, joint[:batch])
    assert torch.equal(targets, separate)


def test_joint_soft_q_targets_errors_name_the_function_and_the_shapes():
    rewards, zeros = torch.zeros(3), torch.zeros(3)
    with pytest.raises(
        ValueError,
        match=r"joint_soft_q_targets\(\): 'joint_q_values' must have shape \(6, 'K'\) .*"
        r"got \(5, 2\)",
    ):
        rlgrad.joint_soft_q_targets(torch.zeros(5, 2), rewards, zeros, zeros, 0.99, 0.1)
    with pytest.raises(ValueError, match=r"'joint_q_values' must hold at least one critic"):
        rlgrad.joint_soft_q_targets(torch.zeros(6, 0), rewards, zeros, zeros, 0.99, 0.1)
    with pytest.raises(ValueError, match=r"joint_soft_q_targets\(\): 'rewards' must have at least"):
        rlgrad.joint_soft_q_targets(torch.zeros(2, 2), torch.tensor(0.0), zeros, zeros, 0.99, 0.1)
    with pytest.raises(ValueError, match=r"joint_soft_q_targets\(\): 'alpha' must be >= 0"):
        rlgrad.joint_soft_q_targets(torch.zeros(6, 2), rewards, zeros, zeros, 0.99, -1.0)
    with pytest.raises(ValueError, match=r"joint_soft_q_targets\(\): 'terminated' must hold"):
        rlgrad.joint_soft_q_targets(torch.zeros(6, 2), rewards, zeros, zeros + 0.5, 0.99, 0.1)


# --- target policy smoothing -------------------------------------------------------------------


def test_smoothed_actions_stay_in_the_clip_range_and_the_box():
    generator = torch.Generator().manual_seed(0)
    actions = torch.tensor([[0.0, 0.9, -1.0]]).expand(20_000, 3)
    smoothed = rlgrad.smoothed_target_actions(actions, 0.5, 0.2, -1.0, 1.0, generator)
    noise = smoothed - actions
    assert noise.abs().max().item() <= 0.2 + 1e-7
    assert smoothed.min().item() >= -1.0 and smoothed.max().item() <= 1.0
    # the noise is clipped often at σ = 0.5, c = 0.2: P(|ε| > 0.2) = 2Φ(−0.4) = 0.6892
    clipped = (noise[:, 0].abs() > 0.2 - 1e-6).double().mean().item()
    assert clipped == pytest.approx(0.6892, abs=0.015)
    # at 0.9 the box cuts the upper side: never above 1
    assert (smoothed[:, 1] == 1.0).any()


def test_smoothed_noise_has_the_requested_per_dimension_std_when_unclipped():
    generator = torch.Generator().manual_seed(1)
    std = torch.tensor([0.1, 0.3])
    actions = torch.zeros(50_000, 2)
    smoothed = rlgrad.smoothed_target_actions(actions, std, 10.0, -100.0, 100.0, generator)
    torch.testing.assert_close(smoothed.std(dim=0), std, rtol=0.02, atol=0)
    # the same generator state gives the same noise
    again = rlgrad.smoothed_target_actions(
        actions, std, 10.0, -100.0, 100.0, torch.Generator().manual_seed(1)
    )
    torch.testing.assert_close(again, smoothed, rtol=0, atol=0)


def test_given_noise_is_the_draw_the_generator_would_make():
    # many seeds pass each seed's own standard normal draws: the same result as drawing them
    std, clip = torch.tensor([0.2, 0.6]), torch.tensor([0.3, 0.5])
    actions = randn(7, 2, seed=4).float().clamp(-1, 1)
    drawn = rlgrad.smoothed_target_actions(
        actions, std, clip, -1.0, 1.0, torch.Generator().manual_seed(9)
    )
    noise = torch.randn(7, 2, generator=torch.Generator().manual_seed(9))
    given = rlgrad.smoothed_target_actions(actions, std, clip, -1.0, 1.0, noise=noise)
    assert torch.equal(given, drawn)
    assert not torch.equal(given, actions)  # the noise moved them
    # a leading seed axis: row s is row s's own call
    seeds = torch.stack([actions, -actions])
    noises = torch.stack([noise, 2 * noise])
    batched = rlgrad.smoothed_target_actions(seeds, std, clip, -1.0, 1.0, noise=noises)
    for s in range(2):
        alone = rlgrad.smoothed_target_actions(seeds[s], std, clip, -1.0, 1.0, noise=noises[s])
        assert torch.equal(batched[s], alone)
    with pytest.raises(ValueError, match=r"smoothed_target_actions\(\): 'noise'.*shape"):
        rlgrad.smoothed_target_actions(actions, std, clip, -1.0, 1.0, noise=noise[:3])


def test_smoothing_errors():
    actions = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"smoothed_target_actions\(\): 'noise_std' must be >= 0"):
        rlgrad.smoothed_target_actions(actions, -0.1, 0.5, -1.0, 1.0)
    with pytest.raises(ValueError, match=r"'low' must not exceed 'high'"):
        rlgrad.smoothed_target_actions(actions, 0.1, 0.5, 1.0, -1.0)
    with pytest.raises(ValueError, match=r"'high' must be a number or have shape \[D\] = \(3,\)"):
        rlgrad.smoothed_target_actions(actions, 0.1, 0.5, -1.0, torch.ones(2))


# --- actor and temperature losses --------------------------------------------------------------


def test_gradcheck_actor_losses():
    log_probs, q_values = randn(6, seed=1, requires_grad=True), randn(6, seed=2, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda lp, q: rlgrad.sac_actor_loss(lp, q, alpha=0.2), (log_probs, q_values)
    )
    assert torch.autograd.gradcheck(rlgrad.deterministic_policy_loss, (q_values,))


def test_the_deterministic_policy_loss_per_row_is_each_rows_own_loss():
    q_values = randn(3, 5, seed=6, requires_grad=True)
    per_row = rlgrad.deterministic_policy_loss(q_values, dim=1)
    assert per_row.shape == (3,)
    for s in range(3):
        torch.testing.assert_close(per_row[s], rlgrad.deterministic_policy_loss(q_values[s]))
    # each row's gradient is −1/B on its own entries only
    per_row[1].backward()
    expected = torch.zeros(3, 5, dtype=f64)
    expected[1] = -1 / 5
    torch.testing.assert_close(q_values.grad, expected)
    with pytest.raises(ValueError, match=r"deterministic_policy_loss\(\): 'dim' must be an axis"):
        rlgrad.deterministic_policy_loss(q_values, dim=2)


def test_sac_losses_with_one_alpha_per_row_are_each_rows_own_losses():
    # many seeds: [S, B] inputs, α [S, 1] (soft targets, actor loss) and log α [S]
    log_probs = randn(3, 4, seed=11, requires_grad=True)
    q_values = randn(3, 4, seed=12, requires_grad=True)
    next_q = randn(3, 4, 2, seed=13)
    rewards, terminated = randn(3, 4, seed=14), randn(3, 4, seed=15) > 0.5
    log_alpha = torch.tensor([-1.0, 0.0, 0.7], dtype=f64, requires_grad=True)
    alpha = log_alpha.detach().exp()[:, None]
    targets = rlgrad.soft_q_targets(rewards, next_q, log_probs, terminated, 0.9, alpha)
    actor = rlgrad.sac_actor_loss(log_probs, q_values, alpha, dim=1)
    temperature = rlgrad.temperature_loss(log_alpha, log_probs, target_entropy=-1.0, dim=1)
    assert actor.shape == temperature.shape == (3,) and targets.shape == (3, 4)
    for s in range(3):
        a = float(alpha[s])
        own = rlgrad.soft_q_targets(rewards[s], next_q[s], log_probs[s], terminated[s], 0.9, a)
        torch.testing.assert_close(targets[s], own, rtol=0, atol=0)
        torch.testing.assert_close(actor[s], rlgrad.sac_actor_loss(log_probs[s], q_values[s], a))
        alone = rlgrad.temperature_loss(log_alpha[s].detach(), log_probs[s], -1.0)
        torch.testing.assert_close(temperature[s], alone)
    # row s's temperature loss moves only log α_s, by −mean(log π_s + H̄)
    temperature.sum().backward()
    torch.testing.assert_close(log_alpha.grad, -(log_probs.detach() - 1.0).mean(dim=1))
    with pytest.raises(
        ValueError, match=r"sac_actor_loss\(\): 'alpha' must be a number or broadcast"
    ):
        rlgrad.sac_actor_loss(log_probs, q_values, alpha[:2])
    with pytest.raises(
        ValueError, match=r"soft_q_targets\(\): 'alpha' must be >= 0; got \[1\.0, -1\.0"
    ):
        rlgrad.soft_q_targets(
            rewards,
            next_q,
            log_probs,
            terminated,
            0.9,
            torch.tensor([[1.0], [-1.0], [1.0]], dtype=f64),
        )
    with pytest.raises(
        ValueError, match=r"temperature_loss\(\): 'log_alpha' must be shape \(3,\), one per"
    ):
        rlgrad.temperature_loss(log_alpha[:2], log_probs, -1.0, dim=1)


def test_sac_actor_loss_gradients_by_hand_and_alpha_is_a_constant():
    log_probs, q_values = randn(4, seed=3, requires_grad=True), randn(4, seed=4, requires_grad=True)
    alpha = torch.tensor(0.3, dtype=f64, requires_grad=True)
    loss = rlgrad.sac_actor_loss(log_probs, q_values, alpha.exp())
    loss.backward()
    # ∂L/∂log π_i = α/B, ∂L/∂Q_i = −1/B
    torch.testing.assert_close(log_probs.grad, torch.full((4,), math.exp(0.3) / 4, dtype=f64))
    torch.testing.assert_close(q_values.grad, torch.full((4,), -0.25, dtype=f64))
    assert alpha.grad is None


def test_gradcheck_temperature_loss_and_its_gradient_is_entropy_minus_target():
    log_alpha = torch.tensor(-0.7, dtype=f64, requires_grad=True)
    log_probs = randn(8, seed=5, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda la: rlgrad.temperature_loss(la, log_probs, target_entropy=-2.0), (log_alpha,)
    )
    loss = rlgrad.temperature_loss(log_alpha, log_probs, target_entropy=-2.0)
    loss.backward()
    sampled_entropy = -log_probs.detach().mean()
    assert log_alpha.grad.item() == pytest.approx(float(sampled_entropy - (-2.0)), abs=1e-12)
    assert log_probs.grad is None  # the bracket is detached


@pytest.mark.parametrize("entropy, direction", [(3.0, -1), (-3.0, +1)])
def test_a_gradient_step_on_the_temperature_moves_alpha_toward_the_target_entropy(
    entropy, direction
):
    # entropy above the target (H̄ = 0) → α falls; below → α rises
    log_alpha = torch.tensor(0.0, requires_grad=True)
    log_probs = torch.full((5,), -entropy)
    rlgrad.temperature_loss(log_alpha, log_probs, target_entropy=0.0).backward()
    step = -0.1 * log_alpha.grad
    assert math.copysign(1, step.item()) == direction


def test_actor_and_temperature_errors():
    with pytest.raises(
        ValueError, match=r"sac_actor_loss\(\): 'log_probs' must hold at least one sample"
    ):
        rlgrad.sac_actor_loss(torch.zeros(0), torch.zeros(0), 0.1)
    with pytest.raises(
        ValueError, match=r"sac_actor_loss\(\): 'q_values' must have the shape of 'log_probs'"
    ):
        rlgrad.sac_actor_loss(torch.zeros(3), torch.zeros(3, 1), 0.1)
    with pytest.raises(
        ValueError, match=r"temperature_loss\(\): 'log_alpha' must be a 0-dim tensor"
    ):
        rlgrad.temperature_loss(torch.zeros(1), torch.zeros(3), -1.0)
    with pytest.raises(
        ValueError, match=r"deterministic_policy_loss\(\): 'q_values' must hold at least one"
    ):
        rlgrad.deterministic_policy_loss(torch.zeros(0))
