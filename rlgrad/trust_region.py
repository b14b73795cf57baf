"""Second-order pieces of a trust-region update (TRPO): curvature times a vector, no matrix.

Course page E.3.4 explains why a step must stay small: past a certain size the first-order
Taylor term stops describing the objective and the curvature term ½ ΔθᵀHΔθ takes over. TRPO
(Schulman et al. 2015) turns that into a rule: maximize the linear surrogate gᵀΔθ subject to
the quadratic model of the KL, ½ ΔθᵀFΔθ ≤ δ, whose solution is Δθ = √(2δ / sᵀFs)·s with
s = F⁻¹g. The pieces:

| Symbol   | Meaning                                   | Function                       |
|----------|-------------------------------------------|--------------------------------|
| Hv       | Hessian of f times v, by double backward  | :func:`hessian_vector_product` |
| Fv + λv  | Fisher (Hessian of the KL) times v        | :func:`fisher_vector_product`  |
| v ↦ Fv + λv | the same, ∇KL built once for many v    | :func:`fisher_operator`        |
| s        | (A + λI)⁻¹b from matrix-vector products   | :func:`conjugate_gradient`     |
| β·s      | the step to the edge of the KL ellipsoid  | :func:`trust_region_step`      |
| β·s·ρᵏ   | the first step that improves within δ     | :func:`backtracking_line_search` |
| r(θ + Δ) | the ratio's Taylor models, orders 1 and 2 | :func:`ratio_taylor`           |

Parameters and vectors: ``params`` is one tensor or a sequence of tensors (e.g.
``list(model.parameters())``), each requiring grad (not for :func:`ratio_taylor`, which
differentiates forward); every vector that goes with them is *flat*,
``[N]`` with N = Σ p.numel(), laid out parameter by parameter in row-major order — the layout of
``torch.nn.utils.parameters_to_vector``. The KL formulas themselves live in
:mod:`rlgrad.distributions` (:func:`~rlgrad.distributions.categorical_kl`,
:func:`~rlgrad.distributions.gaussian_kl`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from rlgrad import _checks, _masks
from rlgrad.errors import BadInputError

Params = Tensor | Sequence[Tensor]


def _parameter_list(fn: str, params: object, needs_grad: bool = True) -> list[Tensor]:
    """``params`` as a non-empty list of floating tensors of one dtype/device that require grad
    (unless ``needs_grad`` is False: forward-mode derivatives need no graph)."""
    if isinstance(params, Tensor):
        found = [params]
    elif isinstance(params, (str, bytes)) or not hasattr(params, "__iter__"):
        raise TypeError(
            f"{fn}(): 'params' must be a tensor or a sequence of tensors; "
            f"got {type(params).__name__}"
        )
    else:
        found = list(params)
    if not found:
        raise BadInputError(f"{fn}(): 'params' must hold at least one tensor; got none")
    for i, p in enumerate(found):
        name = "params" if isinstance(params, Tensor) else f"params[{i}]"
        _checks.tensor(fn, name, p)
        if needs_grad and not p.requires_grad:
            raise BadInputError(
                f"{fn}(): '{name}' must require grad (the tensor the function reads, e.g. a "
                f"model parameter or x.requires_grad_()); got requires_grad=False"
            )
        _checks.same_kind(fn, name, p, "params[0]", found[0])
    return found


def _flat_vector(fn: str, name: str, vector: object, params: list[Tensor]) -> Tensor:
    """A finite ``[N]`` tensor, N = Σ p.numel(), of the parameters' dtype and device."""
    vector = _checks.tensor(fn, name, vector)
    size = sum(p.numel() for p in params)
    if vector.shape != (size,):
        raise BadInputError(
            f"{fn}(): '{name}' must be flat, shape [N] = ({size},) with N the total number of "
            f"parameter entries; got {tuple(vector.shape)}"
        )
    _checks.same_kind(fn, name, vector, "params", params[0])
    return _checks.finite(fn, name, vector)


def _flat(grads: Sequence[Tensor | None], params: list[Tensor]) -> Tensor:
    """Concatenate per-parameter gradients into ``[N]``, zeros for a parameter ``f`` never read."""
    return torch.cat(
        [
            torch.zeros(p.numel(), dtype=p.dtype, device=p.device) if g is None else g.reshape(-1)
            for g, p in zip(grads, params, strict=True)
        ]
    )


