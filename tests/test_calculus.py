"""The calculus toolbox against itself: autograd vs central differences, Hessians, Taylor."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import rlgrad

f64 = torch.float64


def smooth(x):
    return (torch.sin(x) * x.roll(1)).sum() + (x**2).sum() * 0.3 + torch.log1p(x.exp()).sum()


@given(st.integers(0, 2**31 - 1), st.integers(1, 6))
def test_autograd_gradient_matches_central_differences(seed, size):
    x = torch.randn(size, generator=torch.Generator().manual_seed(seed), dtype=f64)
    torch.testing.assert_close(
        rlgrad.gradient(smooth, x), rlgrad.numerical_gradient(smooth, x), rtol=1e-7, atol=1e-8
    )


def test_numerical_gradient_runs_in_float64_for_float32_points():
    seen = []

    def f(x):
        seen.append(x.dtype)
        return (x**3).sum()

    grad = rlgrad.numerical_gradient(f, torch.tensor([1.0, 2.0]))
    assert grad.dtype == f64 and set(seen) == {f64}
    torch.testing.assert_close(grad, torch.tensor([3.0, 12.0], dtype=f64), rtol=0, atol=1e-8)


@pytest.mark.parametrize(
    ("name", "loss"),
    [
        (
            "policy_gradient_loss",
            lambda x: rlgrad.policy_gradient_loss(x, torch.arange(4.0, dtype=f64)),
        ),
        (
            "ppo_clip_loss",
            lambda x: rlgrad.ppo_clip_loss(
                x, torch.full((4,), 0.03, dtype=f64), torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=f64)
            ),
        ),
        ("value_loss", lambda x: rlgrad.value_loss(x, torch.ones(4, dtype=f64))),
        (
            "dqn_loss",
            lambda x: rlgrad.dqn_loss(
                x.reshape(2, 2), torch.tensor([0, 1]), torch.tensor([0.5, -0.5], dtype=f64)
            ),
        ),
        ("categorical_entropy", lambda x: rlgrad.categorical_entropy(x)),
        ("kl_k3", lambda x: rlgrad.kl_k3(x, torch.zeros(4, dtype=f64)).sum()),
    ],
)
def test_every_loss_gradient_matches_central_differences(name, loss):
    x = torch.tensor([0.1, -0.2, 0.05, 0.3], dtype=f64)
    torch.testing.assert_close(
        rlgrad.gradient(loss, x), rlgrad.numerical_gradient(loss, x), rtol=1e-6, atol=1e-8
    )


def test_gradient_of_a_constant_is_zero_and_input_is_untouched():
    x = torch.tensor([1.0, 2.0])
    assert bool((rlgrad.gradient(lambda t: torch.tensor(3.0), x) == 0).all())
    assert bool((rlgrad.gradient(lambda t: t.sum() * 0 + 1.0, x) == 0).all())
    assert not x.requires_grad


def test_gradient_works_inside_no_grad():
    with torch.no_grad():
        assert rlgrad.gradient(lambda t: (t**2).sum(), torch.tensor([3.0])).item() == 6.0


def test_hessian_of_a_quadratic_and_of_a_matrix_point():
    a = torch.tensor([[2.0, 1.0], [1.0, 3.0]], dtype=f64)
    torch.testing.assert_close(
        rlgrad.hessian(lambda w: w @ a @ w, torch.zeros(2, dtype=f64)), 2 * a
    )
    m = torch.ones(2, 3, dtype=f64)
    h = rlgrad.hessian(lambda x: (x**2).sum(), m)
    assert h.shape == (2, 3, 2, 3)
    torch.testing.assert_close(h.reshape(6, 6), 2 * torch.eye(6, dtype=f64))
    # 0-dim point: f''(x) of x³ at 2 is 12.
    assert rlgrad.hessian(lambda x: x**3, torch.tensor(2.0, dtype=f64)).item() == 12.0


def test_taylor_error_orders():
    # exp around 0: first-order error ≈ h²/2, second-order error ≈ h³/6.
    x = torch.zeros(1, dtype=f64)
    h = torch.full((1,), 1e-2, dtype=f64)
    exact = torch.exp(h).item()
    first = rlgrad.taylor(lambda t: t.exp().sum(), x, h, order=1).item()
    second = rlgrad.taylor(lambda t: t.exp().sum(), x, h, order=2).item()
    assert exact - first == pytest.approx(1e-4 / 2, rel=1e-2)
    assert exact - second == pytest.approx(1e-6 / 6, rel=1e-2)


def test_descent_finds_the_minimum_and_large_steps_diverge():
    def loss(x):
        return ((x - torch.tensor([1.0, -2.0], dtype=f64)) ** 2).sum()

    start = torch.zeros(2, dtype=f64)
    good = rlgrad.gradient_descent(loss, start, lr=0.1, steps=100)
    assert good.shape == (101, 2)
    torch.testing.assert_close(good[-1], torch.tensor([1.0, -2.0], dtype=f64))
    # With α > 1 the error is multiplied by |1 − 2α| > 1 each step.
    bad = rlgrad.gradient_descent(loss, start, lr=1.1, steps=20)
    assert loss(bad[-1]) > 1e3 * loss(start)
    assert rlgrad.gradient_descent(loss, start, lr=0.1, steps=0).shape == (1, 2)
