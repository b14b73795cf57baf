"""Every worked number and exercise answer of the five seed pages, through the public API.

Each expectation is derived by hand in its comment; the seed page is named in the test name.
"""

import math

import pytest
import torch

import rlgrad

f64 = torch.float64


def t(values):
    return torch.tensor(values, dtype=f64)


def parabola(theta):  # E.3.1: J(θ) = −(θ − 0.8)² + 1
    return -((theta - 0.8) ** 2) + 1


def bowl(theta):  # E.3.1: J(θ₁, θ₂) = −(θ₁ − 1)² − (θ₂ − 2)² + 5
    return -((theta[0] - 1) ** 2) - (theta[1] - 2) ** 2 + 5


# --- E.3.1 calculus basics -------------------------------------------------------------------


@pytest.mark.parametrize(("theta", "value"), [(0.2, 0.64), (0.5, 0.91), (0.8, 1.0), (1.0, 0.96)])
def test_e31_objective_table(theta, value):
    # −(0.2 − 0.8)² + 1 = 1 − 0.36 = 0.64, and so on down the seed's table.
    assert parabola(t(theta)).item() == pytest.approx(value, abs=1e-12)


@pytest.mark.parametrize(("theta", "slope"), [(0.2, 1.2), (1.0, -0.4), (0.32, 0.96)])
def test_e31_derivative(theta, slope):
    # J'(θ) = −2(θ − 0.8): −2(−0.6) = 1.2, −2(0.2) = −0.4, −2(−0.48) = 0.96.
    assert rlgrad.gradient(parabola, t(theta)).item() == pytest.approx(slope, abs=1e-12)


def test_e31_gradient_ascent_trajectory():
    # 0.2 + 0.1·1.2 = 0.32; 0.32 + 0.1·0.96 = 0.416.
    path = rlgrad.gradient_ascent(parabola, t(0.2), lr=0.1, steps=2)
    torch.testing.assert_close(path, t([0.2, 0.32, 0.416]), rtol=0, atol=1e-12)


def test_e31_gradient_ascent_approaches_the_maximum():
    # The error to 0.8 shrinks by (1 − 2α) = 0.8 per step: 0.6·0.8^50 ≈ 8.6e-6.
    path = rlgrad.gradient_ascent(parabola, t(0.2), lr=0.1, steps=50)
    assert abs(path[-1].item() - 0.8) == pytest.approx(0.6 * 0.8**50, rel=1e-9)


def test_e31_two_parameter_gradient_and_step():
    # ∇J(0, 0) = [−2(0 − 1), −2(0 − 2)] = [2, 4]; [0, 0] + 0.1·[2, 4] = [0.2, 0.4].
    torch.testing.assert_close(rlgrad.gradient(bowl, t([0.0, 0.0])), t([2.0, 4.0]))
    path = rlgrad.gradient_ascent(bowl, t([0.0, 0.0]), lr=0.1, steps=1)
    torch.testing.assert_close(path[1], t([0.2, 0.4]))


def test_e31_chain_rule():
    # y = 3θ = 3, L = (3 − 6)² = 9; dL/dθ = dL/dy · dy/dθ = 2(3 − 6)·3 = −18.
    def loss(theta):
        return (3 * theta - 6) ** 2

    assert loss(t(1.0)).item() == 9.0
    assert rlgrad.gradient(loss, t(1.0)).item() == pytest.approx(-18.0)
    dl_dy = rlgrad.gradient(lambda y: (y - 6) ** 2, t(3.0))
    dy_dtheta = rlgrad.gradient(lambda theta: 3 * theta, t(1.0))
    assert (dl_dy * dy_dtheta).item() == pytest.approx(-18.0)


def test_e31_gradient_descent_is_ascent_on_the_negative():
    # θ ← θ − αL'(θ) on L = −J equals ascent on J.
    down = rlgrad.gradient_descent(lambda x: -parabola(x), t(0.2), lr=0.1, steps=3)
    up = rlgrad.gradient_ascent(parabola, t(0.2), lr=0.1, steps=3)
    torch.testing.assert_close(down, up)


# --- calculus practice page ------------------------------------------------------------------


def test_practice_softplus_derivative_is_sigmoid():
    # d/dx ln(1 + eˣ) = eˣ/(1 + eˣ) = σ(x), checked on a grid.
    for x in torch.linspace(-3, 3, 13, dtype=f64):
        slope = rlgrad.gradient(lambda u: torch.log1p(torch.exp(u)), x)
        assert slope.item() == pytest.approx(torch.sigmoid(x).item(), abs=1e-12)