def _curvature_operator(
    fn: str, f_name: str, f: Callable[[], Tensor], params: object, fisher: bool = False
) -> Callable[[Tensor], Tensor]:
    """v ↦ H·v = ∇_θ (∇_θ f · v), with f called and ∇f built (with its graph) once: each product
    is then one backward pass through that graph. The shared body of the HVP, the
    Fisher-vector product and :func:`fisher_operator` (``fisher``: refuse an H that is 0)."""
    params = _parameter_list(fn, params)
    with torch.enable_grad():
        value = f()
        if not isinstance(value, Tensor):
            raise TypeError(
                f"{fn}(): '{f_name}' must return a torch.Tensor; got {type(value).__name__}"
            )
        if value.numel() != 1:
            raise BadInputError(
                f"{fn}(): '{f_name}' must return a scalar tensor; got shape {tuple(value.shape)}"
            )
        if not value.requires_grad:
            # No graph at all: a detached output and a constant look the same from here, and
            # neither has a Hessian autograd can take; the zeros returned before hid the bug.
            raise BadInputError(
                f"{fn}(): '{f_name}' must return a tensor with an autograd graph to 'params'; "
                f"got one with requires_grad=False (detached, computed under torch.no_grad(), "
                f"or reading no tensor that requires grad)"
            )
        grads = torch.autograd.grad(value.reshape(()), params, create_graph=True, allow_unused=True)
    # A gradient that is None (f's graph does not reach that parameter) or constant (f is linear
    # in it) adds nothing to H·v.
    pairs = [(i, g) for i, g in enumerate(grads) if g is not None and g.requires_grad]
    sizes = [p.numel() for p in params]
    nonzero = not fisher  # H is known not to be 0 everywhere (checked only for a Fisher)

    def times_hessian(vector: Tensor) -> Tensor:
        if not pairs:  # f is linear in params (or does not read them): ∇f is constant, H = 0
            return torch.zeros_like(vector)
        # ∇_θ(∇f · v) as one vector-Jacobian product of the gradients with v's pieces: cheaper
        # than building the dot product in the graph; the graph is kept for the next vector
        pieces = vector.split(sizes)
        with torch.enable_grad():
            products = torch.autograd.grad(
                [g for _, g in pairs],
                params,
                grad_outputs=[pieces[i].view_as(g) for i, g in pairs],
                retain_graph=True,
                allow_unused=True,
            )
        return _flat(products, params).detach()

    def product(vector: Tensor) -> Tensor:
        nonlocal nonzero
        vector = _flat_vector(fn, "vector", vector, params)
        result = times_hessian(vector)
        # One check per operator, on its first nonzero product: CG's later products (and every
        # Hessian-vector product) cost no host sync for it.
        if nonzero:
            return result
        if bool(result.any()):
            nonzero = True
            return result
        if not bool(vector.any()):
            return result  # H·0 = 0 says nothing about H
        # F·v = 0 exactly for a nonzero v: v may lie in F's null space (a parameter the policy
        # does not read, softmax's shift), or H is 0 everywhere. A fixed pseudo-random probe,
        # with a component on every parameter, tells the two apart (the global RNG is left be).
        probe = torch.randn(
            vector.numel(), generator=torch.Generator().manual_seed(0), dtype=torch.float64
        ).to(vector)
        if not bool(times_hessian(probe).any()):
            raise BadInputError(
                f"{fn}(): '{f_name}' has a zero Hessian along v and along a random probe, so it "
                f"is not the Fisher matrix: detach the old distribution (KL(π_θ ‖ π_θ) with both "
                f"sides differentiable is 0 for every θ, and so is its Hessian; only with π_old "
                f"held constant is ∇²KL at θ_old the Fisher matrix), and check that the policy "
                f"reads 'params'"
            )
        nonzero = True
        return result

    return product


def _curvature_product(
    fn: str,
    f_name: str,
    f: Callable[[], Tensor],
    params: object,
    vector: object,
    fisher: bool = False,
) -> Tensor:
    """H·v for one vector (the operator above, used once)."""
    checked = _parameter_list(fn, params)
    _flat_vector(fn, "vector", vector, checked)  # a bad vector is reported before f runs
    return _curvature_operator(fn, f_name, f, checked, fisher)(vector)


def hessian_vector_product(f: Callable[[], Tensor], params: Params, vector: Tensor) -> Tensor:
    """The Hessian of f times a vector by double backward, never forming the Hessian:

        H·v = ∇_θ (∇_θ f(θ) · v)

    One backward pass with a graph gives ∇f; its dot product with the fixed v is a scalar whose
    gradient is Hv (H is symmetric). The cost is about two gradients, whatever the size of H.

    Args:
        f: a closure, called with no arguments, returning a scalar tensor computed from
            ``params`` (e.g. ``lambda: loss(model(x))``). It is called once.
        params: θ, a tensor or a sequence of tensors (``model.parameters()``), floating, one
            dtype and device, each with ``requires_grad=True``.
        vector: ``[N]`` v, flat in the layout of ``params`` (module docstring).

    Returns:
        ``[N]`` Hv, detached; zeros where f is linear in (or does not read) a parameter.

    What can be told apart: an output with no autograd graph (``requires_grad=False``: f
    detached its result, ran under ``torch.no_grad()``, or read nothing that requires grad) is
    refused, as autograd cannot take its Hessian and zeros would hide the bug; a detached output
    and a constant f look the same and are both refused. An output whose graph exists but does
    not reach a parameter (f reads another tensor that requires grad) gives zeros for that
    parameter, and for all of them when it reaches none: that is exactly a function that does
    not depend on them, and cannot be told from one (passing another network's parameters lands
    here too).

    Raises:
        TypeError: a non-tensor or non-floating parameter or vector, or f returning no tensor.
        ValueError: a parameter that does not require grad, a vector that is not ``[N]`` or holds
            NaN/inf, f returning a non-scalar, or f returning a tensor with no autograd graph.

    Example (f(x) = x₀²x₁ has H = [[2x₁, 2x₀], [2x₀, 0]] = [[4, 2], [2, 0]] at (1, 2), so
    v = (1, 0) gives Hv = (4, 2)):
        >>> x = torch.tensor([1.0, 2.0], requires_grad=True)
        >>> hessian_vector_product(lambda: x[0] ** 2 * x[1], x, torch.tensor([1.0, 0.0]))
        tensor([4., 2.])
    """
    return _curvature_product("hessian_vector_product", "f", f, params, vector)


