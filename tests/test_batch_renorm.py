"""Batch renormalisation: a batch worked by hand (r and d clipped and not), torch's BatchNorm1d
during warm-up, the stop-gradient on r and d against finite differences, per-critic statistics
of a stacked ensemble, checkpoints, and refused input."""

from __future__ import annotations

import copy
import io

import pytest
import torch

from rlgrad.errors import BadInputError
from rlgrad.support.batch_renorm import BatchRenorm

F64 = torch.float64

# 4 samples × 2 features, chosen so that the statistics come out round with ε = 4:
#   feature 0: μ_B = 5,  biased var_B = (9 + 1 + 1 + 9)/4 = 5,  σ_B = sqrt(5 + 4) = 3
#   feature 1: μ_B = 10, biased var_B = (64 + 64 + 0 + 0)/4 = 32, σ_B = sqrt(32 + 4) = 6
BATCH = [[2.0, 2.0], [4.0, 18.0], [6.0, 10.0], [8.0, 10.0]]


def worked_layer(**overrides) -> BatchRenorm:
    """The hand-worked layer: ε = 4, m = ½, μ = (2, 0), v = (5, 0) → σ = (3, 2), γ = (2, −1),
    β = (½, 1), renormalising from the first step."""
    settings = dict(eps=4.0, momentum=0.5, warmup_steps=0, dtype=F64) | overrides
    layer = BatchRenorm(2, **settings)
    with torch.no_grad():
        layer.running_mean.copy_(torch.tensor([2.0, 0.0]))
        layer.running_var.copy_(torch.tensor([5.0, 0.0]))
        layer.weight.copy_(torch.tensor([2.0, -1.0]))
        layer.bias.copy_(torch.tensor([0.5, 1.0]))
    return layer


def test_a_batch_by_hand_with_r_and_d_clipped_in_one_feature():
    # r_max = d_max = 2.
    # feature 0: r = σ_B/σ = 3/3 = 1, d = (μ_B − μ)/σ = (5 − 2)/3 = 1: both inside the clip;
    #   x̂ = (x − 5)/3·1 + 1 = (0, 2/3, 4/3, 2),        y = 2x̂ + ½ = (½, 11/6, 19/6, 9/2)
    # feature 1: r = 6/2 = 3 → 2, d = (10 − 0)/2 = 5 → 2: both clipped;
    #   x̂ = (x − 10)/6·2 + 2 = (−2/3, 14/3, 2, 2),      y = −x̂ + 1 = (5/3, −11/3, −1, −1)
    layer = worked_layer(r_max=2.0, d_max=2.0)
    outputs = layer(torch.tensor(BATCH, dtype=F64))
    expected = torch.tensor(
        [[1 / 2, 5 / 3], [11 / 6, -11 / 3], [19 / 6, -1.0], [9 / 2, -1.0]], dtype=F64
    )
    torch.testing.assert_close(outputs, expected, rtol=0, atol=1e-14)
    # μ ← μ + ½(μ_B − μ) = (2 + 3/2, 0 + 5);
    # v ← v + ½(unbiased var_B − v), unbiased var_B = (20/3, 128/3): (5 + 5/6, 64/3)
    torch.testing.assert_close(layer.running_mean, torch.tensor([7 / 2, 5.0], dtype=F64))
    torch.testing.assert_close(layer.running_var, torch.tensor([35 / 6, 64 / 3], dtype=F64))
    assert layer.steps.item() == 1


def test_inside_the_clip_training_output_equals_the_evaluation_output():
    # the paper's point: with r = σ_B/σ and d = (μ_B − μ)/σ unclipped,
    # (x − μ_B)/σ_B·r + d = (x − μ)/σ. r_max = 3.5, d_max = 6 leave feature 1's r = 3, d = 5:
    #   x̂ = (x − 10)/6·3 + 5 = (1, 9, 5, 5) = x/2 = (x − 0)/2, its evaluation-mode value;
    # evaluation: y = (2·(x − 2)/3 + ½, −x/2 + 1) = ((½, 11/6, 19/6, 9/2), (0, −8, −4, −4))
    batch = torch.tensor(BATCH, dtype=F64)
    expected = torch.tensor(
        [[1 / 2, 0.0], [11 / 6, -8.0], [19 / 6, -4.0], [9 / 2, -4.0]], dtype=F64
    )
    trained = worked_layer(r_max=3.5, d_max=6.0)
    evaluated = worked_layer().eval()
    torch.testing.assert_close(trained(batch), expected, rtol=0, atol=1e-14)
    torch.testing.assert_close(evaluated(batch), expected, rtol=0, atol=1e-14)
    # evaluation updates nothing
    torch.testing.assert_close(evaluated.running_mean, torch.tensor([2.0, 0.0], dtype=F64))
    torch.testing.assert_close(evaluated.running_var, torch.tensor([5.0, 0.0], dtype=F64))
    assert evaluated.steps.item() == 0


