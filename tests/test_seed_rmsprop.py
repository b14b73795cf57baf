"""SeedRMSprop against S independent torch.optim.RMSprop, as A2C's single-seed trainer used them.

The reference is seed s with its own parameters and its own ``torch.optim.RMSprop(alpha=0.99,
eps=1e-5)``: each step it clips its gradients with ``clip_grad_norm_`` and steps, unless it is
inactive, in which case its RMSprop is not stepped.
"""

from __future__ import annotations

import math

import pytest
import torch

from rlgrad.errors import BadInputError
from rlgrad.support.seed_adam import clip_grad_norms
from rlgrad.support.seed_rmsprop import SeedRMSprop

SEEDS = 3
SHAPES = [(4, 3), (4,), (2, 4)]
ALPHA, EPS, MAX_NORM = 0.99, 1e-5, 0.5


def stacked_parameters(dtype, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(SEEDS, *shape, generator=generator, dtype=dtype) for shape in SHAPES]


def gradients(generator, dtype, step):
    """Per-seed scales around MAX_NORM (some seeds clipped, some not); every fourth step the
    bias has no gradient, so the per-parameter step counts diverge as torch's do."""
    scales = torch.tensor([0.05, 0.5, 4.0], dtype=dtype)
    grads = [
        torch.randn(SEEDS, *shape, generator=generator, dtype=dtype)
        * scales.view(-1, *[1] * len(shape))
        for shape in SHAPES
    ]
    if step % 4 == 3:
        grads[1] = None
    return grads


def train_both(dtype, steps, seed=0):
    """SeedRMSprop and S torch RMSprops on the same gradients, random active seeds and an
    annealed lr; an inactive seed's gradients are NaN, which it must ignore."""
    initial = stacked_parameters(dtype, seed)
    stacked = [p.clone().requires_grad_() for p in initial]
    singles = [[p[s].clone().requires_grad_() for p in initial] for s in range(SEEDS)]
    torches = [torch.optim.RMSprop(ps, lr=0.01, alpha=ALPHA, eps=EPS) for ps in singles]
    ours = SeedRMSprop(stacked, lr=0.01, alpha=ALPHA, eps=EPS)
    generator = torch.Generator().manual_seed(seed + 1)
    for step in range(steps):
        lr = 0.01 * (1 - step / (2 * steps))
        grads = gradients(generator, dtype, step)
        active = torch.rand(SEEDS, generator=generator) < 0.7
        for s in range(SEEDS):
            for p, g in zip(singles[s], grads, strict=True):
                p.grad = None if g is None else g[s].clone()
            torch.nn.utils.clip_grad_norm_(singles[s], MAX_NORM)
            torches[s].param_groups[0]["lr"] = lr
            if active[s]:
                torches[s].step()
            torches[s].zero_grad()
        for p, g in zip(stacked, grads, strict=True):
            p.grad = (
                None if g is None else torch.where(active.view(-1, *[1] * g[0].dim()), g, math.nan)
            )
        clip_grad_norms(stacked, MAX_NORM)
        ours.lr = lr
        ours.step(active)
        ours.zero_grad()
    return stacked, singles, torches, ours


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_each_seed_steps_as_its_own_torch_rmsprop(dtype):
    stacked, singles, torches, ours = train_both(dtype, steps=30)
    # 1 ulp of room: clip_grad_norms may round a seed's norm (hence its clip factor) 1 ulp away
    tolerance = {"rtol": 4 * torch.finfo(dtype).eps, "atol": 4 * torch.finfo(dtype).eps}
    for i, parameter in enumerate(stacked):
        expected = torch.stack([singles[s][i].detach() for s in range(SEEDS)])
        torch.testing.assert_close(parameter.detach(), expected, **tolerance)
        assert torch.isfinite(parameter).all()  # the inactive seeds' NaN gradients went nowhere
    counts = [
        [float(t.state[p]["step"]) for p in ps] for t, ps in zip(torches, singles, strict=True)
    ]
    assert ours.step_counts.T.tolist() == counts
    assert all(0 < c < 30 for row in counts for c in row)  # every seed stepped and sat out


def test_seed_state_is_torch_rmsprops_state_dict_and_loads_back():
    stacked, singles, torches, ours = train_both(torch.float64, steps=12, seed=4)
    for s in range(SEEDS):
        mine, theirs = ours.seed_state(s), torches[s].state_dict()
        assert mine["param_groups"][0].keys() == theirs["param_groups"][0].keys()
        assert mine["state"].keys() == theirs["state"].keys()
        for i, entry in theirs["state"].items():
            assert float(mine["state"][i]["step"]) == float(entry["step"])
            torch.testing.assert_close(mine["state"][i]["square_avg"], entry["square_avg"])
        # and back: a fresh torch RMSprop, and another SeedRMSprop's slice, read it
        torch.optim.RMSprop([p.detach().clone() for p in singles[s]]).load_state_dict(mine)
    fresh = SeedRMSprop([p.detach().clone() for p in stacked], lr=0.01, alpha=ALPHA, eps=EPS)
    fresh.load_seed_state(2, torches[2].state_dict())  # an old A2C checkpoint's optimizer
    assert torch.equal(fresh.step_counts[:, 2], ours.step_counts[:, 2])
    assert not fresh.step_counts[:, :2].any()
    for loaded, trained in zip(fresh.square_avgs, ours.square_avgs, strict=True):
        torch.testing.assert_close(loaded[2], trained[2], rtol=1e-12, atol=1e-15)


def test_refuses_what_it_cannot_continue():
    w = torch.zeros(2, 3, requires_grad=True)
    with pytest.raises(BadInputError, match=r"'alpha' must lie in \[0, 1\]; got 1.5"):
        SeedRMSprop([w], lr=0.1, alpha=1.5)
    rmsprop = SeedRMSprop([w], lr=0.1, alpha=ALPHA, eps=EPS)
    with pytest.raises(BadInputError, match=r"'active' must be None or a torch.bool tensor"):
        rmsprop.step(torch.tensor([1, 0]))
    centered = torch.optim.RMSprop([torch.zeros(3)], centered=True, alpha=ALPHA, eps=EPS)
    with pytest.raises(BadInputError, match="'centered' must be False; got True"):
        rmsprop.load_seed_state(0, centered.state_dict())
    with pytest.raises(BadInputError, match=r"'seed' must be an int in \[0, 2\); got 2"):
        rmsprop.seed_state(2)