def fisher_vector_product(
    kl_fn: Callable[[], Tensor], params: Params, vector: Tensor, damping: float = 0.0
) -> Tensor:
    """The Fisher information matrix times a vector, as the Hessian of the KL, plus damping:

        F·v + λv = ∇²_θ KL̄(π_old ‖ π_θ)|_{θ = θ_old} · v + λv

    At θ = θ_old the mean KL is 0, its gradient is 0, and its Hessian is the Fisher matrix
    F = E_s E_{a~π_old} [∇log π ∇log πᵀ] (Kakade 2001; Schulman et al. 2015, appendix C), so the
    double backward of :func:`hessian_vector_product` gives Fv without forming F. The damping
    λ ≥ 0 adds λv, i.e. multiplies by F + λI, which keeps conjugate gradient well posed where F
    is singular or badly conditioned.

    Two things are the caller's: ``kl_fn`` must hold the old distribution fixed (detached), and
    ``params`` must still equal θ_old when this is called; elsewhere the Hessian of the KL is not
    the Fisher matrix. The first is checked where it can be: with the old side differentiable,
    KL(π_θ ‖ π_θ) is 0 for every θ and autograd gives a Hessian of exactly 0, so a product that is
    exactly 0 for a nonzero v is checked once more along a fixed pseudo-random probe, and refused
    when that is 0 too (a legitimate v in F's null space, softmax's shift say, passes: the probe
    is not in it). An old side recomputed by a second, nondeterministic forward pass can leave
    rounding noise instead of exact zeros and escape this check.

    Args:
        kl_fn: a closure returning the mean KL(π_old ‖ π_θ) over a batch of states, a scalar,
            e.g. ``lambda: categorical_kl(old_logits, model(states)).mean()`` with
            ``old_logits`` detached.
        params: θ, as in :func:`hessian_vector_product`.
        vector: ``[N]`` v, flat in the layout of ``params``.
        damping: λ ≥ 0.

    Returns:
        ``[N]`` (F + λI)v, detached.

    Raises:
        The errors of :func:`hessian_vector_product`; ValueError for a negative ``damping``, or
        for a KL whose Hessian is 0 along v and along the probe (old side not detached, or a
        policy that does not read ``params``).

    Example (one state, π = softmax(θ) with θ = (0, 0): F = diag(π) − ππᵀ = [[¼, −¼], [−¼, ¼]],
    so v = (1, 0) gives (¼, −¼), and λ = 0.1 adds (0.1, 0)):
        >>> from rlgrad.distributions import categorical_kl
        >>> theta = torch.zeros(2, requires_grad=True)
        >>> kl = lambda: categorical_kl(theta.detach(), theta)
        >>> fisher_vector_product(kl, theta, torch.tensor([1.0, 0.0]), damping=0.1)
        tensor([ 0.3500, -0.2500])
    """
    fn = "fisher_vector_product"
    damping = _checks.non_negative(fn, "damping", damping)
    product = _curvature_product(fn, "kl_fn", kl_fn, params, vector, fisher=True)
    return product + damping * vector if damping > 0.0 else product


def fisher_operator(
    kl_fn: Callable[[], Tensor], params: Params, damping: float = 0.0
) -> Callable[[Tensor], Tensor]:
    """The map v ↦ (F + λI)v of :func:`fisher_vector_product`, for many vectors at one θ_old:

        F·v + λv = ∇_θ (∇_θ KL̄ · v) + λv,   ∇_θ KL̄ built once

    Conjugate gradient multiplies by F about ten times at the same θ_old. This calls ``kl_fn``
    and builds the KL's gradient with its graph once; each product is then one backward pass
    through that graph, where :func:`fisher_vector_product` does a forward pass and two
    backward passes every time. The products are the same numbers (tested). The graph lives as
    long as the returned function, and ``params`` must not change while it is used.

    Args:
        kl_fn, params, damping: as in :func:`fisher_vector_product`.

    Returns:
        A function of a flat ``[N]`` vector v returning ``[N]`` (F + λI)v, detached.

    Raises:
        The errors of :func:`fisher_vector_product`; a bad vector, or a Hessian found to be 0
        (the check above, on the first product that comes out 0), when the function is called.

    Example (the one-state softmax of :func:`fisher_vector_product`):
        >>> from rlgrad.distributions import categorical_kl
        >>> theta = torch.zeros(2, requires_grad=True)
        >>> times_fisher = fisher_operator(lambda: categorical_kl(theta.detach(), theta), theta)
        >>> times_fisher(torch.tensor([1.0, 0.0])), times_fisher(torch.tensor([0.0, 2.0]))
        (tensor([ 0.2500, -0.2500]), tensor([-0.5000,  0.5000]))
    """
    fn = "fisher_operator"
    damping = _checks.non_negative(fn, "damping", damping)
    times_hessian = _curvature_operator(fn, "kl_fn", kl_fn, params, fisher=True)
    if damping == 0.0:
        return times_hessian
    return lambda vector: times_hessian(vector) + damping * vector


class CGResult(NamedTuple):
    """What :func:`conjugate_gradient` gives: the solution and how the residual fell."""

    solution: Tensor  # [n] x with (A + λI)x ≈ b
    residual_norms: Tensor  # [k + 1] ‖r_0‖ = ‖b‖, then ‖r_j‖ after each of the k iterations