def test_practice_chain_rule_square_root():
    # y = √(1 + x²): dy/dx = x/√(1 + x²) = 0.5/√1.25 = 0.4472 at x = 0.5.
    slope = rlgrad.gradient(lambda x: torch.sqrt(1 + x**2), t(0.5))
    assert slope.item() == pytest.approx(0.5 / math.sqrt(1.25), abs=1e-12)
    assert slope.item() == pytest.approx(0.4472, abs=1e-4)


def test_practice_chain_rule_sine():
    # y = sin(x²): dy/dx = cos(x²)·2x.
    for x in (0.3, 1.0, 1.7):
        slope = rlgrad.gradient(lambda u: torch.sin(u**2), t(x))
        assert slope.item() == pytest.approx(math.cos(x * x) * 2 * x, abs=1e-12)


def test_practice_partials_of_quadratic():
    # f = w₁² + w₁w₂ + w₂²: ∇f = [2w₁ + w₂, w₁ + 2w₂] = [4, 5] at (1, 2).
    grad = rlgrad.gradient(lambda w: w[0] ** 2 + w[0] * w[1] + w[1] ** 2, t([1.0, 2.0]))
    torch.testing.assert_close(grad, t([4.0, 5.0]))


def test_practice_autograd_square():
    # y = x², x = 2: dy/dx = 4, y = 4.
    assert rlgrad.gradient(lambda x: x**2, t(2.0)).item() == 4.0


def test_practice_product_rule():
    # f = x²eˣ: f' = eˣ(2x + x²) = 0 at x = 0, and e(2 + 1) = 3e at x = 1.
    def f(x):
        return x**2 * torch.exp(x)

    assert rlgrad.gradient(f, t(0.0)).item() == 0.0
    assert rlgrad.gradient(f, t(1.0)).item() == pytest.approx(3 * math.e)


def test_practice_power_rule():
    # f = x³ + 2x − 5: f'(2) = 3·4 + 2 = 14, by autograd and by central differences.
    def f(x):
        return x**3 + 2 * x - 5

    assert rlgrad.gradient(f, t(2.0)).item() == pytest.approx(14.0)
    assert rlgrad.numerical_gradient(f, t(2.0)).item() == pytest.approx(14.0, abs=1e-7)


def test_practice_chain_rule_cube():
    # f = (2x + 1)³: f' = 6(2x + 1)² = 6 at x = 0.
    assert rlgrad.gradient(lambda x: (2 * x + 1) ** 3, t(0.0)).item() == pytest.approx(6.0)


def test_practice_partials_of_cubic():
    # f = 3x²y + xy³: ∂f/∂x = 6xy + y³ = 12 + 8 = 20; ∂f/∂y = 3x² + 3xy² = 3 + 12 = 15 at (1, 2).
    # (The seed writes "3 + 6 = 9" for ∂f/∂y, dropping the square on y: 3·1·2² = 12.)
    grad = rlgrad.gradient(lambda p: 3 * p[0] ** 2 * p[1] + p[0] * p[1] ** 3, t([1.0, 2.0]))
    torch.testing.assert_close(grad, t([20.0, 15.0]))


def test_practice_quadratic_form_gradient():
    # ∇(wᵀAw) = 2Aw for symmetric A.
    a = t([[2.0, 1.0], [1.0, 3.0]])
    w = t([1.0, -1.0])
    torch.testing.assert_close(rlgrad.gradient(lambda x: x @ a @ x, w), 2 * a @ w)


def test_practice_semi_gradient_td_update():
    # w = [0.5, −0.5], φ(s) = [1, 0], φ(s') = [0, 1], r = 1, γ = 0.9:
    # δ = 1 + 0.9·(−0.5) − 0.5 = 0.05; w ← w + 0.1·0.05·[1, 0] = [0.505, −0.5].
    w = rlgrad.semi_gradient_td_update(
        t([0.5, -0.5]), t([1.0, 0.0]), t([0.0, 1.0]), t(1.0), torch.tensor(False), 0.9, 0.1
    )
    torch.testing.assert_close(w, t([0.505, -0.5]))


def test_practice_semi_gradient_is_gradient_of_half_squared_error_with_frozen_target():
    # ∂/∂w ½(y − w·φ)² with y frozen = −δφ, so w − α∂L/∂w = w + αδφ.
    w0, phi, phi_next = t([0.3, 0.7, -0.2]), t([1.0, 2.0, 0.5]), t([0.0, 1.0, 1.0])
    reward, gamma, lr = 0.4, 0.9, 0.05
    target = reward + gamma * (w0 @ phi_next)

    def loss(w):
        return 0.5 * (target - w @ phi) ** 2

    expected = w0 - lr * rlgrad.gradient(loss, w0)
    updated = rlgrad.semi_gradient_td_update(
        w0, phi, phi_next, t(reward), torch.tensor(False), gamma, lr
    )
    torch.testing.assert_close(updated, expected)