def test_during_warm_up_the_batch_is_plain_batch_norm_then_renormalised():
    # warm-up of one step: r = 1, d = 0, x̂ = ((x − 5)/3, (x − 10)/6); the second step renormalises
    layer = worked_layer(r_max=2.0, d_max=2.0, warmup_steps=1, momentum=0.0)  # m = 0: μ, v stay
    batch = torch.tensor(BATCH, dtype=F64)
    plain = torch.tensor([[-1.0, -4 / 3], [-1 / 3, 4 / 3], [1 / 3, 0.0], [1.0, 0.0]], dtype=F64)
    expected = plain * torch.tensor([2.0, -1.0], dtype=F64) + torch.tensor([0.5, 1.0], dtype=F64)
    torch.testing.assert_close(layer(batch), expected, rtol=0, atol=1e-14)
    renormalised = worked_layer(r_max=2.0, d_max=2.0)(batch)
    torch.testing.assert_close(layer(batch), renormalised, rtol=0, atol=1e-14)
    assert layer.steps.item() == 2


def shifted_batches(steps: int, shape: tuple[int, ...], seed: int = 0) -> list[torch.Tensor]:
    """Batches whose mean and scale differ from step to step, so r ≠ 1 and d ≠ 0 would show."""
    generator = torch.Generator().manual_seed(seed)
    return [
        3.0 * torch.randn(shape, generator=generator, dtype=F64) * (1 + step) + 2.0 * step
        for step in range(steps)
    ]


@pytest.mark.parametrize(
    "settings",
    [
        {"warmup_steps": 10},  # warm-up: plain batch norm
        {"warmup_steps": 0, "r_max": 1.0, "d_max": 0.0},  # no room to renormalise
    ],
    ids=["warm-up", "r_max=1,d_max=0"],
)
def test_equals_torch_batch_norm_1d_in_both_modes(settings):
    generator = torch.Generator().manual_seed(1)
    reference = torch.nn.BatchNorm1d(3, eps=1e-5, momentum=0.1, dtype=F64)
    layer = BatchRenorm(3, eps=1e-5, momentum=0.1, dtype=F64, **settings)
    with torch.no_grad():
        weight, bias = torch.randn(2, 3, generator=generator, dtype=F64)
        for module in (reference, layer):
            module.weight.copy_(weight)
            module.bias.copy_(bias)
    for batch in shifted_batches(5, (8, 3)):
        upstream = torch.randn(8, 3, generator=generator, dtype=F64)
        results = []
        for module in (reference, layer):
            module.zero_grad()
            inputs = batch.clone().requires_grad_(True)
            outputs = module(inputs)
            outputs.backward(upstream)
            results.append((outputs, inputs.grad, module.weight.grad, module.bias.grad))
        for expected, got in zip(*results, strict=True):
            torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
        # BatchNorm1d's running variance averages the unbiased batch variance, as this one does
        torch.testing.assert_close(layer.running_mean, reference.running_mean, rtol=1e-12, atol=0)
        torch.testing.assert_close(layer.running_var, reference.running_var, rtol=1e-12, atol=0)
    reference.eval(), layer.eval()
    probe = shifted_batches(1, (5, 3), seed=2)[0]
    torch.testing.assert_close(layer(probe), reference(probe), rtol=1e-12, atol=1e-12)


