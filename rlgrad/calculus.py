"""The calculus toolbox of course page E.3.1: gradients, Hessians, Taylor expansions, updates.

These functions take a Python callable ``f`` mapping a tensor to a scalar tensor and evaluate
derivatives at a point, so the numbers of the course's worked examples can be recomputed exactly:
the derivative of J(θ) = −(θ − 0.8)² + 1, the chain rule on L = (3θ − 6)², the Taylor expansion
of x², and gradient ascent θ ← θ + α∇J(θ).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from rlgrad import _checks
from rlgrad.errors import BadInputError

ScalarFunction = Callable[[Tensor], Tensor]


def _scalar(fn: str, value: object) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{fn}(): 'f' must return a torch.Tensor; got {type(value).__name__}")
    if value.numel() != 1:
        raise BadInputError(
            f"{fn}(): 'f' must return a scalar tensor; got shape {tuple(value.shape)}"
        )
    return value.reshape(())


def _point(fn: str, name: str, x: object) -> Tensor:
    return _checks.finite(fn, name, _checks.tensor(fn, name, x))


def gradient(f: ScalarFunction, x: Tensor) -> Tensor:
    """∇f(x) by reverse-mode automatic differentiation.

    Args:
        f: maps a tensor shaped like ``x`` to a scalar tensor.
        x: the point, any shape ``[*S]``, floating dtype.

    Returns:
        ``[*S]``: ∂f/∂x_i at ``x``, detached (zeros where ``f`` does not depend on ``x``).

    Raises:
        TypeError: ``x`` is not a floating tensor or ``f`` returns no tensor.
        ValueError: ``x`` holds NaN/inf or ``f`` returns a non-scalar.

    Example (course page E.3.1: J(θ) = −(θ − 0.8)² + 1 has J'(0.2) = 1.2):
        >>> gradient(lambda t: -(t - 0.8) ** 2 + 1, torch.tensor(0.2, dtype=torch.float64))
        tensor(1.2000, dtype=torch.float64)
    """
    x = _point("gradient", "x", x)
    with torch.enable_grad():
        point = x.detach().clone().requires_grad_(True)
        value = _scalar("gradient", f(point))
        if not value.requires_grad:
            return torch.zeros_like(x)
        (grad,) = torch.autograd.grad(value, point, allow_unused=True)
    return torch.zeros_like(x) if grad is None else grad.detach()


def numerical_gradient(f: ScalarFunction, x: Tensor, eps: float = 1e-6) -> Tensor:
    """∇f(x) by central differences, ∂f/∂x_i ≈ (f(x + εe_i) − f(x − εe_i)) / 2ε.

    The point is promoted to float64 before ``f`` sees it, so the truncation error O(ε²) and the
    rounding error O(1e-16/ε) stay near 1e-10 at the default ε = 1e-6. This is the reference that
    autograd results are checked against.

    Args:
        f: maps a float64 tensor shaped like ``x`` to a scalar tensor.
        x: the point ``[*S]``.
        eps: the step ε > 0.

    Returns:
        ``[*S]`` float64.

    Example (course exercise: f(x) = x³ + 2x − 5 has f'(2) = 14):
        >>> g = numerical_gradient(lambda t: t**3 + 2 * t - 5, torch.tensor(2.0))
        >>> round(g.item(), 6)
        14.0
    """
    x = _point("numerical_gradient", "x", x)
    eps = _checks.positive("numerical_gradient", "eps", eps)
    point = x.detach().to(torch.float64).reshape(-1)
    grad = torch.empty_like(point)
    with torch.no_grad():
        for i in range(point.numel()):
            step = torch.zeros_like(point)
            step[i] = eps
            upper = _scalar("numerical_gradient", f((point + step).reshape(x.shape)))
            lower = _scalar("numerical_gradient", f((point - step).reshape(x.shape)))
            grad[i] = (upper.to(torch.float64) - lower.to(torch.float64)) / (2 * eps)
    return grad.reshape(x.shape)


def hessian(f: ScalarFunction, x: Tensor) -> Tensor:
    """The Hessian H_ij = ∂²f / ∂x_i ∂x_j by automatic differentiation.

    Args:
        f: maps a tensor shaped like ``x`` to a scalar tensor.
        x: the point ``[*S]``.

    Returns:
        ``[*S, *S]`` (a 0-dim tensor f''(x) when ``x`` is 0-dim).

    Example (f(w) = w₁² + w₁w₂ + w₂² has H = [[2, 1], [1, 2]]):
        >>> hessian(lambda w: w[0] ** 2 + w[0] * w[1] + w[1] ** 2, torch.tensor([1.0, 2.0]))
        tensor([[2., 1.],
                [1., 2.]])
    """
    x = _point("hessian", "x", x)

    def scalar_f(point: Tensor) -> Tensor:
        return _scalar("hessian", f(point))

    with torch.enable_grad():
        result = torch.autograd.functional.hessian(scalar_f, x.detach())
    return result.detach()


def taylor(f: ScalarFunction, x: Tensor, h: Tensor, order: int = 2) -> Tensor:
    """The Taylor approximation of f(x + h) around x.

    order 1:  f(x) + ∇f(x)ᵀh
    order 2:  f(x) + ∇f(x)ᵀh + ½ hᵀ H(x) h

    Args:
        f: maps a tensor shaped like ``x`` to a scalar tensor.
        x: the expansion point ``[*S]``.
        h: the step ``[*S]``.
        order: 1 or 2.

    Returns:
        A 0-dim tensor.

    Example (course page E.3.4: x² at x = 3, h = 0.1 gives 9.6 to first order, 9.61 to second):
        >>> x, h = torch.tensor(3.0, dtype=torch.float64), torch.tensor(0.1, dtype=torch.float64)
        >>> [round(taylor(lambda t: t**2, x, h, order=k).item(), 10) for k in (1, 2)]
        [9.6, 9.61]
    """
    x = _point("taylor", "x", x)
    h = _checks.floats("taylor", "h", h, "x", x)
    if order not in (1, 2):
        raise BadInputError(f"taylor(): 'order' must be 1 or 2; got {order!r}")
    with torch.no_grad():
        value = _scalar("taylor", f(x.detach()))
    step = h.reshape(-1)
    approximation = value + gradient(f, x).reshape(-1) @ step
    if order == 2:
        curvature = hessian(f, x).reshape(step.numel(), step.numel())
        approximation = approximation + 0.5 * step @ curvature @ step
    return approximation.detach()


def _follow_gradient(
    fn: str, f: ScalarFunction, x0: Tensor, lr: float, steps: int, sign: float
) -> Tensor:
    x0 = _point(fn, "x0", x0)
    lr = _checks.positive(fn, "lr", lr)
    steps = _checks.count(fn, "steps", steps)
    trajectory = torch.empty((steps + 1, *x0.shape), dtype=x0.dtype, device=x0.device)
    trajectory[0] = x0.detach()
    for k in range(steps):
        trajectory[k + 1] = trajectory[k] + sign * lr * gradient(f, trajectory[k])
    return trajectory


def gradient_ascent(f: ScalarFunction, x0: Tensor, lr: float, steps: int) -> Tensor:
    """The trajectory of gradient ascent, x_{k+1} = x_k + α ∇f(x_k).

    Maximizes an objective such as the expected return J(θ).

    Args:
        f: the objective, tensor → scalar tensor.
        x0: the starting point ``[*S]``.
        lr: the learning rate α > 0.
        steps: the number of updates K ≥ 0.

    Returns:
        ``[K + 1, *S]``, starting with ``x0``.

    Example (course page E.3.1: J(θ) = −(θ − 0.8)² + 1 from 0.2 at α = 0.1 gives 0.32, then 0.416):
        >>> theta0 = torch.tensor(0.2, dtype=torch.float64)
        >>> gradient_ascent(lambda t: -(t - 0.8) ** 2 + 1, theta0, lr=0.1, steps=2)
        tensor([0.2000, 0.3200, 0.4160], dtype=torch.float64)
    """
    return _follow_gradient("gradient_ascent", f, x0, lr, steps, +1.0)


def gradient_descent(f: ScalarFunction, x0: Tensor, lr: float, steps: int) -> Tensor:
    """The trajectory of gradient descent, x_{k+1} = x_k − α ∇f(x_k).

    Minimizes a loss such as a value error L(θ).

    Args:
        f: the loss, tensor → scalar tensor.
        x0: the starting point ``[*S]``.
        lr: the learning rate α > 0.
        steps: the number of updates K ≥ 0.

    Returns:
        ``[K + 1, *S]``, starting with ``x0``.

    Example (L(θ) = (3θ − 6)² from θ = 1 at α = 0.01: dL/dθ = −18, so θ₁ = 1.18):
        >>> gradient_descent(lambda t: (3 * t - 6) ** 2, torch.tensor(1.0), lr=0.01, steps=1)
        tensor([1.0000, 1.1800])
    """
    return _follow_gradient("gradient_descent", f, x0, lr, steps, -1.0)