def conjugate_gradient(
    matvec: Callable[[Tensor], Tensor],
    b: Tensor,
    iterations: int = 10,
    damping: float = 0.0,
    tolerance: float = 1e-10,
) -> CGResult:
    """Solve (A + λI)x = b for symmetric positive-definite A, given only v ↦ Av (Hestenes and
    Stiefel 1952), starting from x₀ = 0:

        r₀ = p₀ = b
        α_j = r_jᵀr_j / p_jᵀ(A + λI)p_j
        x_{j+1} = x_j + α_j p_j,   r_{j+1} = r_j − α_j (A + λI)p_j
        p_{j+1} = r_{j+1} + (r_{j+1}ᵀr_{j+1} / r_jᵀr_j) p_j

    In exact arithmetic it solves an n×n system in n iterations; TRPO runs ~10, enough for a
    good direction F⁻¹g. It stops early once ‖r_j‖ ≤ ``tolerance`` (an absolute bound on the
    residual norm, not on its square). The residuals are the recursive r_j above, which equal
    b − (A + λI)x_j up to rounding.

    Rows: ``b`` of shape ``[S, n]`` is S independent systems (A_s + λI)x_s = b_s, one per row,
    e.g. the policy steps of S seeds trained as one batched computation, whose Fisher matrix is
    block-diagonal. ``matvec`` then maps ``[S, n]`` to ``[S, n]``, row s by A_s; every α and
    ratio above is per row, and a row stops (its x and r stay as they are) once its own residual
    is within ``tolerance``, so each row's result is the one a call on that row alone gives.

    Args:
        matvec: v ↦ Av for a vector shaped like ``b``, returning that shape (e.g. a
            Fisher-vector product).
        b: ``[n]`` the right-hand side, or ``[S, n]`` one per row; finite.
        iterations: the most iterations, ≥ 1.
        damping: λ ≥ 0, added as λv to every product.
        tolerance: stop when ‖r_j‖ ≤ this, ≥ 0.

    Returns:
        :class:`CGResult` ``(solution, residual_norms)``: the solution shaped like ``b``, the
        residual norms ``[k + 1]`` (``[k + 1, S]`` for rows) with k ≤ ``iterations`` the
        iterations run (for rows: by the slowest row).

    Raises:
        TypeError: ``b`` not a floating tensor, ``matvec`` returning no tensor or another dtype.
        ValueError: ``b`` not ``[n]`` or ``[S, n]`` or not finite, ``iterations`` < 1, negative
        ``damping`` or ``tolerance``, ``matvec`` returning another shape or NaN/inf, or
        pᵀ(A + λI)p ≤ 0 in a row still iterating (the matrix is not positive definite along a
        search direction).

    Example (A = [[4, 1], [1, 3]], b = (1, 2): x = (1/11, 7/11) = (0.0909, 0.6364) in 2 steps):
        >>> A = torch.tensor([[4.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
        >>> result = conjugate_gradient(lambda v: A @ v, torch.tensor([1.0, 2.0], dtype=A.dtype))
        >>> result.solution, len(result.residual_norms)
        (tensor([0.0909, 0.6364], dtype=torch.float64), 3)

    Two rows, the same A for the first and 2I for the second (x = b/2 after one step):
        >>> rows = torch.tensor([[1.0, 2.0], [4.0, -2.0]], dtype=A.dtype)
        >>> block = lambda v: torch.stack([A @ v[0], 2 * v[1]])
        >>> conjugate_gradient(block, rows).solution
        tensor([[ 0.0909,  0.6364],
                [ 2.0000, -1.0000]], dtype=torch.float64)
    """
    fn = "conjugate_gradient"
    b = _checks.floats(fn, "b", b)
    if b.dim() not in (1, 2):
        raise BadInputError(
            f"{fn}(): 'b' must be a flat vector [n] or rows [S, n]; got shape {tuple(b.shape)}"
        )
    iterations = _checks.count(fn, "iterations", iterations)
    if iterations < 1:
        raise BadInputError(f"{fn}(): 'iterations' must be >= 1; got {iterations}")
    damping = _checks.non_negative(fn, "damping", damping)
    tolerance = _checks.non_negative(fn, "tolerance", tolerance)

    def damped(v: Tensor) -> Tensor:
        product = matvec(v)
        if not isinstance(product, Tensor):
            raise TypeError(
                f"{fn}(): 'matvec' must return a torch.Tensor; got {type(product).__name__}"
            )
        if product.shape != b.shape:
            raise BadInputError(
                f"{fn}(): 'matvec' must return the shape of 'b' {tuple(b.shape)}; "
                f"got {tuple(product.shape)}"
            )
        _checks.same_kind(fn, "matvec(v)", product, "b", b)
        _checks.finite(fn, "matvec(v)", product)
        return product + damping * v if damping > 0.0 else product

    if b.dim() == 2:
        return _conjugate_gradient_rows(fn, damped, b, iterations, tolerance)
    solution = torch.zeros_like(b)
    residual = b.detach().clone()
    direction = residual.clone()
    squared = residual @ residual  # rᵀr
    norms = [squared.sqrt()]
    for _ in range(iterations):
        if float(norms[-1]) <= tolerance:
            break
        product = damped(direction)
        curvature = direction @ product  # pᵀ(A + λI)p
        if float(curvature) <= 0.0:
            raise BadInputError(
                f"{fn}(): the matrix must be positive definite, but pᵀ(A + λI)p = "
                f"{float(curvature):.6g} along a search direction (add damping?)"
            )
        step = squared / curvature
        solution = solution + step * direction
        residual = residual - step * product
        new_squared = residual @ residual
        norms.append(new_squared.sqrt())
        direction = residual + (new_squared / squared) * direction
        squared = new_squared
    return CGResult(solution, torch.stack(norms))


def _conjugate_gradient_rows(
    fn: str, damped: Callable[[Tensor], Tensor], b: Tensor, iterations: int, tolerance: float
) -> CGResult:
    """:func:`conjugate_gradient` on the rows of ``b [S, n]`` at once: the same recursion with
    a dot product, α and ratio per row; a row whose residual is within ``tolerance`` is frozen
    (its α and ratio set to 0), as its own call would have stopped there. Two host syncs per
    iteration, as for one vector: is any row still iterating, is any curvature not positive."""
    solution = torch.zeros_like(b)
    residual = b.detach().clone()
    direction = residual.clone()
    squared = (residual * residual).sum(dim=1)  # rᵀr per row, [S]
    norms = [squared.sqrt()]
    for _ in range(iterations):
        iterating = norms[-1] > tolerance  # [S]
        if not bool(iterating.any()):
            break
        product = damped(direction)
        curvature = (direction * product).sum(dim=1)  # pᵀ(A + λI)p per row
        bent = iterating & ~(curvature > 0.0)
        if bool(bent.any()):
            row = int(bent.nonzero()[0])
            raise BadInputError(
                f"{fn}(): the matrix must be positive definite, but in row {row} pᵀ(A + λI)p "
                f"= {float(curvature[row]):.6g} along a search direction (add damping?)"
            )
        # a frozen row's 0/0 is computed and discarded by torch.where
        step = torch.where(iterating, squared / curvature, 0.0).unsqueeze(1)
        solution = solution + step * direction
        residual = residual - step * product
        new_squared = (residual * residual).sum(dim=1)
        norms.append(new_squared.sqrt())
        ratio = torch.where(iterating, new_squared / squared, 0.0).unsqueeze(1)
        direction = torch.where(iterating.unsqueeze(1), residual + ratio * direction, direction)
        squared = new_squared
    return CGResult(solution, torch.stack(norms))