def test_an_ensemble_keeps_per_critic_statistics_like_separate_layers():
    # K = 2 stacked critics [K, B, F]: each slice is normalised as its own layer would do it,
    # in warm-up (= K BatchNorm1d layers) and after it (renormalised), in both modes
    critics, batch_size, features = 2, 6, 3
    stacked = BatchRenorm(features, ensemble=critics, warmup_steps=2, momentum=0.2, dtype=F64)
    separate = [
        BatchRenorm(features, warmup_steps=2, momentum=0.2, dtype=F64) for _ in range(critics)
    ]
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        stacked.weight.copy_(torch.randn(critics, features, generator=generator, dtype=F64))
        stacked.bias.copy_(torch.randn(critics, features, generator=generator, dtype=F64))
        for k, layer in enumerate(separate):
            layer.weight.copy_(stacked.weight[k])
            layer.bias.copy_(stacked.bias[k])
    # the two critics see differently scaled features, so shared statistics would show
    scales = torch.tensor([1.0, 10.0], dtype=F64).view(critics, 1, 1)
    for batch in shifted_batches(5, (critics, batch_size, features)):
        inputs = batch * scales
        outputs = stacked(inputs)
        for k, layer in enumerate(separate):
            torch.testing.assert_close(outputs[k], layer(inputs[k]), rtol=1e-13, atol=1e-13)
            torch.testing.assert_close(stacked.running_mean[k], layer.running_mean)
            torch.testing.assert_close(stacked.running_var[k], layer.running_var)
    stacked.eval()
    probe = shifted_batches(1, (critics, 4, features), seed=4)[0]
    for k, layer in enumerate(separate):
        torch.testing.assert_close(stacked(probe)[k], layer.eval()(probe[k]), rtol=1e-13, atol=0)


def gradient_layer() -> BatchRenorm:
    """r_max = d_max = 2, μ = (4, 0), v = (5, 0), ε = 4: on the worked batch feature 0 has
    r = 3/3 = 1 and d = (5 − 4)/3 = ⅓ inside the clip, feature 1 has r = 3 and d = 5 outside."""
    layer = worked_layer(r_max=2.0, d_max=2.0)
    with torch.no_grad():
        layer.running_mean.copy_(torch.tensor([4.0, 0.0]))
    return layer


def central_differences(function, inputs: torch.Tensor, step: float = 1e-6) -> torch.Tensor:
    gradient = torch.zeros_like(inputs)
    for index in range(inputs.numel()):
        shift = torch.zeros_like(inputs).view(-1)
        shift[index] = step
        shift = shift.view_as(inputs)
        rise = function(inputs + shift) - function(inputs - shift)
        gradient.view(-1)[index] = rise / (2 * step)
    return gradient


def test_no_gradient_flows_through_r_and_d():
    layer = gradient_layer()
    batch = torch.tensor(BATCH, dtype=F64) + 0.1 * torch.arange(8, dtype=F64).view(4, 2)
    weights = torch.tensor([[1.0, -2.0], [0.5, 3.0], [-1.5, 1.0], [2.0, 0.5]], dtype=F64)

    def full_loss(x):  # the layer's whole function, from the same state every call
        return (weights * copy.deepcopy(layer)(x)).sum()

    # r and d at the batch, by the equations, then held fixed
    mean = batch.mean(0)
    std = torch.sqrt(batch.var(0, correction=0) + 4.0)
    running_std = torch.sqrt(layer.running_var + 4.0)
    r = (std / running_std).clamp(0.5, 2.0)
    d = ((mean - layer.running_mean) / running_std).clamp(-2.0, 2.0)
    assert 0.5 < r[0] < 2.0 and -2.0 < d[0] < 2.0  # feature 0 inside the clip
    assert r[1] == 2.0 and d[1] == 2.0  # feature 1 outside

    def frozen_loss(x):  # x̂ = (x − μ_B(x))/σ_B(x)·r + d with r, d constants
        normalized = (x - x.mean(0)) / torch.sqrt(x.var(0, correction=0) + 4.0) * r + d
        return (weights * (layer.weight * normalized + layer.bias)).sum()

    inputs = batch.clone().requires_grad_(True)
    full_loss(inputs).backward()
    with torch.no_grad():
        frozen = central_differences(frozen_loss, batch)
        full = central_differences(full_loss, batch)
    torch.testing.assert_close(inputs.grad, frozen, rtol=0, atol=1e-7)
    # where r and d are clipped they are constant anyway: the full function's slope agrees
    torch.testing.assert_close(inputs.grad[:, 1], full[:, 1], rtol=0, atol=1e-7)
    # inside the clip the full function is (x − μ)/σ, whose slope autograd must not follow
    assert (inputs.grad[:, 0] - full[:, 0]).abs().max() > 0.1