def test_practice_softmax_score_function():
    # log π(a=0) = θ₀ − log(e^θ₀ + e^θ₁): ∇ = [1 − π₀, −π₁] = [π₁, −π₁].
    logits = t([0.3, -0.2])
    pi = torch.softmax(logits, -1)
    grad = rlgrad.gradient(lambda th: torch.log_softmax(th, -1)[0], logits)
    torch.testing.assert_close(grad, torch.stack([pi[1], -pi[1]]))


def test_practice_ppo_flat_region():
    # A > 0, r = 1.3, ε = 0.2: clip(1.3) = 1.2, J = min(1.3A, 1.2A) = 1.2A and ∂J/∂r = 0.
    advantage = 2.5
    ratios = t([1.3]).requires_grad_(True)
    objective = rlgrad.ppo_objective(ratios, t([advantage]), clip_eps=0.2)
    assert objective.item() == pytest.approx(1.2 * advantage)
    objective.sum().backward()
    assert ratios.grad.item() == 0.0


def test_practice_entropy_slope():
    # H = −Σ π log π: ∂H/∂π(a) = −(log π(a) + 1); at π(a) = 0.2 that is −(−1.6094 + 1) = 0.6094.
    # (The seed prints "≈ 2.609", which is −log π(a) + 1; its own formula gives 0.6094.)
    probs = t([0.2, 0.5, 0.3])
    grad = rlgrad.gradient(lambda p: -(p * p.log()).sum(), probs)
    torch.testing.assert_close(grad, -(probs.log() + 1))
    assert grad[0].item() == pytest.approx(0.6094, abs=1e-4)


def test_practice_squared_td_loss_gradient_is_minus_delta():
    # d/dV ½δ² with δ = r + γV' − V (target frozen) is −δ.
    reward, gamma, next_value = 1.0, 0.9, 2.0

    def loss(v):
        return 0.5 * (reward + gamma * next_value - v) ** 2

    v = t(0.5)
    assert rlgrad.gradient(loss, v).item() == pytest.approx(-(reward + gamma * next_value - 0.5))


# --- E.3.4 derivations -----------------------------------------------------------------------


def test_e34_log_derivative_trick():
    # ∇π(a|s) = π(a|s)·∇log π(a|s) for every action of a softmax.
    logits = t([0.5, -1.0, 0.2])
    for action in range(3):
        prob_grad = rlgrad.gradient(lambda th, a=action: torch.softmax(th, -1)[a], logits)
        score = rlgrad.gradient(lambda th, a=action: torch.log_softmax(th, -1)[a], logits)
        torch.testing.assert_close(prob_grad, torch.softmax(logits, -1)[action] * score)


def test_e34_taylor_of_square():
    # x² at 3, h = 0.1: true 9.61; first order 9 + 6·0.1 = 9.6 (error 0.01); second order
    # adds ½·2·0.01 = 0.01 → 9.61 exactly.
    first = rlgrad.taylor(lambda x: x**2, t(3.0), t(0.1), order=1)
    second = rlgrad.taylor(lambda x: x**2, t(3.0), t(0.1), order=2)
    assert first.item() == pytest.approx(9.6, abs=1e-12)
    assert second.item() == pytest.approx(9.61, abs=1e-12)


def test_e34_taylor_multivariate_uses_hessian():
    # f(θ + Δ) ≈ f + ∇fᵀΔ + ½ΔᵀHΔ is exact for a quadratic; for the PPO ratio r(θ) = π/π_old
    # expanded around θ_old the second-order error shrinks like |Δ|³.
    a = t([[2.0, 1.0], [1.0, 3.0]])
    x, h = t([0.5, -1.0]), t([0.2, 0.3])

    def quad(v):
        return v @ a @ v + v.sum()

    assert rlgrad.taylor(quad, x, h).item() == pytest.approx(quad(x + h).item(), abs=1e-12)

    theta_old = t([0.4, -0.3, 0.1])
    old_prob = torch.softmax(theta_old, -1)[1]

    def ratio(theta):
        return torch.softmax(theta, -1)[1] / old_prob

    errors = []
    for scale in (1e-2, 5e-3):
        delta = scale * t([1.0, -2.0, 0.5])
        exact = ratio(theta_old + delta).item()
        assert rlgrad.taylor(ratio, theta_old, delta, order=1).item() != pytest.approx(exact)
        errors.append(abs(rlgrad.taylor(ratio, theta_old, delta, order=2).item() - exact))
    assert ratio(theta_old).item() == pytest.approx(1.0)
    assert errors[0] / errors[1] == pytest.approx(8.0, rel=0.15)  # halving Δ divides by 2³