def trust_region_step(direction: Tensor, direction_hvp: Tensor, max_kl: float) -> Tensor:
    """Scale a search direction to the edge of the quadratic KL trust region (TRPO, appendix C):

        Δθ = √(2δ / sᵀHs) · s

    With the KL modelled as ½ ΔθᵀHΔθ (H the Fisher matrix), this Δθ has ½ ΔθᵀHΔθ = δ exactly:
    the largest step along s that the model allows. s is usually the conjugate-gradient solution
    of Hs = g, and Hs its Fisher-vector product (one more product, or CG's own bookkeeping).

    Rows: ``[S, N]`` directions are S independent steps (S seeds trained at once), each scaled
    by its own √(2δ / s_sᵀH_s s_s) and checked by the rule below on its own.

    Args:
        direction: ``[N]`` s, flat, or ``[S, N]`` one per row.
        direction_hvp: Hs, shaped like ``direction``.
        max_kl: δ > 0, the KL radius.

    Returns:
        Δθ shaped like ``direction``, differentiable in the inputs (detach them to stop
        gradients).

    The curvature must be clearly positive, not just > 0. With ε the machine epsilon of the
    dtype (``torch.finfo``; 1.2e-7 for float32, 2.2e-16 for float64), the step is refused unless

        sᵀHs > ε · ‖s‖ · max(‖s‖, ‖Hs‖)

    The ‖Hs‖ part: the rounding error of a curvature computed from Hs is about ε‖s‖‖Hs‖, so a
    smaller sᵀHs (s nearly orthogonal to Hs) is noise whose size, even whose sign, is unknown.
    The ‖s‖ part: the curvature per unit step along s, sᵀHs/‖s‖², must exceed ε, else the step
    ‖Δθ‖ = √(2δ / (sᵀHs/‖s‖²)) exceeds √(2δ/ε) (≈ 400 parameter units in float32, 1.4e7 in
    float64, at δ = 0.01): no trust region for parameters of ordinary size, and a curvature at
    the level of the products' own rounding. It assumes parameters of order one, and is never
    reached by a damped Fisher product, whose curvature per unit step is at least the damping λ
    (0.1 in the TRPO trainer). A step that still overflows (a huge δ) is refused as non-finite.

    Raises:
        TypeError: a non-floating tensor, or mismatched dtypes.
        ValueError: shapes that are not one ``[N]`` or ``[S, N]``, NaN/inf, δ ≤ 0, sᵀHs not
        clearly positive (the rule above, in any row; no finite step along s), or a non-finite
        step.

    Example (s = (1, 0), Hs = (2, 0): sᵀHs = 2, δ = 0.01, so the scale is √(0.02 / 2) = 0.1):
        >>> trust_region_step(torch.tensor([1.0, 0.0]), torch.tensor([2.0, 0.0]), max_kl=0.01)
        tensor([0.1000, 0.0000])
    """
    fn = "trust_region_step"
    direction = _checks.floats(fn, "direction", direction)
    if direction.dim() not in (1, 2):
        raise BadInputError(
            f"{fn}(): 'direction' must be a flat vector [N] or rows [S, N]; got shape "
            f"{tuple(direction.shape)}"
        )
    direction_hvp = _checks.floats(fn, "direction_hvp", direction_hvp, "direction", direction)
    max_kl = _checks.positive(fn, "max_kl", max_kl)
    rows = direction if direction.dim() == 2 else direction.unsqueeze(0)
    hvp_rows = direction_hvp if direction.dim() == 2 else direction_hvp.unsqueeze(0)
    curvature = (rows * hvp_rows).sum(dim=1)  # sᵀHs per row
    # in float64: ‖s‖² and ‖s‖‖Hs‖ must not underflow or overflow before comparing
    length = torch.linalg.vector_norm(rows.detach(), dim=1, dtype=torch.float64)
    hvp_length = torch.linalg.vector_norm(hvp_rows.detach(), dim=1, dtype=torch.float64)
    floor = torch.finfo(direction.dtype).eps * length * torch.maximum(length, hvp_length)
    flat = ~(curvature.detach().double() > floor)
    if bool(flat.any()):
        row = int(flat.nonzero()[0])
        where = f" in row {row}" if direction.dim() == 2 else ""
        raise BadInputError(
            f"{fn}(): 'direction' and 'direction_hvp' must have a clearly positive curvature, "
            f"sᵀHs > ε·‖s‖·max(‖s‖, ‖Hs‖) = {float(floor[row]):.6g} (ε = machine epsilon of "
            f"{direction.dtype}); got sᵀHs = {float(curvature[row]):.6g}{where}"
        )
    step = torch.sqrt(2.0 * max_kl / curvature).unsqueeze(1) * rows
    if not _checks.all_finite(step):
        row = int((~torch.isfinite(step)).any(dim=1).nonzero()[0])
        raise BadInputError(
            f"{fn}(): the step √(2δ / sᵀHs)·s overflows {direction.dtype}, with max_kl = "
            f"{max_kl:.6g}, sᵀHs = {float(curvature[row]):.6g} and ‖s‖ = "
            f"{float(length[row]):.6g}"
        )
    return step if direction.dim() == 2 else step.squeeze(0)


