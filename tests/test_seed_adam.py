"""SeedAdam and clip_grad_norms against S independent torch.optim.Adam and clip_grad_norm_.

The reference is what a single-seed trainer does: seed s has its own parameters and its own
``torch.optim.Adam(eps=1e-5)``; each step it clips its gradients with ``clip_grad_norm_`` and
steps, unless it is inactive, in which case its gradients are dropped and its Adam not stepped.
"""

from __future__ import annotations

import re

import pytest
import torch
from torch.testing import assert_close

from rlgrad.errors import BadInputError
from rlgrad.support.seed_adam import SeedAdam, clip_grad_norms

SEEDS = 4
SHAPES = [(5, 3), (5,), (2, 5), (2,)]  # an MLP's two layers: weights and biases
MAX_NORM = 0.5
EPS = 1e-5
# Measured over the 30 steps of test_matches_independent_torch_adams: the float32 parameters
# equal torch's bit for bit, the float64 ones to 1 ulp (one element in 3840: β^t is computed
# by torch.pow on the device, by Python's ** in torch); the norms to 1 ulp (summation order).
TOLERANCES = {
    torch.float64: {"rtol": 1e-12, "atol": 1e-15},
    torch.float32: {"rtol": 4 * torch.finfo(torch.float32).eps, "atol": 1e-7},
}


class Reference:
    """S ordinary agents: their own parameters, their own torch Adams."""

    def __init__(self, stacked: list[torch.Tensor], lr: float):
        self.params = [
            [p[s].detach().clone().requires_grad_() for p in stacked] for s in range(SEEDS)
        ]
        self.adams = [torch.optim.Adam(ps, lr=lr, eps=EPS) for ps in self.params]

    def step(self, grads: list[torch.Tensor | None], active: torch.Tensor, lr):
        """Per seed: clip (every seed, to measure its norm), then step the active ones with lr
        (or lr[s])."""
        norms = []
        for s in range(SEEDS):
            for p, g in zip(self.params[s], grads, strict=True):
                p.grad = None if g is None else g[s].clone()
            norms.append(torch.nn.utils.clip_grad_norm_(self.params[s], MAX_NORM))
            self.adams[s].param_groups[0]["lr"] = lr[s] if isinstance(lr, list) else lr
            if active[s]:
                self.adams[s].step()
            self.adams[s].zero_grad()
        return torch.stack(norms)

    def stacked(self) -> list[torch.Tensor]:
        return [torch.stack([ps[i].detach() for ps in self.params]) for i in range(len(SHAPES))]