def test_a_state_dict_round_trip_restores_the_layer_exactly():
    settings = dict(ensemble=2, warmup_steps=2, momentum=0.3, dtype=F64)
    layer = BatchRenorm(3, **settings)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    batches = shifted_batches(6, (2, 5, 3))
    upstream = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(5), dtype=F64)
    for batch in batches[:4]:  # two warm-up steps, two renormalised ones
        optimizer.zero_grad()
        (upstream * layer(batch)).sum().backward()
        optimizer.step()
    saved = io.BytesIO()
    torch.save(layer.state_dict(), saved)
    assert set(layer.state_dict()) == {"running_mean", "running_var", "steps", "weight", "bias"}

    restored = BatchRenorm(3, **settings)
    restored.load_state_dict(torch.load(io.BytesIO(saved.getvalue())))
    assert restored.steps.item() == 4
    for name, tensor in layer.state_dict().items():
        assert torch.equal(restored.state_dict()[name], tensor), name
    # without its step count a layer with the same statistics would still be warming up
    forgetful = BatchRenorm(3, **settings)
    forgetful.load_state_dict({**layer.state_dict(), "steps": torch.tensor(0)})
    assert not torch.allclose(forgetful(batches[4]), copy.deepcopy(layer)(batches[4]))
    for batch in batches[4:]:  # training continues bit for bit
        assert torch.equal(restored(batch), layer(batch))
    assert torch.equal(restored.running_var, layer.running_var)
    layer.eval(), restored.eval()
    assert torch.equal(restored(batches[0]), layer(batches[0]))


@pytest.mark.parametrize(
    ("layer", "inputs", "message"),
    [
        (
            BatchRenorm(2),
            torch.zeros(4, 3),
            r"BatchRenorm\(num_features=2\): input must have shape \[B, 2\]; got \(4, 3\)",
        ),
        (BatchRenorm(2), torch.zeros(4), r"BatchRenorm\(num_features=2\): .*\[B, 2\]; got \(4,\)"),
        (
            BatchRenorm(2, ensemble=2),
            torch.zeros(3, 4, 2),
            r"BatchRenorm\(num_features=2, ensemble=2\): input must have shape \[2, B, 2\]; "
            r"got \(3, 4, 2\)",
        ),
        (
            BatchRenorm(2, ensemble=2),
            torch.zeros(4, 2),
            r"BatchRenorm\(num_features=2, ensemble=2\): .*\[2, B, 2\]; got \(4, 2\)",
        ),
        (
            BatchRenorm(2),
            torch.zeros(1, 2),
            r"BatchRenorm\(num_features=2\): a training batch needs B >= 2 .*got shape \(1, 2\)",
        ),
    ],
)
def test_bad_input_is_refused_in_one_line_naming_the_layer(layer, inputs, message):
    with pytest.raises(BadInputError, match="^" + message) as error:
        layer(inputs)
    assert "\n" not in str(error.value)


def test_one_sample_is_fine_in_evaluation_and_a_wrong_dtype_is_refused():
    layer = BatchRenorm(2).eval()
    torch.testing.assert_close(layer(torch.zeros(1, 2)), torch.zeros(1, 2))
    with pytest.raises(TypeError, match=r"dtype torch.float32; got torch.float64"):
        layer(torch.zeros(3, 2, dtype=F64))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"r_max": 0.5}, r"'r_max' must be >= 1; got 0.5"),
        ({"d_max": -1.0}, r"'d_max' must be >= 0"),
        ({"momentum": 1.5}, r"'momentum' must lie in \[0, 1\]"),
        ({"eps": 0.0}, r"'eps' must be > 0"),
        ({"ensemble": 0}, r"'ensemble' must be None or >= 1"),
        ({"warmup_steps": -1}, r"'warmup_steps' must be >= 0"),
    ],
)
def test_hyperparameters_out_of_range_are_refused(settings, message):
    with pytest.raises(BadInputError, match=r"^BatchRenorm\(\): " + message):
        BatchRenorm(2, **settings)
