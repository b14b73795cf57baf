"""Trust-region pieces: Hessian- and Fisher-vector products against explicit matrices, conjugate
gradient against a direct solve, the two closed-form KLs against torch.distributions and Monte
Carlo, and the step scale and line search on toys whose answers are computed by hand."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import rlgrad

F64 = torch.float64
seeds = st.integers(0, 2**31 - 1)


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- Hessian-vector products --------------------------------------------------------------------


def mlp_loss(w: torch.Tensor, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """A 3 → 4 → 2 tanh network whose 26 weights are sliced from the flat vector w."""
    w1, b1 = w[:12].reshape(4, 3), w[12:16]  # (hidden, in), (hidden,)
    w2, b2 = w[16:24].reshape(2, 4), w[24:26]  # (out, hidden), (out,)
    outputs = torch.tanh(inputs @ w1.T + b1) @ w2.T + b2  # (batch, out)
    return ((outputs - targets) ** 2).mean() + 0.1 * torch.sigmoid(w).sum()


@given(seeds)
def test_hvp_equals_the_explicit_hessian_of_an_mlp_loss(seed):
    g = generator(seed)
    inputs, targets = torch.randn(5, 3, generator=g, dtype=F64), torch.randn(5, 2, generator=g)
    targets = targets.to(F64)
    w = torch.randn(26, generator=g, dtype=F64)
    v = torch.randn(26, generator=g, dtype=F64)
    explicit = rlgrad.hessian(lambda t: mlp_loss(t, inputs, targets), w) @ v
    x = w.clone().requires_grad_(True)
    product = rlgrad.hessian_vector_product(lambda: mlp_loss(x, inputs, targets), x, v)
    torch.testing.assert_close(product, explicit, rtol=0, atol=1e-10)
    assert not product.requires_grad and x.grad is None  # no .grad side effects


@given(seeds, st.integers(1, 6))
def test_hvp_of_a_quadratic_is_the_matrix_times_v(seed, n):
    # f(x) = ½ xᵀAx with A symmetric has H = A exactly, at every x.
    g = generator(seed)
    a = torch.randn(n, n, generator=g, dtype=F64)
    a = a + a.T
    x = torch.randn(n, generator=g, dtype=F64, requires_grad=True)
    v = torch.randn(n, generator=g, dtype=F64)
    product = rlgrad.hessian_vector_product(lambda: 0.5 * x @ a @ x, x, v)
    torch.testing.assert_close(product, a @ v, rtol=0, atol=1e-12)


def test_hvp_over_a_parameter_list_uses_the_flat_layout():
    g = generator(0)
    layer = torch.nn.Linear(3, 2).to(F64)
    inputs = torch.randn(4, 3, generator=g, dtype=F64)

    def loss_of(weight, bias):
        return torch.logsumexp(inputs @ weight.T + bias, dim=-1).pow(2).mean()

    def flat_loss(w):  # the same loss of the flat vector [weight (2·3) row-major, bias (2)]
        return loss_of(w[:6].reshape(2, 3), w[6:])

    flat = torch.nn.utils.parameters_to_vector(layer.parameters()).detach()
    v = torch.randn(8, generator=g, dtype=F64)
    product = rlgrad.hessian_vector_product(
        lambda: loss_of(layer.weight, layer.bias), layer.parameters(), v
    )
    torch.testing.assert_close(product, rlgrad.hessian(flat_loss, flat) @ v, rtol=0, atol=1e-10)


def test_hvp_is_zero_for_linear_and_unread_parameters():
    x = torch.tensor([1.0, 2.0], dtype=F64, requires_grad=True)
    y = torch.tensor([3.0], dtype=F64, requires_grad=True)
    v = torch.tensor([1.0, 1.0, 1.0], dtype=F64)
    # Linear in x, never reads y: the whole Hessian is 0.
    assert rlgrad.hessian_vector_product(lambda: 2 * x.sum(), [x, y], v).abs().max() == 0
    # A graph that exists but reaches neither x nor y (f reads only w): f does not depend on
    # them, which is all the HVP can see, so H = 0 there too, however curved f is in w.
    w = torch.tensor(5.0, dtype=F64, requires_grad=True)
    assert rlgrad.hessian_vector_product(lambda: w**3, [x, y], v).abs().max() == 0
    # x₀²·y reads both: H = [[2y, 0, 2x₀], [0, 0, 0], [2x₀, 0, 0]] = [[6, 0, 2], ..., [2, 0, 0]].
    product = rlgrad.hessian_vector_product(lambda: x[0] ** 2 * y[0], [x, y], v)
    torch.testing.assert_close(product, torch.tensor([8.0, 0.0, 2.0], dtype=F64))


@pytest.mark.parametrize(
    "name, f",
    [
        # f = x₀²·x₁ has H ≠ 0, but each of these hands back a tensor with no graph; the
        # zeros they got before were indistinguishable from a function free of x
        ("detached", lambda x: (x[0] ** 2 * x[1]).detach()),
        ("no_grad", lambda x: torch.no_grad()(lambda: x[0] ** 2 * x[1])()),
        ("item", lambda x: torch.tensor((x[0] ** 2 * x[1]).item(), dtype=F64)),
        ("constant", lambda x: torch.tensor(1.0, dtype=F64)),
    ],
)
def test_hvp_refuses_an_output_with_no_graph(name, f):
    x = torch.tensor([1.0, 2.0], dtype=F64, requires_grad=True)
    with pytest.raises(ValueError) as error:
        rlgrad.hessian_vector_product(lambda: f(x), x, torch.tensor([1.0, 0.0], dtype=F64))
    assert str(error.value).startswith(
        "hessian_vector_product(): 'f' must return a tensor with an autograd graph to "
        "'params'; got one with requires_grad=False"
    )


def test_hvp_errors_name_the_argument():
    x = torch.zeros(3, dtype=F64, requires_grad=True)
    hvp = rlgrad.hessian_vector_product
    with pytest.raises(ValueError, match=r"'vector' must be flat, shape \[N\] = \(3,\)"):
        hvp(lambda: (x**2).sum(), x, torch.zeros(2, dtype=F64))
    with pytest.raises(ValueError, match=r"'vector' must be flat.*got \(3, 1\)"):
        hvp(lambda: (x**2).sum(), x, torch.zeros(3, 1, dtype=F64))
    with pytest.raises(ValueError, match="'params' must require grad"):
        hvp(lambda: (x**2).sum(), torch.zeros(3, dtype=F64), torch.zeros(3, dtype=F64))
    with pytest.raises(ValueError, match="'params' must hold at least one tensor"):
        hvp(lambda: (x**2).sum(), [], torch.zeros(3, dtype=F64))
    with pytest.raises(TypeError, match=r"'params\[1\]' must be a torch.Tensor; got int"):
        hvp(lambda: (x**2).sum(), [x, 3], torch.zeros(3, dtype=F64))
    with pytest.raises(TypeError, match="'vector' must have the dtype of 'params'"):
        hvp(lambda: (x**2).sum(), x, torch.zeros(3))
    with pytest.raises(ValueError, match="'f' must return a scalar tensor; got shape"):
        hvp(lambda: x**2, x, torch.zeros(3, dtype=F64))
    with pytest.raises(TypeError, match=r"'f' must return a torch\.Tensor; got float"):
        hvp(lambda: 1.0, x, torch.zeros(3, dtype=F64))
    with pytest.raises(ValueError, match="'vector' must be finite"):
        hvp(lambda: (x**2).sum(), x, torch.tensor([0.0, math.nan, 0.0], dtype=F64))


# --- conjugate gradient -------------------------------------------------------------------------


def spd_matrix(seed: int, n: int) -> torch.Tensor:
    """QΛQᵀ with eigenvalues in [1, 10]: condition number ≤ 10, so n CG steps solve to ~1e-12."""
    g = generator(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=F64))
    eigenvalues = 1 + 9 * torch.rand(n, generator=g, dtype=F64)
    return q @ torch.diag(eigenvalues) @ q.T


@given(seeds, st.integers(1, 12), st.sampled_from([0.0, 0.5, 3.0]))
def test_cg_with_n_iterations_solves_the_damped_system(seed, n, damping):
    a = spd_matrix(seed, n)
    b = torch.randn(n, generator=generator(seed + 1), dtype=F64)
    result = rlgrad.conjugate_gradient(lambda v: a @ v, b, iterations=n, damping=damping)
    direct = torch.linalg.solve(a + damping * torch.eye(n, dtype=F64), b)
    torch.testing.assert_close(result.solution, direct, rtol=0, atol=1e-8)
    norms = result.residual_norms
    assert 2 <= len(norms) <= n + 1 and float(norms[0]) == pytest.approx(float(b.norm()))
    # The recorded residuals are the true ones, b − (A + λI)x, up to rounding.
    true_residual = b - (a + damping * torch.eye(n, dtype=F64)) @ result.solution
    assert float(norms[-1]) == pytest.approx(float(true_residual.norm()), abs=1e-9)
    assert float(norms[-1]) < 1e-8 * float(norms[0])


def test_cg_stops_when_the_residual_is_below_tolerance():
    # A = 2I: the first step is exact (x = b/2), so one iteration is run out of ten.
    b = torch.tensor([1.0, -2.0, 0.5], dtype=F64)
    result = rlgrad.conjugate_gradient(lambda v: 2 * v, b, iterations=10)
    torch.testing.assert_close(result.solution, b / 2)
    assert len(result.residual_norms) == 2 and float(result.residual_norms[1]) == 0.0
    # b = 0 is already solved: no iteration, no call to matvec.
    zero = rlgrad.conjugate_gradient(lambda v: 1 / 0, torch.zeros(3, dtype=F64))
    assert float(zero.solution.abs().max()) == 0.0 and zero.residual_norms.tolist() == [0.0]


def test_cg_with_few_iterations_records_a_falling_residual():
    a = torch.diag(torch.arange(1.0, 21.0, dtype=F64))  # eigenvalues 1 … 20
    result = rlgrad.conjugate_gradient(lambda v: a @ v, torch.ones(20, dtype=F64), iterations=5)
    norms = result.residual_norms
    assert len(norms) == 6 and float(norms[-1]) < 0.5 * float(norms[0])


def test_cg_errors_name_the_argument():
    cg, b = rlgrad.conjugate_gradient, torch.ones(2, dtype=F64)
    with pytest.raises(ValueError, match="'iterations' must be >= 1; got 0"):
        cg(lambda v: v, b, iterations=0)
    with pytest.raises(ValueError, match=r"'damping' must be >= 0; got -0\.1"):
        cg(lambda v: v, b, damping=-0.1)
    with pytest.raises(ValueError, match=r"'b' must be a flat vector \[n\] or rows \[S, n\]; got"):
        cg(lambda v: v, b.reshape(2, 1, 1))
    with pytest.raises(ValueError, match=r"'matvec' must return the shape of 'b' \(2,\); got \(3"):
        cg(lambda v: torch.ones(3, dtype=F64), b)
    with pytest.raises(TypeError, match=r"'matvec' must return a torch\.Tensor; got list"):
        cg(lambda v: [1.0, 1.0], b)
    with pytest.raises(ValueError, match="must be positive definite"):
        cg(lambda v: -v, b)


# --- closed-form KLs ----------------------------------------------------------------------------


@given(seeds, st.integers(1, 6))
def test_categorical_kl_matches_torch_and_is_zero_only_at_p(seed, actions):
    g = generator(seed)
    logits_p = 2 * torch.randn(4, 3, actions, generator=g, dtype=F64)
    logits_q = 2 * torch.randn(4, 3, actions, generator=g, dtype=F64)
    kl = rlgrad.categorical_kl(logits_p, logits_q)
    reference = torch.distributions.kl_divergence(
        torch.distributions.Categorical(logits=logits_p),
        torch.distributions.Categorical(logits=logits_q),
    )
    assert kl.shape == (4, 3)
    torch.testing.assert_close(kl, reference, rtol=1e-10, atol=1e-12)
    assert bool((kl >= -1e-15).all())
    # A constant shift of the logits is the same policy: KL(p ‖ p + c) = 0.
    same = rlgrad.categorical_kl(logits_p, logits_p + 5.0)
    torch.testing.assert_close(same, torch.zeros(4, 3, dtype=F64), rtol=0, atol=1e-14)


@given(seeds, st.integers(1, 4), st.booleans())
def test_gaussian_kl_matches_torch_and_is_non_negative(seed, dims, shared_std):
    g = generator(seed)
    means_p, means_q = (torch.randn(5, dims, generator=g, dtype=F64) for _ in range(2))
    std_shape = (dims,) if shared_std else (5, dims)
    log_stds_p, log_stds_q = (torch.randn(std_shape, generator=g, dtype=F64) for _ in range(2))
    kl = rlgrad.gaussian_kl(means_p, log_stds_p, means_q, log_stds_q)

    def normal(means, log_stds):
        return torch.distributions.Independent(
            torch.distributions.Normal(means, log_stds.exp().expand_as(means)), 1
        )

    reference = torch.distributions.kl_divergence(
        normal(means_p, log_stds_p), normal(means_q, log_stds_q)
    )
    assert kl.shape == (5,)
    torch.testing.assert_close(kl, reference, rtol=1e-10, atol=1e-12)
    assert bool((kl >= 0).all())
    zero = rlgrad.gaussian_kl(means_p, log_stds_p, means_p, log_stds_p)
    assert float(zero.abs().max()) == 0.0


def test_kls_match_a_monte_carlo_estimate():
    # E_p[log p(x) − log q(x)] from n = 400,000 samples; the estimate's standard error is
    # std(log p − log q)/√n, and 5 standard errors bound a miss with probability ~1e-6.
    g, n = generator(7), 400_000
    logits_p = torch.tensor([0.5, -1.0, 2.0], dtype=F64)
    logits_q = torch.tensor([0.0, 1.0, -0.5], dtype=F64)
    samples = torch.multinomial(logits_p.softmax(-1), n, replacement=True, generator=g)
    log_ratios = (logits_p.log_softmax(-1) - logits_q.log_softmax(-1))[samples]
    error = 5 * float(log_ratios.std()) / math.sqrt(n)
    kl = float(rlgrad.categorical_kl(logits_p, logits_q))
    assert abs(float(log_ratios.mean()) - kl) < error

    means_p, log_stds_p = torch.tensor([0.3, -1.0], dtype=F64), torch.tensor([0.2, -0.5], dtype=F64)
    means_q, log_stds_q = torch.tensor([0.0, 0.5], dtype=F64), torch.tensor([0.0, 0.1], dtype=F64)
    x = means_p + log_stds_p.exp() * torch.randn(n, 2, generator=g, dtype=F64)  # (n, D)
    log_ratios = rlgrad.gaussian_log_prob(x, means_p.expand_as(x), log_stds_p) - (
        rlgrad.gaussian_log_prob(x, means_q.expand_as(x), log_stds_q)
    )
    error = 5 * float(log_ratios.std()) / math.sqrt(n)
    kl = float(rlgrad.gaussian_kl(means_p, log_stds_p, means_q, log_stds_q))
    assert abs(float(log_ratios.mean()) - kl) < error


def test_kls_pass_gradcheck():
    g = generator(1)
    logits = [torch.randn(3, 4, generator=g, dtype=F64, requires_grad=True) for _ in range(2)]
    assert torch.autograd.gradcheck(rlgrad.categorical_kl, logits)
    gaussian = [torch.randn(3, 2, generator=g, dtype=F64, requires_grad=True) for _ in range(4)]
    assert torch.autograd.gradcheck(rlgrad.gaussian_kl, gaussian)


def test_categorical_kl_masks_with_finite_gradients():
    # p masks action 2. Unmasked p = (½, ½); q = (¼, ¾, ·) over the first two after the mask
    # in both: KL = ½ log(4/3) as in the doctest; masking only p: q(2) > 0 is simply unused.
    inf = math.inf
    logits_p = torch.tensor([0.0, 0.0, -inf], dtype=F64, requires_grad=True)
    logits_q = torch.tensor([0.0, math.log(3.0), -inf], dtype=F64, requires_grad=True)
    kl = rlgrad.categorical_kl(logits_p, logits_q)
    assert kl.item() == pytest.approx(0.5 * math.log(4 / 3), abs=1e-15)
    kl.backward()
    assert bool(torch.isfinite(logits_p.grad).all() and torch.isfinite(logits_q.grad).all())
    # q unmasked, with logit 0 for action 2: q = (1, 3, 1)/5; KL = ½ log(½·5) + ½ log(½·5/3).
    free_q = torch.tensor([0.0, math.log(3.0), 0.0], dtype=F64)
    expected = 0.5 * math.log(2.5) + 0.5 * math.log(2.5 / 3)
    assert float(rlgrad.categorical_kl(logits_p.detach(), free_q)) == pytest.approx(expected)
    with pytest.raises(ValueError, match="'logits_q' must not mask"):
        rlgrad.categorical_kl(free_q, logits_q.detach())
    with pytest.raises(ValueError, match="'logits_p' must be finite or -inf"):
        rlgrad.categorical_kl(torch.tensor([inf, 0.0]), torch.zeros(2))
    with pytest.raises(ValueError, match="every row of 'logits_q' needs"):
        rlgrad.categorical_kl(torch.tensor([0.0, -inf]), torch.tensor([-inf, -inf]))


def test_kl_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"'logits_q' must have the shape of 'logits_p' \(2, 3\)"):
        rlgrad.categorical_kl(torch.zeros(2, 3), torch.zeros(3))
    with pytest.raises(TypeError, match="'logits_q' must have the dtype of 'logits_p'"):
        rlgrad.categorical_kl(torch.zeros(3), torch.zeros(3, dtype=F64))
    with pytest.raises(ValueError, match=r"'log_stds_q' must have shape \[D\] = \(2,\)"):
        rlgrad.gaussian_kl(torch.zeros(4, 2), torch.zeros(2), torch.zeros(4, 2), torch.zeros(1, 2))
    with pytest.raises(ValueError, match=r"'means_q' must have the shape of 'means_p'"):
        rlgrad.gaussian_kl(torch.zeros(4, 2), torch.zeros(2), torch.zeros(2), torch.zeros(2))
    with pytest.raises(ValueError, match="'log_stds_p' must be finite"):
        rlgrad.gaussian_kl(
            torch.zeros(2), torch.tensor([0.0, math.nan]), torch.zeros(2), torch.zeros(2)
        )


# --- Fisher-vector products ---------------------------------------------------------------------


def softmax_policy_logits(w: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
    """A 3 → 5 → 4 tanh policy network; its 44 weights are sliced from the flat vector w."""
    w1, b1 = w[:15].reshape(5, 3), w[15:20]  # (hidden, in), (hidden,)
    w2, b2 = w[20:40].reshape(4, 5), w[40:44]  # (actions, hidden), (actions,)
    return torch.tanh(states @ w1.T + b1) @ w2.T + b2  # (states, actions)


@given(seeds)
def test_fvp_equals_the_explicit_fisher_matrix(seed):
    g = generator(seed)
    states = torch.randn(6, 3, generator=g, dtype=F64)
    w_old = torch.randn(44, generator=g, dtype=F64)
    v = torch.randn(44, generator=g, dtype=F64)
    # F = mean_s J_sᵀ (diag π_s − π_s π_sᵀ) J_s, J_s = ∂logits(s)/∂w [A, N].
    jacobian = torch.autograd.functional.jacobian(
        lambda t: softmax_policy_logits(t, states), w_old
    )  # (states, actions, N)
    probs = softmax_policy_logits(w_old, states).softmax(-1)  # (states, actions)
    curvature = torch.diag_embed(probs) - probs.unsqueeze(-1) * probs.unsqueeze(-2)
    fisher = torch.einsum("san,sab,sbm->nm", jacobian, curvature, jacobian) / len(states)

    w = w_old.clone().requires_grad_(True)
    old_logits = softmax_policy_logits(w_old, states).detach()

    def mean_kl():
        return rlgrad.categorical_kl(old_logits, softmax_policy_logits(w, states)).mean()

    product = rlgrad.fisher_vector_product(mean_kl, w, v)
    torch.testing.assert_close(product, fisher @ v, rtol=0, atol=1e-10)
    damped = rlgrad.fisher_vector_product(mean_kl, w, v, damping=0.1)
    torch.testing.assert_close(damped, fisher @ v + 0.1 * v, rtol=0, atol=1e-10)


def test_gaussian_fisher_is_one_over_variance_and_two():
    # Per dimension, the Fisher of N(μ, σ²) in (μ, log σ) is diag(1/σ², 2) (σ = e^0.5 here).
    mean = torch.tensor([0.3], dtype=F64, requires_grad=True)
    log_std = torch.tensor([0.5], dtype=F64, requires_grad=True)
    old = (mean.detach().clone(), log_std.detach().clone())

    def kl():
        return rlgrad.gaussian_kl(*old, mean, log_std)

    product = rlgrad.fisher_vector_product(kl, [mean, log_std], torch.ones(2, dtype=F64))
    torch.testing.assert_close(product, torch.tensor([math.exp(-1.0), 2.0], dtype=F64))


@given(seeds)
def test_fisher_operator_gives_the_fvp_for_every_vector(seed):
    # The operator builds ∇KL once and reuses its graph: several vectors, in any order, must get
    # exactly what a fresh fisher_vector_product gives each of them.
    g = generator(seed)
    states = torch.randn(6, 3, generator=g, dtype=F64)
    w = torch.randn(44, generator=g, dtype=F64).requires_grad_(True)
    old_logits = softmax_policy_logits(w.detach(), states)
    calls = []

    def mean_kl():
        calls.append(1)
        return rlgrad.categorical_kl(old_logits, softmax_policy_logits(w, states)).mean()

    times_fisher = rlgrad.fisher_operator(mean_kl, w, damping=0.1)
    assert len(calls) == 1
    for _ in range(4):
        v = torch.randn(44, generator=g, dtype=F64)
        expected = rlgrad.fisher_vector_product(mean_kl, w, v, damping=0.1)
        assert torch.equal(times_fisher(v), expected)
    assert len(calls) == 1 + 4  # the operator's products called kl_fn no more


def undetached_kls():
    """Mean KLs whose old side was not detached, so KL(π_θ ‖ π_θ) = 0 for every θ: a softmax
    policy (logits computed twice, or once and used twice) and a Gaussian one."""
    g = generator(3)
    states = torch.randn(6, 3, generator=g, dtype=F64)
    w = torch.randn(44, generator=g, dtype=F64).requires_grad_(True)
    mean, log_std = torch.zeros(2, dtype=F64, requires_grad=True), torch.zeros(2, dtype=F64)
    log_std.requires_grad_(True)

    def twice():
        logits = softmax_policy_logits(w, states)
        return rlgrad.categorical_kl(softmax_policy_logits(w, states), logits).mean()

    def shared():
        logits = softmax_policy_logits(w, states)
        return rlgrad.categorical_kl(logits, logits).mean()

    def gaussian():
        return rlgrad.gaussian_kl(mean, log_std, mean, log_std).mean()

    return [(twice, [w]), (shared, [w]), (gaussian, [mean, log_std])]


@pytest.mark.parametrize("case", range(3))
@pytest.mark.parametrize("damping", [0.0, 0.1])
def test_fisher_refuses_a_kl_whose_old_side_was_not_detached(case, damping):
    # The products came back as exact zeros (plus λv), which CG then divided by, or with damping
    # turned into the step g/λ of plain gradient ascent, without a word.
    kl, params = undetached_kls()[case]
    v = torch.randn(sum(p.numel() for p in params), generator=generator(1), dtype=F64)
    message = "'kl_fn' has a zero Hessian along v and along a random probe"
    with pytest.raises(ValueError) as error:
        rlgrad.fisher_vector_product(kl, params, v, damping=damping)
    assert str(error.value).startswith(f"fisher_vector_product(): {message}")
    assert "detach the old distribution" in str(error.value)
    times_fisher = rlgrad.fisher_operator(kl, params, damping=damping)
    with pytest.raises(ValueError) as error:
        times_fisher(v)
    assert str(error.value).startswith(f"fisher_operator(): {message}")


def test_fisher_passes_a_vector_in_its_null_space():
    # At θ = 0, F = [[¼, −¼], [−¼, ¼]] for softmax(θ), and adding the same c to every logit
    # changes nothing: F·(1, 1) = 0 exactly, a true zero the probe must not refuse. An extra
    # parameter y the policy never reads is in the null space too.
    theta = torch.zeros(2, dtype=F64, requires_grad=True)
    y = torch.zeros(1, dtype=F64, requires_grad=True)

    def kl():
        return rlgrad.categorical_kl(theta.detach(), theta + 0 * y.detach())

    shift = torch.tensor([1.0, 1.0, 0.0], dtype=F64)
    unread = torch.tensor([0.0, 0.0, 1.0], dtype=F64)
    for v in (shift, unread):
        assert torch.equal(
            rlgrad.fisher_vector_product(kl, [theta, y], v), torch.zeros(3, dtype=F64)
        )
    times_fisher = rlgrad.fisher_operator(kl, [theta, y])
    assert torch.equal(times_fisher(shift), torch.zeros(3, dtype=F64))
    torch.testing.assert_close(
        times_fisher(torch.tensor([1.0, 0.0, 0.0], dtype=F64)),
        torch.tensor([0.25, -0.25, 0.0], dtype=F64),
    )


def test_fisher_of_a_kl_with_no_graph_or_no_parameter_is_refused():
    x = torch.ones(3, requires_grad=True)
    w = torch.ones(3, requires_grad=True)
    v = torch.tensor([1.0, -2.0, 3.0])
    # a constant (no graph): it gave 0.5·v before, damping alone, as if F = 0 were a Fisher
    with pytest.raises(ValueError, match=r"fisher_operator\(\): 'kl_fn' must return a tensor"):
        rlgrad.fisher_operator(lambda: torch.tensor(2.0), x, damping=0.5)
    # a graph that reaches w but none of the params x: H = 0, refused for a Fisher
    with pytest.raises(ValueError, match=r"fisher_vector_product\(\): 'kl_fn' has a zero"):
        rlgrad.fisher_vector_product(lambda: (w**2).sum(), x, v, damping=0.5)


def test_fisher_operator_names_itself_on_bad_input():
    x = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match=r"fisher_operator\(\): 'damping' must be >= 0"):
        rlgrad.fisher_operator(lambda: (x**2).sum(), x, damping=-1.0)
    times_fisher = rlgrad.fisher_operator(lambda: (x**2).sum(), x)
    with pytest.raises(ValueError, match=r"fisher_operator\(\): 'vector' must be flat"):
        times_fisher(torch.ones(3))
    with pytest.raises(ValueError, match=r"fisher_operator\(\): 'vector'"):
        times_fisher(torch.tensor([1.0, float("nan")]))


def test_fvp_refuses_negative_damping():
    x = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match=r"fisher_vector_product\(\): 'damping' must be >= 0"):
        rlgrad.fisher_vector_product(lambda: (x**2).sum(), x, torch.ones(2), damping=-1.0)


# --- the step and the line search ---------------------------------------------------------------


@given(seeds, st.integers(1, 8), st.floats(1e-4, 0.1))
def test_trust_region_step_lands_on_the_kl_boundary(seed, n, max_kl):
    a = spd_matrix(seed, n)
    s = torch.randn(n, generator=generator(seed), dtype=F64)
    step = rlgrad.trust_region_step(s, a @ s, max_kl)
    assert float(0.5 * step @ a @ step) == pytest.approx(max_kl, rel=1e-12)
    scale = math.sqrt(2 * max_kl / float(s @ a @ s))
    torch.testing.assert_close(step, scale * s, rtol=1e-14, atol=0)


def test_trust_region_step_refuses_no_curvature():
    s = torch.tensor([1.0, 0.0])
    with pytest.raises(ValueError, match=r"must have a clearly positive curvature.*got sᵀHs = -1"):
        rlgrad.trust_region_step(s, torch.tensor([-1.0, 0.0]), 0.01)
    with pytest.raises(ValueError, match="got sᵀHs = 0"):
        rlgrad.trust_region_step(s, torch.tensor([0.0, 5.0]), 0.01)
    with pytest.raises(ValueError, match="'max_kl' must be > 0"):
        rlgrad.trust_region_step(s, s, 0.0)
    with pytest.raises(ValueError, match=r"'direction_hvp' must have the shape of 'direction'"):
        rlgrad.trust_region_step(s, torch.ones(3), 0.01)


@pytest.mark.parametrize(
    "dtype, s, hs, floor",
    [
        # the cross-check's case: a curvature of 1e-300 along s = (1, 0) gave a step of 1.4e147;
        # the floor is ε·‖s‖·max(‖s‖, ‖Hs‖) = 2.2e-16·1·1
        (F64, [1.0, 0.0], [1e-300, 0.0], "2.22045e-16"),
        # curvature per unit step 1e-8 < ε = 1.19e-7 in float32: a step of norm √(0.02/1e-8)
        (torch.float32, [1.0, 0.0], [1e-8, 0.0], "1.19209e-07"),
        # Hs large but nearly orthogonal to s: sᵀHs = 1e-20 is below its rounding, ε·1·1e4
        (F64, [1.0, 0.0], [1e-20, 1e4], "2.22045e-12"),
        # s tiny, Hs mostly orthogonal to it: sᵀHs = 1e-40 clears ε·‖s‖² = 2.2e-56 but not
        # ε·‖s‖·‖Hs‖ = 2.2e-36
        (F64, [1e-20, 0.0], [1e-20, 1.0], "2.22045e-36"),
    ],
)
def test_trust_region_step_refuses_a_curvature_that_is_not_clearly_positive(dtype, s, hs, floor):
    with pytest.raises(ValueError) as error:
        rlgrad.trust_region_step(torch.tensor(s, dtype=dtype), torch.tensor(hs, dtype=dtype), 0.01)
    message = str(error.value)
    assert message.startswith(
        "trust_region_step(): 'direction' and 'direction_hvp' must have a clearly positive "
        f"curvature, sᵀHs > ε·‖s‖·max(‖s‖, ‖Hs‖) = {floor} (ε = machine epsilon of {dtype})"
    )
    curvature = float(torch.tensor(s, dtype=dtype) @ torch.tensor(hs, dtype=dtype))
    assert message.endswith(f"got sᵀHs = {curvature:.6g}")


def test_trust_region_step_keeps_small_but_clear_curvatures():
    # Just above the floor the step is taken, and is exact: s = (1, 0), sᵀHs = 1e-14 > 2.2e-16,
    # so Δθ = √(0.02 / 1e-14)·s = (1.414e6, 0)
    step = rlgrad.trust_region_step(
        torch.tensor([1.0, 0.0], dtype=F64), torch.tensor([1e-14, 0.0], dtype=F64), 0.01
    )
    torch.testing.assert_close(step, torch.tensor([math.sqrt(2e12), 0.0], dtype=F64))
    # a tiny s with its own tiny curvature: sᵀHs = 1e-300, but per unit step it is 1, so the
    # step is √(0.02/1e-300)·1e-150 = √0.02·(1, 0): size belongs to s, not to the curvature
    step = rlgrad.trust_region_step(
        torch.tensor([1e-150, 0.0], dtype=F64), torch.tensor([1e-150, 0.0], dtype=F64), 0.01
    )
    torch.testing.assert_close(step, torch.tensor([math.sqrt(0.02), 0.0], dtype=F64))


def test_trust_region_step_refuses_a_step_that_overflows():
    # √(2·1e300 / 1)·s overflows float32
    with pytest.raises(ValueError) as error:
        rlgrad.trust_region_step(torch.ones(2), torch.ones(2), 1e300)
    assert str(error.value).startswith(
        "trust_region_step(): the step √(2δ / sᵀHs)·s overflows torch.float32, with max_kl = 1e+300"
    )


def test_line_search_accepts_a_kl_equal_to_max_kl_where_sb3_contrib_backtracks():
    # KL(Δ) = ½·ΔᵀHΔ exactly with H = 4: trust_region_step aims at KL = δ = 0.125 and, in binary
    # floating point, lands on it exactly (Δ = √(0.25/4) = 0.25, ½·4·0.25² = 0.125). KL ≤ δ takes
    # that full step; sb3-contrib's KL < δ would shrink it once.
    step = rlgrad.trust_region_step(
        torch.tensor([1.0], dtype=F64), torch.tensor([4.0], dtype=F64), 0.125
    )
    result = rlgrad.backtracking_line_search(step, lambda x: (x.sum(), 2 * (x**2).sum()), 0.125)
    assert (result.accepted, result.backtracks, result.kl, result.step.tolist()) == (
        True,
        0,
        0.125,
        [0.25],
    )
    # a hair above δ is refused: the same KL against δ just below it backtracks once
    below = math.nextafter(0.125, 0.0)
    result = rlgrad.backtracking_line_search(step, lambda x: (x.sum(), 2 * (x**2).sum()), below)
    assert (result.backtracks, result.kl, result.step.tolist()) == (1, 0.03125, [0.125])


def test_line_search_backtracks_until_the_kl_fits():
    # Improvement x (always > 0), KL x²/2, δ = 0.1, from x = 4 halving: KL 8, 2, 0.5, 0.125,
    # then 0.03125 ≤ 0.1 at x = 0.25, k = 4.
    tried = []

    def evaluate(x):
        tried.append(float(x))
        return x.sum(), (x**2).sum() / 2

    result = rlgrad.backtracking_line_search(torch.tensor([4.0], dtype=F64), evaluate, 0.1)
    assert tried == [4.0, 2.0, 1.0, 0.5, 0.25]
    assert result.accepted and result.backtracks == 4
    assert result.step.tolist() == [0.25] and result.kl == 0.03125 and result.improvement == 0.25
    assert result.kl <= 0.1 and result.improvement > 0


def test_line_search_rejects_a_step_that_only_ties():
    # Improvement x(2 − x): x = 4 loses 8, x = 2 ties at 0 (not accepted), x = 1 gains 1; the KL
    # x²/2 = 0.5 ≤ δ = 0.5 is on the boundary, which is accepted.
    result = rlgrad.backtracking_line_search(
        torch.tensor([4.0]), lambda x: (x * (2 - x), x**2 / 2), max_kl=0.5
    )
    assert (result.accepted, result.backtracks, result.kl, result.improvement) == (
        True,
        2,
        0.5,
        1.0,
    )


def test_a_rejected_search_leaves_the_parameters_unchanged():
    params = torch.tensor([1.0, -2.0], dtype=F64)
    calls = []

    def evaluate(step):  # every candidate makes the surrogate worse
        calls.append(step)
        return -float(step.norm()), 0.0

    result = rlgrad.backtracking_line_search(
        torch.tensor([0.5, 0.5], dtype=F64), evaluate, 0.01, backtrack_ratio=0.8, max_backtracks=3
    )
    assert len(calls) == 4 and not result.accepted and result.backtracks == 3
    assert (result.kl, result.improvement) == (0.0, 0.0)
    assert torch.equal(params + result.step, params)


def test_line_search_rejects_overflowing_candidates():
    # The full step overflows (NaN surrogate, inf KL); the halved one is fine.
    outcomes = iter([(math.nan, math.inf), (torch.tensor(0.3), torch.tensor(0.001))])
    result = rlgrad.backtracking_line_search(torch.ones(2), lambda x: next(outcomes), 0.01)
    assert result.accepted and result.backtracks == 1 and result.improvement == pytest.approx(0.3)
    assert torch.equal(result.step, torch.full((2,), 0.5))


def test_line_search_errors_name_the_argument():
    search, step = rlgrad.backtracking_line_search, torch.ones(2)
    with pytest.raises(ValueError, match=r"'backtrack_ratio' must lie in \(0, 1\); got 1.0"):
        search(step, lambda x: (1.0, 0.0), 0.01, backtrack_ratio=1.0)
    with pytest.raises(ValueError, match="'max_backtracks' must be >= 0"):
        search(step, lambda x: (1.0, 0.0), 0.01, max_backtracks=-1)
    with pytest.raises(ValueError, match="'max_kl' must be > 0"):
        search(step, lambda x: (1.0, 0.0), -0.01)
    with pytest.raises(TypeError, match=r"'evaluate' must return a pair \(improvement, kl\)"):
        search(step, lambda x: 1.0, 0.01)
    with pytest.raises(TypeError, match="its kl is str"):
        search(step, lambda x: (1.0, "small"), 0.01)


# --- rows: S independent problems at once (the seeds of a seed-batched TRPO) --------------------


def block_matvec(matrices: list[torch.Tensor]):
    """v [S, n] ↦ the rows A_s v_s: a block-diagonal operator, as the Fisher matrix of S seeds."""
    return lambda v: torch.stack([a @ row for a, row in zip(matrices, v, strict=True)])


@given(seeds, st.integers(1, 5), st.integers(1, 8), st.sampled_from([0.0, 0.5]))
def test_cg_on_rows_equals_a_call_per_row(seed, rows, n, damping):
    # each row its own SPD matrix and right-hand side; one row is zero (solved before any
    # iteration) and one has A = 3I (solved in one): rows stop at different iterations
    matrices = [spd_matrix(seed + row, n) for row in range(rows)]
    b = torch.randn(rows, n, generator=generator(seed), dtype=F64)
    b[0] = 0.0
    if rows > 1:
        matrices[1] = 3 * torch.eye(n, dtype=F64)
    iterations = max(1, n - 1)
    together = rlgrad.conjugate_gradient(block_matvec(matrices), b, iterations, damping)
    assert together.solution.shape == (rows, n)
    for row in range(rows):
        alone = rlgrad.conjugate_gradient(
            lambda v, a=matrices[row]: a @ v, b[row], iterations, damping
        )
        torch.testing.assert_close(together.solution[row], alone.solution, rtol=1e-12, atol=1e-14)
        ran = len(alone.residual_norms)
        torch.testing.assert_close(
            together.residual_norms[:ran, row], alone.residual_norms, rtol=1e-12, atol=1e-14
        )
        # once a row has stopped its residual stays where it stopped
        assert (together.residual_norms[ran:, row] == together.residual_norms[ran - 1, row]).all()
    assert len(together.residual_norms) == max(
        len(
            rlgrad.conjugate_gradient(
                lambda v, a=a: a @ v, row_b, iterations, damping
            ).residual_norms
        )
        for a, row_b in zip(matrices, b, strict=True)
    )


def test_cg_on_rows_names_the_row_that_is_not_positive_definite():
    matrices = [torch.eye(2, dtype=F64), -torch.eye(2, dtype=F64)]
    with pytest.raises(ValueError, match=r"in row 1 pᵀ\(A \+ λI\)p = -2"):
        rlgrad.conjugate_gradient(block_matvec(matrices), torch.ones(2, 2, dtype=F64))
    # a row already solved is never checked: its zero direction has no curvature to test
    rows = torch.tensor([[1.0, 1.0], [0.0, 0.0]], dtype=F64)
    matrices = [torch.eye(2, dtype=F64), torch.zeros(2, 2, dtype=F64)]
    result = rlgrad.conjugate_gradient(block_matvec(matrices), rows)
    torch.testing.assert_close(result.solution, rows)


@given(seeds, st.integers(1, 5), st.integers(1, 6), st.floats(1e-4, 0.1))
def test_trust_region_step_on_rows_equals_a_call_per_row(seed, rows, n, max_kl):
    matrices = [spd_matrix(seed + row, n) for row in range(rows)]
    s = torch.randn(rows, n, generator=generator(seed), dtype=F64)
    hs = block_matvec(matrices)(s)
    together = rlgrad.trust_region_step(s, hs, max_kl)
    for row in range(rows):
        alone = rlgrad.trust_region_step(s[row], hs[row], max_kl)
        torch.testing.assert_close(together[row], alone, rtol=1e-14, atol=0)


def test_trust_region_step_on_rows_names_the_row_without_curvature():
    s = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    with pytest.raises(ValueError, match=r"got sᵀHs = -1 in row 1"):
        rlgrad.trust_region_step(s, torch.tensor([[2.0, 0.0], [-1.0, 0.0]]), 0.01)


def test_line_search_on_rows_equals_a_search_per_row():
    # row 0: improvement x(3 − x), KL x²/2, δ = 1 from 4: k = 2 (the scalar docstring's case);
    # row 1: improvement x, KL x², from 1: accepted at once; row 2: always worse, rejected after
    # K + 1 tries; row 3: a zero step, rejected without a try; row 4: NaN at k = 0, then fine
    def outcome(row: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.sum()
        if row == 0:
            return x * (3 - x), x**2 / 2
        if row == 1:
            return x, x**2
        if row == 2:
            return -x.abs() - 1, x**2
        if row == 3:
            return x, x
        return (x * torch.nan, x * torch.nan) if x == 2 else (x, x**2 / 8)

    steps = torch.tensor([[4.0], [1.0], [1.0], [0.0], [2.0]], dtype=F64)
    tried = []

    def evaluate(candidate):
        tried.append(candidate.clone())
        pairs = [outcome(row, candidate[row]) for row in range(len(candidate))]
        return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])

    together = rlgrad.backtracking_line_search(steps, evaluate, 1.0, 0.5, max_backtracks=3)
    assert len(tried) == 4  # row 2 keeps searching to the end
    for row in range(len(steps)):
        alone = rlgrad.backtracking_line_search(
            steps[row], lambda x, row=row: outcome(row, x), 1.0, 0.5, max_backtracks=3
        )
        assert bool(together.accepted[row]) == alone.accepted
        assert int(together.backtracks[row]) == alone.backtracks
        assert float(together.kl[row]) == alone.kl
        assert float(together.improvement[row]) == alone.improvement
        assert torch.equal(together.step[row], alone.step)
    assert together.accepted.tolist() == [True, True, False, False, True]
    assert together.backtracks.tolist() == [2, 0, 3, 3, 1]


def test_line_search_on_rows_stops_once_every_row_has_a_step():
    tried = []

    def evaluate(candidate):
        tried.append(candidate)
        return candidate.sum(dim=1), torch.zeros(len(candidate), dtype=candidate.dtype)

    result = rlgrad.backtracking_line_search(torch.ones(3, 2), evaluate, 0.1)
    assert len(tried) == 1 and result.accepted.all() and (result.backtracks == 0).all()


def test_line_search_on_rows_refuses_an_evaluate_that_does_not_return_rows():
    search, steps = rlgrad.backtracking_line_search, torch.ones(3, 2)
    with pytest.raises(ValueError, match=r"must return \[3\] tensors; its kls has shape \(\)"):
        search(steps, lambda x: (x.sum(dim=1), x.sum()), 0.01)
    with pytest.raises(
        TypeError, match="must return floating tensors \\[S\\]; its improvements is float"
    ):
        search(steps, lambda x: (1.0, x.sum(dim=1)), 0.01)


@given(seeds, st.integers(1, 4), st.integers(1, 6))
def test_surrogate_objective_per_row_equals_a_call_per_row_with_its_gradient(seed, rows, width):
    g = generator(seed)
    log_probs = torch.randn(rows, width, generator=g, dtype=F64, requires_grad=True)
    old = torch.randn(rows, width, generator=g, dtype=F64)
    advantages = torch.randn(rows, width, generator=g, dtype=F64)
    mask = torch.rand(rows, width, generator=g) < 0.7
    mask[:, 0] = True  # every row keeps a sample
    together = rlgrad.surrogate_objective(log_probs, old, advantages, mask=mask, dim=1)
    (grad,) = torch.autograd.grad(together.sum(), log_probs)
    for row in range(rows):
        kept = mask[row]
        alone = rlgrad.surrogate_objective(
            log_probs[row, kept], old[row, kept], advantages[row, kept]
        )
        (grad_alone,) = torch.autograd.grad(alone, log_probs)
        torch.testing.assert_close(together[row], alone, rtol=1e-14, atol=1e-15)
        torch.testing.assert_close(grad[row], grad_alone[row], rtol=1e-14, atol=1e-15)