def test_e34_grpo_four_answers():
    # r = [2, 4, 6, 8]: μ = 5, σ = √((9 + 1 + 1 + 9)/4) = √5, Â₄ = 3/√5 ≈ 1.34.
    rewards = t([[2.0, 4.0, 6.0, 8.0]])
    advantages = rlgrad.group_advantages(rewards)
    expected = (rewards - 5.0) / (math.sqrt(5.0) + 1e-8)
    torch.testing.assert_close(advantages, expected)
    assert advantages[0, 3].item() == pytest.approx(1.34, abs=5e-3)
    centered = rlgrad.group_advantages(rewards, scale=False)
    assert (rewards - centered).unique().item() == 5.0


# --- E.3.5 complete formulas -----------------------------------------------------------------


def test_e35_grpo_three_answers():
    # r = [2, 4, 10]: μ = 16/3 ≈ 5.33; the third answer is above μ (Â > 0), the first below.
    rewards = t([[2.0, 4.0, 10.0]])
    centered = rlgrad.group_advantages(rewards, scale=False)
    assert (rewards - centered)[0, 0].item() == pytest.approx(5.33, abs=5e-3)
    advantages = rlgrad.group_advantages(rewards)
    assert advantages[0, 2] > 0 > advantages[0, 0]


def test_e35_dqn_loss_gradient_is_td_error_times_grad_q():
    # L = ½(Q_θ(s, a) − y)² ⇒ ∇_θ L = (Q − y)∇_θ Q. With Q linear in θ (Q = θ·φ), ∇Q = φ.
    phi = t([[1.0, 0.5], [0.0, 2.0]])  # features of the two actions, [A, D]
    theta = t([0.3, -0.1]).requires_grad_(True)
    target = rlgrad.dqn_targets(t([1.0]), t([[0.5, 2.0]]), torch.tensor([False]), gamma=0.9)
    assert target.item() == pytest.approx(1.0 + 0.9 * 2.0)  # y = r + γ max Q⁻(s', ·)
    q_values = (phi @ theta).unsqueeze(0)
    loss = rlgrad.dqn_loss(q_values, torch.tensor([1]), target)
    loss.backward()
    q_taken = (phi[1] @ theta).item()
    torch.testing.assert_close(theta.grad, (q_taken - target.item()) * phi[1])


def test_e35_gae_is_discounted_sum_of_td_errors():
    # Â_t = Σ_l (γλ)^l δ_{t+l} written out for T = 3.
    rewards, values, next_values = t([1.0, 0.0, 2.0]), t([0.5, 0.4, 1.0]), t([0.4, 1.0, 0.0])
    gamma, lam = 0.9, 0.95
    no = torch.zeros(3, dtype=torch.bool)
    deltas = rewards + gamma * next_values - values
    gl = gamma * lam
    expected = t(
        [
            deltas[0] + gl * deltas[1] + gl**2 * deltas[2],
            deltas[1] + gl * deltas[2],
            deltas[2],
        ]
    )
    torch.testing.assert_close(
        rlgrad.gae(rewards, values, next_values, no, no, gamma, lam), expected
    )


def test_e35_td_error_sign():
    # δ > 0: better than the critic expected; δ < 0: worse.
    no = torch.tensor([False, False])
    deltas = rlgrad.td_errors(t([3.0, 0.0]), t([1.0, 1.0]), t([0.0, 0.0]), no, gamma=0.9)
    assert deltas[0] > 0 > deltas[1]


# --- E.3.6 exercises -------------------------------------------------------------------------


def test_e36_exercise1_ascent_step():
    # J = −(θ − 1)² + 2: J'(θ) = −2(θ − 1), J'(0) = 2, θ ← 0 + 0.1·2 = 0.2.
    def objective(theta):
        return -((theta - 1) ** 2) + 2

    assert rlgrad.gradient(objective, t(0.0)).item() == 2.0
    path = rlgrad.gradient_ascent(objective, t(0.0), lr=0.1, steps=1)
    assert path[1].item() == pytest.approx(0.2)


def test_e36_exercise2_ppo_terms():
    # r = 0.6/0.4 = 1.5; unclipped r·Â = 4.5; clip(1.5, 0.8, 1.2)·3 = 3.6 = min(4.5, 3.6).
    ratio = t([0.6 / 0.4])
    assert (ratio * 3.0).item() == pytest.approx(4.5)
    assert rlgrad.ppo_objective(ratio, t([3.0]), clip_eps=0.2).item() == pytest.approx(3.6)
    # The same through log-probabilities: the loss is the negative objective.
    loss = rlgrad.ppo_clip_loss(t([0.6]).log(), t([0.4]).log(), t([3.0]), clip_eps=0.2)
    assert loss.item() == pytest.approx(-3.6)


def test_e36_exercise3_td_error():
    # δ = 2 + 0.9·6 − 5 = 2.4.
    delta = rlgrad.td_errors(t([2.0]), t([5.0]), t([6.0]), torch.tensor([False]), gamma=0.9)
    assert delta.item() == pytest.approx(2.4)