class LineSearchResult(NamedTuple):
    """What :func:`backtracking_line_search` gives; a rejected search has a zero step, so
    ``params + step`` leaves the parameters unchanged. For rows (``[S, N]`` steps) every field
    is per row: ``[S]`` tensors (bool, int64, float64) and ``step [S, N]``."""

    accepted: bool | Tensor  # some candidate improved the surrogate within the KL radius
    step: Tensor  # the accepted candidate step·ρᵏ, or zeros
    backtracks: int | Tensor  # k of the accepted candidate; max_backtracks when none was accepted
    kl: float | Tensor  # KL of the returned step (0 for the zero step)
    improvement: float | Tensor  # surrogate improvement of the returned step (0 for the zero step)


def _outcome(fn: str, result: object) -> tuple[float, float]:
    """``evaluate``'s (improvement, kl) as floats; NaN/inf are kept, and reject the candidate."""
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise TypeError(
            f"{fn}(): 'evaluate' must return a pair (improvement, kl); got {result!r:.80}"
        )
    numbers = []
    for name, value in zip(("improvement", "kl"), result, strict=True):
        if isinstance(value, Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(
                f"{fn}(): 'evaluate' must return numbers or one-element tensors; its {name} is "
                f"{type(value).__name__}"
            )
        numbers.append(float(value))
    return numbers[0], numbers[1]


def backtracking_line_search(
    step: Tensor,
    evaluate: Callable[[Tensor], tuple[float | Tensor, float | Tensor]],
    max_kl: float,
    backtrack_ratio: float = 0.5,
    max_backtracks: int = 10,
) -> LineSearchResult:
    """Shrink a proposed step until it improves the surrogate and stays inside the KL radius:

        accept the first k = 0, 1, …, K with  L(step·ρᵏ) > 0  and  KL(step·ρᵏ) ≤ δ

    where L is the improvement of the surrogate objective over the current parameters and the
    KL is the true one (not its quadratic model). The KL test is the paper's constraint, KL ≤ δ,
    as in Spinning Up's TRPO; the improvement test is a strict gain, as in Stable-Baselines3
    contrib's TRPO (Spinning Up also accepts a tie). sb3-contrib tests the KL strictly, KL < δ:
    the two rules differ only for a KL equal to δ to the last bit, which happens when the KL is
    exactly quadratic along the step, as :func:`trust_region_step` aims at the boundary; there
    this accepts the full step and sb3-contrib shrinks it once. The paper's extra test against a
    fraction of the linearly expected improvement is not applied. When no candidate passes, the
    search returns a zero step, so the caller's update leaves the parameters unchanged. A
    candidate whose improvement or KL is NaN or inf is rejected (not an error): a too-large step
    that overflows just backtracks.

    Rows: a step ``[S, N]`` is S independent searches (S seeds trained at once). ``evaluate``
    then takes the ``[S, N]`` candidate step·ρᵏ, every row shrunk by the same ρᵏ, and returns
    ``[S]`` improvements and KLs; each row keeps the first candidate that passes for it, and the
    search ends once every row has one (or after K). A row whose step is all zeros (a seed with
    nothing to climb, or one that stopped) is rejected without being tried. Each row's result is
    the one a search on that row alone gives.

    Args:
        step: the full step Δθ, e.g. from :func:`trust_region_step` (flat ``[N]``, or rows
            ``[S, N]``).
        evaluate: candidate step ↦ (surrogate improvement, KL), numbers or one-element tensors
            (``[S]`` tensors for rows); it applies the candidate to a copy or restores the
            parameters itself.
        max_kl: δ > 0.
        backtrack_ratio: ρ ∈ (0, 1).
        max_backtracks: K ≥ 0; at most K + 1 candidates are evaluated.

    Returns:
        :class:`LineSearchResult` ``(accepted, step, backtracks, kl, improvement)``.

    Raises:
        TypeError / ValueError: a non-tensor or non-finite step, δ ≤ 0, ρ outside (0, 1), K < 0,
        or ``evaluate`` returning something other than a pair of numbers.

    Example (improvement x(3 − x), KL x²/2, δ = 1 from step 4: x = 4 loses 4, x = 2 gains 2 but
    its KL 2 > δ, x = 1 gains 2 with KL 0.5 inside δ, so k = 2):
        >>> result = backtracking_line_search(
        ...     torch.tensor([4.0]), lambda x: (x * (3 - x), x**2 / 2), max_kl=1.0)
        >>> result.accepted, result.step, result.backtracks, result.kl, result.improvement
        (True, tensor([1.]), 2, 0.5, 2.0)
    """
    fn = "backtracking_line_search"
    step = _checks.floats(fn, "step", step)
    max_kl = _checks.positive(fn, "max_kl", max_kl)
    backtrack_ratio = _checks.number(fn, "backtrack_ratio", backtrack_ratio)
    if not 0.0 < backtrack_ratio < 1.0:
        raise BadInputError(f"{fn}(): 'backtrack_ratio' must lie in (0, 1); got {backtrack_ratio}")
    max_backtracks = _checks.count(fn, "max_backtracks", max_backtracks)
    if step.dim() == 2:
        return _line_search_rows(fn, step, evaluate, max_kl, backtrack_ratio, max_backtracks)
    for k in range(max_backtracks + 1):
        candidate = step * backtrack_ratio**k
        improvement, kl = _outcome(fn, evaluate(candidate))
        # NaN fails both comparisons; the isfinite test also rejects an inf improvement or a
        # −inf KL, which only an overflow produces.
        if improvement > 0.0 and kl <= max_kl and math.isfinite(improvement + kl):
            return LineSearchResult(True, candidate, k, kl, improvement)
    return LineSearchResult(False, torch.zeros_like(step), max_backtracks, 0.0, 0.0)


def _line_search_rows(
    fn: str,
    step: Tensor,
    evaluate: Callable[[Tensor], tuple[Tensor, Tensor]],
    max_kl: float,
    backtrack_ratio: float,
    max_backtracks: int,
) -> LineSearchResult:
    """:func:`backtracking_line_search` on the rows of ``step [S, N]`` at once: candidate k
    is tried for every row still searching, and each row keeps its first pass. One host sync
    per candidate."""
    rows = step.shape[0]
    searching = step.ne(0).any(dim=1)  # a zero row has nothing to try
    accepted = torch.zeros(rows, dtype=torch.bool, device=step.device)
    chosen = torch.zeros_like(step)
    backtracks = torch.full((rows,), max_backtracks, dtype=torch.int64, device=step.device)
    # float64, so that an improvement computed in float64 keeps its digits
    kls = torch.zeros(rows, dtype=torch.float64, device=step.device)
    improvements = torch.zeros_like(kls)
    for k in range(max_backtracks + 1):
        if not bool(searching.any()):
            break
        candidate = step * backtrack_ratio**k
        improvement, kl = _row_outcome(fn, evaluate(candidate), rows)
        # NaN fails both comparisons; the isfinite test also rejects an inf improvement or a
        # −inf KL, which only an overflow produces
        passing = (
            searching & (improvement > 0.0) & (kl <= max_kl) & torch.isfinite(improvement + kl)
        )
        chosen = torch.where(passing.unsqueeze(1), candidate, chosen)
        backtracks = torch.where(passing, k, backtracks)
        kls = torch.where(passing, kl.to(kls.dtype), kls)
        improvements = torch.where(passing, improvement.to(kls.dtype), improvements)
        accepted |= passing
        searching &= ~passing
    return LineSearchResult(accepted, chosen, backtracks, kls, improvements)


def _row_outcome(fn: str, result: object, rows: int) -> tuple[Tensor, Tensor]:
    """``evaluate``'s (improvements, kls) for rows: two floating tensors ``[S]``."""
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise TypeError(
            f"{fn}(): 'evaluate' must return a pair (improvements, kls); got {result!r:.80}"
        )
    for name, value in zip(("improvements", "kls"), result, strict=True):
        if not isinstance(value, Tensor) or not value.is_floating_point():
            raise TypeError(
                f"{fn}(): for a step of rows, 'evaluate' must return floating tensors [S]; its "
                f"{name} is {type(value).__name__}"
            )
        if value.shape != (rows,):
            raise BadInputError(
                f"{fn}(): for a step of {rows} rows, 'evaluate' must return [{rows}] tensors; "
                f"its {name} has shape {tuple(value.shape)}"
            )
    return result[0], result[1]


def surrogate_objective(
    log_probs: Tensor,
    old_log_probs: Tensor,
    advantages: Tensor,
    mask: Tensor | None = None,
    dim: int | None = None,
) -> Tensor:
    """TRPO's surrogate, the importance-sampled advantage of the new policy (Schulman et al.
    2015, eq. 14):

        L(θ) = mean(r_t Â_t),   r_t = exp(log π_θ(a_t|s_t) − log π_old(a_t|s_t))

    At θ = θ_old it equals mean Â and its gradient is the policy gradient mean(Â ∇log π); TRPO
    maximizes it inside the KL radius. PPO's clipped objective is its pessimistic variant
    (:func:`rlgrad.ppo_objective`). The old log-probabilities and the advantages are detached.
    With a mask m the mean is over the kept samples, Σ_t m_t r_t Â_t / Σ_t m_t; with ``dim`` it
    runs over that axis only, one surrogate per row (per seed, for ``[S, B]`` inputs), as
    :func:`rlgrad.ppo_clip_loss` does.

    Args:
        log_probs: ``[*B]`` log π_θ(a|s), differentiable.
        old_log_probs: ``[*B]`` log π_old(a|s) at collection time; detached here.
        advantages: ``[*B]`` Â; detached here.
        mask: ``[*B]`` bool or 0/1, the samples to average over, or None for all.
        dim: the axis to average over, or None for all of them.

    Returns:
        A 0-dim tensor, or ``[*B]`` without ``dim``.

    Example (ratios 2 and ½ with advantages 1 and 2: (2·1 + ½·2)/2 = 1.5):
        >>> surrogate_objective(torch.tensor([2.0, 0.5]).log(), torch.zeros(2),
        ...                     torch.tensor([1.0, 2.0]))
        tensor(1.5000)

    Per row, the second keeping only its first sample (ratio ½, Â = 2: 1):
        >>> surrogate_objective(torch.tensor([[2.0, 0.5], [0.5, 4.0]]).log(), torch.zeros(2, 2),
        ...                     torch.tensor([[1.0, 2.0], [2.0, 5.0]]),
        ...                     mask=torch.tensor([[True, True], [True, False]]), dim=1)
        tensor([1.5000, 1.0000])
    """
    fn = "surrogate_objective"
    log_probs = _checks.floats(fn, "log_probs", log_probs)
    if dim is None:
        _checks.non_empty(fn, "log_probs", log_probs)
    old_log_probs = _checks.floats(fn, "old_log_probs", old_log_probs, "log_probs", log_probs)
    advantages = _checks.floats(fn, "advantages", advantages, "log_probs", log_probs)
    dim, mask = _checks.reduction(fn, dim, mask, "log_probs", log_probs)
    log_probs, old_log_probs, advantages = _masks.zero_outside(
        mask, log_probs, old_log_probs, advantages
    )
    ratios = torch.exp(log_probs - old_log_probs.detach())
    return _masks.mean(ratios * advantages.detach(), mask, dim)


class RatioTaylor(NamedTuple):
    """What :func:`ratio_taylor` gives: the ratio's Taylor models at θ + Δ, one per sample."""

    first: Tensor  # [B] 1 + ∇r_iᵀΔ
    second: Tensor  # [B] 1 + ∇r_iᵀΔ + ½ ΔᵀH_iΔ


def ratio_taylor(
    log_prob_fn: Callable[[Tensor | list[Tensor]], Tensor], params: Params, step: Tensor
) -> RatioTaylor:
    """The first- and second-order Taylor models of each probability ratio around θ, where r = 1
    (course page E.3.4: r(θ) ≈ 1 + ∇rᵀΔ + ½ ΔᵀHΔ):

        r_i(θ + Δ) = π_{θ+Δ}(a_i|s_i) / π_θ(a_i|s_i) = exp(ℓ_i(θ + Δ) − ℓ_i(θ))
        first_i    = 1 + ∇r_iᵀΔ                = 1 + ℓ_i′
        second_i   = first_i + ½ ΔᵀH_iΔ        = first_i + ½ (ℓ_i″ + ℓ_i′²)

    with ℓ_i = log π(a_i|s_i), ℓ_i′ = d/dt ℓ_i(θ + tΔ)|₀ and ℓ_i″ = d²/dt² ℓ_i(θ + tΔ)|₀, H_i the
    Hessian of r_i at θ (r = exp(ℓ − ℓ(θ)) has r′ = ℓ′r and r″ = (ℓ″ + ℓ′²)r, and r = 1 at t = 0).

    Both directional derivatives come from forward-mode AD, one nested :func:`torch.func.jvp`
    through ``log_prob_fn``: a pass over the batch, with no per-sample gradient and no Hessian.
    Where |Δ| is small the models track the true ratios, with errors O(|Δ|²) and O(|Δ|³); where
    they stop doing so, the step has left the region in which a first-order (or second-order)
    view of the policy holds.

    Args:
        log_prob_fn: maps parameters, structured like ``params`` (a tensor, or a list of
            tensors), to ``[B]`` log π(a_i|s_i) at those parameters, e.g. through
            :func:`torch.func.functional_call`; forward-mode AD runs through it, so it must be
            made of differentiable torch ops.
        params: θ, a tensor or a sequence of tensors of one floating dtype and device (need not
            require grad).
        step: ``[N]`` Δ, flat in the layout of ``params`` (module docstring).

    Returns:
        :class:`RatioTaylor` ``(first [B], second [B])``, detached.

    Raises:
        TypeError: a non-tensor or non-floating parameter or step, or ``log_prob_fn`` returning
            no floating tensor.
        ValueError: a step that is not ``[N]`` or not finite, or ``log_prob_fn`` returning
            something other than a finite ``[B]``.

    Example (a Gaussian policy with mean θ = 0 and σ = 1, actions 2 and 0, Δ = 0.1: ℓ = −½(a − θ)²
    has ℓ′ = a·Δ = 0.2 and 0, ℓ″ = −Δ² = −0.01, so first = 1.2 and 1, second = 1.2 + ½(−0.01 +
    0.04) = 1.215 and 1 + ½(−0.01) = 0.995; the true ratios are e^0.195 = 1.2153 and e^−0.005 =
    0.9950):
        >>> actions = torch.tensor([2.0, 0.0], dtype=torch.float64)
        >>> log_prob = lambda mean: -0.5 * (actions - mean) ** 2  # up to a constant
        >>> theta, step = torch.zeros(1, dtype=actions.dtype), torch.full((1,), 0.1).double()
        >>> ratio_taylor(log_prob, theta, step)
        RatioTaylor(first=tensor([1.2000, 1.0000], dtype=torch.float64),
                    second=tensor([1.2150, 0.9950], dtype=torch.float64))
    """
    fn = "ratio_taylor"
    single = isinstance(params, Tensor)
    found = _parameter_list(fn, params, needs_grad=False)
    step = _flat_vector(fn, "step", step, found)
    primals = tuple(p.detach() for p in found)
    tangents = tuple(
        piece.view_as(p)
        for piece, p in zip(step.split([p.numel() for p in found]), found, strict=True)
    )

    def log_probs(*values: Tensor) -> Tensor:
        result = log_prob_fn(values[0] if single else list(values))
        if not isinstance(result, Tensor) or not result.is_floating_point():
            raise TypeError(
                f"{fn}(): 'log_prob_fn' must return a floating torch.Tensor; got "
                f"{getattr(result, 'dtype', type(result).__name__)}"
            )
        if result.dim() != 1:
            raise BadInputError(
                f"{fn}(): 'log_prob_fn' must return log-probabilities [B]; got shape "
                f"{tuple(result.shape)}"
            )
        return result

    def slope(*values: Tensor) -> Tensor:  # ℓ′ = d/dt ℓ(θ + tΔ)|₀, [B]
        return torch.func.jvp(log_probs, values, tangents)[1]

    with torch.no_grad():
        first_derivative, second_derivative = torch.func.jvp(slope, primals, tangents)  # ℓ′, ℓ″
    _checks.finite(
        fn, "log_prob_fn's directional derivatives", first_derivative + second_derivative
    )
    first = 1.0 + first_derivative
    return RatioTaylor(first, first + 0.5 * (second_derivative + first_derivative**2))