def random_problem(dtype: torch.dtype, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    stacked = [
        torch.randn(SEEDS, *shape, generator=generator, dtype=dtype).requires_grad_()
        for shape in SHAPES
    ]
    return generator, stacked


def random_grads(generator: torch.Generator, dtype: torch.dtype, step: int):
    """Gradients whose per-seed scales straddle MAX_NORM, so some seeds are clipped and some not;
    on every fifth step the second parameter has no gradient."""
    scales = torch.tensor([0.02, 0.1, 1.0, 5.0], dtype=dtype)
    grads = [
        torch.randn(SEEDS, *shape, generator=generator, dtype=dtype)
        * scales.view(-1, *[1] * len(shape))
        for shape in SHAPES
    ]
    if step % 5 == 4:
        grads[1] = None
    return grads


def run_both(dtype: torch.dtype, steps: int, seed: int = 0, per_seed_lr: bool = False):
    """Step SeedAdam and the reference side by side with random active masks and an annealed
    lr (with ``per_seed_lr``, each seed's annealed at its own pace); yield after each step."""
    generator, stacked = random_problem(dtype, seed)
    reference = Reference(stacked, lr=1e-2)
    adam = SeedAdam(stacked, lr=1e-2, eps=EPS)
    for step in range(steps):
        lr = 1e-2 * (1 - step / (steps + 5))
        if per_seed_lr:
            lr = [1e-2 * (1 - step * (s + 1) / (SEEDS * steps + 5)) for s in range(SEEDS)]
        grads = random_grads(generator, dtype, step)
        active = torch.rand(SEEDS, generator=generator) < 0.7
        expected_norms = reference.step(grads, active, lr)
        for p, g in zip(stacked, grads, strict=True):
            p.grad = None if g is None else g.clone()
        norms = clip_grad_norms(stacked, MAX_NORM)
        adam.lr = lr
        adam.step(active)
        adam.zero_grad()
        yield reference, adam, stacked, norms, expected_norms


@pytest.mark.parametrize("per_seed_lr", [False, True], ids=["one_lr", "lr_per_seed"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_matches_independent_torch_adams(dtype, per_seed_lr):
    for reference, _, stacked, norms, expected_norms in run_both(
        dtype, steps=30, per_seed_lr=per_seed_lr
    ):
        assert_close(norms, expected_norms, **TOLERANCES[dtype])
        for got, expected in zip(stacked, reference.stacked(), strict=True):
            assert_close(got.detach(), expected, **TOLERANCES[dtype])
    # every seed stepped and sat out at least once, so both paths were compared
    steps = torch.tensor([[float(a.state[p]["step"]) for p in a.state] for a in reference.adams])
    assert ((steps > 0) & (steps < 30)).all()


def test_clipping_scales_only_seeds_over_the_limit():
    # seed 0: gradient (3, 4) over two parameters, norm 5, scaled by 0.5 / (5 + 1e-6);
    # seed 1: (0.3, 0), norm 0.3 < 0.5, unchanged
    a, b = torch.zeros(2, 1, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
    a.grad = torch.tensor([[3.0], [0.3]], dtype=torch.float64)
    b.grad = torch.tensor([4.0, 0.0], dtype=torch.float64)
    unused = torch.zeros(2, 7)  # no gradient: skipped
    norms = clip_grad_norms([a, unused, b], MAX_NORM)
    assert_close(norms, torch.tensor([5.0, 0.3], dtype=torch.float64), rtol=1e-15, atol=0)
    coefficient = 0.5 / (5 + 1e-6)
    exact = {"rtol": 1e-15, "atol": 0}
    assert_close(a.grad[:, 0], torch.tensor([3 * coefficient, 0.3], dtype=torch.float64), **exact)
    assert_close(b.grad, torch.tensor([4 * coefficient, 0.0], dtype=torch.float64), **exact)
    # max_norm None measures only: seed 0 is now at 5 · 0.5 / (5 + 1e-6)
    measured = clip_grad_norms([a, b], None)
    assert_close(measured, torch.tensor([5 * coefficient, 0.3], dtype=torch.float64), **exact)
    assert_close(b.grad, torch.tensor([4 * coefficient, 0.0], dtype=torch.float64), **exact)


def test_inactive_seed_with_nan_gradient_is_untouched():
    dtype = torch.float64
    generator, stacked = random_problem(dtype)
    reference = Reference(stacked, lr=1e-2)
    adam = SeedAdam(stacked, lr=1e-2, eps=EPS)
    everyone = torch.ones(SEEDS, dtype=torch.bool)
    for step in range(3):  # some history, so seed 2 has moments to lose
        grads = random_grads(generator, dtype, step)
        reference.step(grads, everyone, 1e-2)
        for p, g in zip(stacked, grads, strict=True):
            p.grad = g.clone()
        clip_grad_norms(stacked, MAX_NORM)
        adam.step()
    before = adam.state_dict()
    seed2 = [p[2].clone() for p in stacked]

    grads = random_grads(generator, dtype, 0)
    grads[0][2, 1, 1] = float("nan")
    active = torch.tensor([True, True, False, True])
    reference.step(grads, active, 1e-2)
    for p, g in zip(stacked, grads, strict=True):
        p.grad = g.clone()
    norms = clip_grad_norms(stacked, MAX_NORM)
    assert norms.isnan().tolist() == [False, False, True, False]
    adam.step(active)

    for got, expected in zip(stacked, reference.stacked(), strict=True):
        assert_close(got.detach(), expected, rtol=1e-12, atol=1e-15)
    for got, kept in zip(stacked, seed2, strict=True):
        assert torch.equal(got[2], kept)
    after = adam.state_dict()["state"]
    for i in range(len(SHAPES)):
        for name in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(after[i][name][2], before["state"][i][name][2])
            assert not after[i][name].isnan().any()
        assert after[i]["step"].tolist() == [4, 4, 3, 4]
    for s in (0, 1, 3):
        assert_state_equal(adam.seed_state(s), reference.adams[s].state_dict())


def assert_state_equal(got: dict, expected: dict) -> None:
    assert got["param_groups"] == expected["param_groups"]
    assert got["state"].keys() == expected["state"].keys()
    for i, entry in expected["state"].items():
        assert got["state"][i].keys() == entry.keys()
        for name, value in entry.items():
            assert_close(got["state"][i][name], value, rtol=1e-12, atol=1e-15)


def test_seed_state_is_torch_adams_state_dict():
    reference, adam, *_ = list(run_both(torch.float64, steps=12))[-1]
    for s in range(SEEDS):
        assert_state_equal(adam.seed_state(s), reference.adams[s].state_dict())


def test_load_seed_state_from_torch_adam_then_continue():
    dtype = torch.float64
    steps = 10
    # the reference runs 10 steps, then seed 1's torch Adam checkpoint is loaded into a fresh
    # SeedAdam whose seed-1 parameters are the reference's; both continue for 10 more steps
    trajectory = run_both(dtype, steps=2 * steps, seed=1)
    for _ in range(steps):
        reference, adam, stacked, *_ = next(trajectory)
    checkpoint = reference.adams[1].state_dict()
    params = [p.detach().clone().requires_grad_() for p in stacked]
    resumed = SeedAdam(params, lr=adam.lr, eps=EPS)
    resumed.load_seed_state(1, checkpoint)
    assert resumed.steps[1] == adam.steps[1] > 0
    generator = torch.Generator().manual_seed(7)
    for step in range(steps):
        grads = random_grads(generator, dtype, step)
        active = torch.tensor([False, True, False, False])
        reference.step(grads, active, 1e-3)
        for p, g in zip(params, grads, strict=True):
            p.grad = None if g is None else g.clone()
        clip_grad_norms(params, MAX_NORM)
        resumed.lr = 1e-3
        resumed.step(active)
    for got, expected in zip(params, reference.stacked(), strict=True):
        assert_close(got[1].detach(), expected[1], rtol=1e-12, atol=1e-15)
    assert_state_equal(resumed.seed_state(1), reference.adams[1].state_dict())
    # and back: an ordinary torch Adam loads what seed_state wrote
    adam_again = torch.optim.Adam([p[1].detach().clone() for p in params], lr=1e-3, eps=EPS)
    adam_again.load_state_dict(resumed.seed_state(1))
    assert_state_equal(adam_again.state_dict(), reference.adams[1].state_dict())


def test_state_dict_round_trip_continues_exactly():
    # save, let the original continue, then load the save into a fresh optimizer and replay the
    # same gradients: the state_dict must be a snapshot, and loading it must lose nothing
    dtype = torch.float32
    _, adam, stacked, *_ = list(run_both(dtype, steps=6))[-1]
    saved, saved_params = adam.state_dict(), [p.detach().clone() for p in stacked]
    generator = torch.Generator().manual_seed(3)
    replay = [
        (random_grads(generator, dtype, step), torch.rand(SEEDS, generator=generator) < 0.6)
        for step in range(8)
    ]
    params = [p.clone().requires_grad_() for p in saved_params]
    resumed = SeedAdam(params, lr=1.0)
    for optimizer, ps in ((adam, stacked), (resumed, params)):
        if optimizer is resumed:
            resumed.load_state_dict(saved)
            assert resumed.lr == adam.lr
        for grads, active in replay:
            for p, g in zip(ps, grads, strict=True):
                p.grad = None if g is None else g.clone()
            optimizer.step(active)
    for continued, loaded in zip(stacked, params, strict=True):
        assert torch.equal(continued, loaded)
    assert torch.equal(adam.step_counts, resumed.step_counts)
    assert (adam.step_counts > 6).any()


def test_bad_input_is_refused():
    with pytest.raises(BadInputError, match=r"SeedAdam\(\).*same seed count.*\(3, 2\), \(4,\)"):
        SeedAdam([torch.zeros(3, 2), torch.zeros(4)], lr=1e-3)
    with pytest.raises(BadInputError, match=r"clip_grad_norms\(\).*same seed count"):
        clip_grad_norms([torch.zeros(3, 2), torch.zeros(4)], 0.5)
    adam = SeedAdam([torch.zeros(3, 2)], lr=1e-3)
    with pytest.raises(BadInputError, match=r"'lr' must be a finite number ≥ 0; got -0\.1"):
        adam.lr = -0.1
    with pytest.raises(BadInputError, match=r"'lr' must be .*; got -1"):
        SeedAdam([torch.zeros(3, 2)], lr=-1)
    with pytest.raises(BadInputError, match=r"a list of 3 of them, one per seed; got \[0\.1\]"):
        adam.lr = [0.1]
    adam.lr = [0.1, 0.2, 0.3]  # one per seed: each seed's checkpoint holds its own
    assert [adam.seed_state(s)["param_groups"][0]["lr"] for s in range(3)] == [0.1, 0.2, 0.3]
    wrong = {
        "torch.float32 of shape (3,) on cpu": torch.ones(3),
        "torch.bool of shape (2,) on cpu": torch.ones(2, dtype=torch.bool),
        "torch.bool of shape (3, 1) on cpu": torch.ones(3, 1, dtype=torch.bool),
        "torch.bool of shape (3,) on meta": torch.ones(3, dtype=torch.bool, device="meta"),
        "list": [True, True, True],
    }
    for received, active in wrong.items():
        expected = r"SeedAdam\.step\(\): 'active' must be .* shape \(3,\) on cpu"
        message = f"{expected}; got {re.escape(received)}"
        with pytest.raises(BadInputError, match=message):
            adam.step(active)
    with pytest.raises(BadInputError, match=r"load_seed_state\(\): 'seed' .*\[0, 3\); got 3"):
        adam.load_seed_state(3, adam.seed_state(0))
    other = torch.optim.Adam([torch.zeros(2, requires_grad=True)], lr=1e-3, betas=(0.5, 0.9))
    with pytest.raises(
        BadInputError, match=r"'betas' must be \(0\.9, 0\.999\); got \(0\.5, 0\.9\)"
    ):
        adam.load_seed_state(0, other.state_dict())


def step_both(references: list, stacked: list, adam: SeedAdam, grads: list) -> None:
    """One step of every seed's own torch Adam (seed s's slice of ``grads``) and of SeedAdam
    (the stacked ``grads``); a None gradient leaves its parameter out of both."""
    for s, reference in enumerate(references):
        params = [p for group in reference.param_groups for p in group["params"]]
        for p, g in zip(params, grads, strict=True):
            p.grad = None if g is None else g[s].clone()
        reference.step()
    for p, g in zip(stacked, grads, strict=True):
        p.grad = None if g is None else g.clone()
    adam.step()


def test_param_lrs_are_torch_adams_second_parameter_group():
    # TD3's critics at critic_lr beside the actor at lr: one torch Adam per seed with two groups
    # (the first two parameters at lr, the last two at their own), against SeedAdam's param_lrs
    dtype = torch.float32
    generator, stacked = random_problem(dtype, seed=5)
    references = [
        torch.optim.Adam(
            [
                {"params": [p[s].detach().clone().requires_grad_() for p in stacked[:2]]},
                {
                    "params": [p[s].detach().clone().requires_grad_() for p in stacked[2:]],
                    "lr": 3e-3,
                },
            ],
            lr=1e-2,
            eps=EPS,
        )
        for s in range(SEEDS)
    ]
    adam = SeedAdam(stacked, lr=1e-2, eps=EPS, param_lrs=[None, None, 3e-3, 3e-3])
    for step in range(12):
        step_both(references, stacked, adam, random_grads(generator, dtype, step))
    for i, got in enumerate(stacked):
        expected = torch.stack(
            [[p for g in r.param_groups for p in g["params"]][i].detach() for r in references]
        )
        assert_close(got.detach(), expected, **TOLERANCES[dtype])
    assert adam.state_dict()["param_groups"][0]["param_lrs"] == [None, None, 3e-3, 3e-3]
    restored = SeedAdam([p.detach().clone() for p in stacked], lr=1.0)
    restored.load_state_dict(adam.state_dict())
    assert restored.param_lrs == [None, None, 3e-3, 3e-3] and restored.lr == 1e-2
    with pytest.raises(BadInputError, match=r"'param_lrs' must hold 4 entries.*got \[0\.1\]"):
        SeedAdam(stacked, lr=1e-2, param_lrs=[0.1])
    with pytest.raises(BadInputError, match=r"'param_lrs' must hold 4 entries.*-1"):
        SeedAdam(stacked, lr=1e-2, param_lrs=[None, None, None, -1])


def test_when_every_seed_steps_alike_it_is_torchs_fused_adam():
    # the usual step (every seed stepping, one shared step count per parameter) runs torch's
    # fused kernel on the stacked tensors: S fused Adams, up to where an element falls in the
    # kernel's vector lanes (measured: within 1 ulp); a masked step splits the counts, and the
    # general path takes over for the parameters whose seeds differ
    dtype = torch.float32
    generator, stacked = random_problem(dtype, seed=6)
    references = [
        torch.optim.Adam([p[s].detach().clone() for p in stacked], lr=1e-2, eps=EPS, fused=True)
        for s in range(SEEDS)
    ]
    adam = SeedAdam(stacked, lr=1e-2, eps=EPS)
    for step in range(10):
        step_both(references, stacked, adam, random_grads(generator, dtype, step))
    for i, got in enumerate(stacked):
        expected = torch.stack([r.param_groups[0]["params"][i].detach() for r in references])
        assert_close(got.detach(), expected, rtol=torch.finfo(dtype).eps, atol=1e-7)
        assert (got.detach() == expected).float().mean() > 0.5  # mostly bit for bit
    assert adam._shared_steps == [10, 8, 10, 10]  # the second parameter skipped two steps
    for p in stacked:
        p.grad = torch.ones_like(p)
    adam.step(torch.tensor([True, False, True, True]))
    assert adam._shared_steps == [None] * 4
    assert adam.step_counts[:, 1].tolist() == [10, 8, 10, 10]
