"""Adam over parameters stacked along a leading seed axis: S independent Adams in one optimizer.

Every parameter is a tensor ``[S, ...]`` whose slice ``s`` is the parameter an ordinary
single-seed agent would have. Adam is elementwise, so one update of the stacked tensors is S
updates, except for what this module adds:

- :func:`clip_grad_norms` measures and clips the global gradient norm of each seed on its own;
- :meth:`SeedAdam.step` takes an ``active`` mask: a seed that must not step (its PPO update
  stopped early on the target KL, it diverged and is frozen, it finished) keeps its parameters,
  moments and step count exactly, even if its gradients are NaN;
- each seed (and, as in ``torch.optim.Adam``, each parameter) has its own step count, so the
  bias corrections are per seed.

The update of an active seed is ``torch.optim.Adam``'s (``amsgrad=False``, ``weight_decay=0``,
``maximize=False``, the single-tensor arithmetic), with t the step count after this step:

    m ← m + (1 − β₁)(g − m)              v ← β₂ v + (1 − β₂) g²
    θ ← θ − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)

Kingma & Ba (2015), "Adam", Algorithm 1, with ε added after the bias correction of √v as PyTorch
does. The bias corrections are computed on the device from the per-seed step counts, so a step
reads nothing back to the host.

Checkpoints: :meth:`SeedAdam.state_dict` holds every seed; :meth:`SeedAdam.seed_state` writes one
seed as an ordinary ``torch.optim.Adam`` state_dict of the unstacked parameters, and
:meth:`SeedAdam.load_seed_state` reads it back (or a checkpoint an ordinary Adam wrote).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor

from rlgrad.errors import BadInputError


def _seed_count(function: str, tensors: list[Tensor]) -> int:
    """The leading size S all ``tensors`` share; BadInputError if they do not."""
    if not tensors:
        raise BadInputError(f"{function}: 'parameters' must hold at least one tensor; got none")
    leading = [tuple(t.shape[:1]) for t in tensors]
    if any(t.dim() == 0 for t in tensors) or len(set(leading)) != 1:
        shapes = [tuple(t.shape) for t in tensors]
        raise BadInputError(
            f"{function}: every parameter must be [S, ...] with the same seed count S; "
            f"got shapes {shapes}"
        )
    return tensors[0].shape[0]


def broadcast_per_seed(values: Tensor, like: Tensor) -> Tensor:
    """``values`` [S] shaped [S, 1, ..., 1] to broadcast over ``like`` [S, ...]."""
    return values.view(-1, *([1] * (like.dim() - 1)))


@torch.no_grad()
def clip_grad_norms(parameters: Iterable[Tensor], max_norm: float | None) -> Tensor:
    """Per-seed global gradient norms [S], measured before clipping; with ``max_norm``, each
    seed's gradients scaled in place by ``torch.nn.utils.clip_grad_norm_``'s coefficient.

        ‖g‖ₛ = √(Σ_params Σ_{non-seed dims} gₛ²)      gₛ ← gₛ · min(1, max_norm / (‖g‖ₛ + 10⁻⁶))

    Args:
        parameters: tensors [S, ...] with the same S; those whose ``.grad`` is None are skipped.
        max_norm: the largest norm a seed keeps, or None to measure without clipping.

    Returns:
        norms [S], in the gradients' dtype, on their device (no host sync); zeros if no
        parameter has a gradient.

    Raises:
        BadInputError: parameters of different leading sizes, or ``max_norm`` negative or NaN.

    >>> w = torch.zeros(2, 2)
    >>> w.grad = torch.tensor([[3.0, 4.0], [0.3, 0.4]])
    >>> clip_grad_norms([w], max_norm=1.0)
    tensor([5.0000, 0.5000])
    >>> w.grad  # seed 0 scaled by 1/5 (to norm 1 − 2·10⁻⁷); seed 1 was under the limit
    tensor([[0.6000, 0.8000],
            [0.3000, 0.4000]])
    """
    parameters = list(parameters)
    seeds = _seed_count("clip_grad_norms()", parameters)
    if max_norm is not None and not max_norm >= 0:
        raise BadInputError(
            f"clip_grad_norms(): 'max_norm' must be None or a number ≥ 0; got {max_norm}"
        )
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(seeds, dtype=parameters[0].dtype, device=parameters[0].device)
    # as clip_grad_norm_ does: the norm of each gradient, then the norm of those norms
    norms = torch.linalg.vector_norm(
        torch.stack([torch.linalg.vector_norm(g.reshape(seeds, -1), dim=1) for g in grads]),
        dim=0,
    )  # [S]
    if max_norm is not None:
        # the same expression as torch's, so the coefficient rounds the same way
        coefficients = torch.clamp(max_norm / (norms + 1e-6), max=1.0)  # [S]
        for g in grads:
            g.mul_(broadcast_per_seed(coefficients, g))
    return norms


class SeedOptimizer:
    """What an optimizer of S seeds' stacked parameters keeps besides its own statistics: the
    parameters [S, ...], one lr for every seed, per-parameter per-seed step counts, and the
    checks of an ``active`` mask, a seed index and a single-seed state_dict.
    :class:`SeedAdam` and :class:`~rlgrad.support.seed_rmsprop.SeedRMSprop` build on it."""

    def __init__(self, params: Iterable[Tensor], lr: float):
        self.params = list(params)
        self.seeds = _seed_count(f"{type(self).__name__}()", self.params)
        self.lr = lr
        # step_counts[i, s]: the steps parameter i of seed s has taken. Per parameter as in
        # torch's optimizers, where a parameter whose gradient is None does not count a step.
        self.step_counts = torch.zeros(
            len(self.params), self.seeds, dtype=torch.int64, device=self.params[0].device
        )

    @property
    def lr(self) -> float | list[float]:
        return self._lr

    @lr.setter
    def lr(self, value: float | list[float]) -> None:
        """One lr for every seed, or a list of S, one per seed (seeds that collect whole
        episodes progress at their own pace, and so does an annealed lr)."""

        def valid(x) -> bool:
            return isinstance(x, (int, float)) and math.isfinite(x) and x >= 0

        name = type(self).__name__
        if isinstance(value, (list, tuple)):
            if len(value) != self.seeds or not all(valid(x) for x in value):
                raise BadInputError(
                    f"{name}: 'lr' must be a finite number ≥ 0 or a list of {self.seeds} of "
                    f"them, one per seed; got {value!r}"
                )
            self._lr = [float(x) for x in value]
        elif valid(value):
            self._lr = float(value)
        else:
            raise BadInputError(f"{name}: 'lr' must be a finite number ≥ 0; got {value!r}")

    def seed_lr(self, seed: int) -> float:
        """The learning rate of seed ``seed``."""
        return self._lr[seed] if isinstance(self._lr, list) else self._lr

    @property
    def steps(self) -> Tensor:
        """[S] int64: the steps each seed has taken (of its parameters, the most stepped one's;
        they agree unless some gradient was None)."""
        return self.step_counts.amax(dim=0)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop every gradient (or zero it in place with ``set_to_none=False``)."""
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.detach_().zero_()

    def _check_active(self, active: Tensor | None) -> None:
        """BadInputError unless ``active`` is None or a bool tensor (S,) on the parameters'
        device."""
        if active is not None and not (
            isinstance(active, Tensor)
            and active.dtype == torch.bool
            and active.shape == (self.seeds,)
            and active.device == self.step_counts.device
        ):
            received = (
                f"{active.dtype} of shape {tuple(active.shape)} on {active.device}"
                if isinstance(active, Tensor)
                else type(active).__name__
            )
            raise BadInputError(
                f"{type(self).__name__}.step(): 'active' must be None or a torch.bool tensor of "
                f"shape ({self.seeds},) on {self.step_counts.device}; got {received}"
            )

    def _seed_state_dict(self, seed: int, group: dict, statistics: dict[str, list]) -> dict:
        """Seed ``seed``'s state_dict as a torch optimizer of the unstacked parameters writes
        it: ``group`` (its hyperparameters) with the parameter ids added, and per parameter the
        seed has stepped its ``step`` and its slice of each of ``statistics``
        ({name: [stacked tensor per parameter]}). Reads the step counts to the host."""
        step_dtype = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
        counts = self.step_counts[:, seed].tolist()
        state = {
            i: {
                "step": torch.tensor(float(count), dtype=step_dtype),
                **{name: tensors[i][seed].clone() for name, tensors in statistics.items()},
            }
            for i, count in enumerate(counts)
            if count > 0
        }
        return {"state": state, "param_groups": [{**group, "params": list(range(len(counts)))}]}

    def _check_seed(self, function: str, seed: int) -> None:
        if not (isinstance(seed, int) and 0 <= seed < self.seeds):
            raise BadInputError(
                f"{function}: 'seed' must be an int in [0, {self.seeds}); got {seed!r}"
            )

    def _seed_entries(self, function: str, state_dict: dict, expected: dict) -> list:
        """The per-parameter entries of a single-seed state_dict (None where a parameter has
        none), in this optimizer's order, after checking its parameter count and that each
        group's hyperparameters named in ``expected`` have those values."""
        ids = [i for group in state_dict["param_groups"] for i in group["params"]]
        if len(ids) != len(self.params):
            raise BadInputError(
                f"{function}: the state_dict holds {len(ids)} parameters; "
                f"this optimizer has {len(self.params)}"
            )
        for group in state_dict["param_groups"]:
            for name, value in expected.items():
                received = group.get(name, value)
                received = tuple(received) if isinstance(value, tuple) else received
                if received != value:
                    raise BadInputError(f"{function}: '{name}' must be {value}; got {received}")
        return [state_dict["state"].get(key) for key in ids]

    def _entry_step(self, function: str, index: int, entry: dict, names: tuple) -> int:
        """Parameter ``index``'s entry of a single-seed state_dict checked (each tensor in
        ``names`` of the unstacked parameter's shape, ``step`` a whole number ≥ 0); its step."""
        shape = self.params[index].shape[1:]
        for name in names:
            if entry[name].shape != shape:
                raise BadInputError(
                    f"{function}: parameter {index}'s '{name}' must have shape {tuple(shape)}; "
                    f"got {tuple(entry[name].shape)}"
                )
        step = float(entry["step"])
        if not (step >= 0 and step == int(step)):
            raise BadInputError(
                f"{function}: parameter {index}'s 'step' must be a whole number ≥ 0; got {step}"
            )
        return int(step)


class SeedAdam(SeedOptimizer):
    """Adam over parameters stacked [S, ...]: seed s's slice steps exactly as an ordinary
    ``torch.optim.Adam(lr=lr, betas=betas, eps=eps)`` of seed s's parameters would.

    Attributes:
        lr: the learning rate of every seed, or a list of S, one per seed (seeds that collect
            whole episodes progress at their own pace, and so does an annealed lr); the
            trainers anneal it by assigning it.
        betas, eps: Adam's β₁, β₂ and ε (rlgrad's PPO trainers use ε = 1e-5).
        params: the stacked parameters, updated in place.

    Raises:
        BadInputError: no parameters, parameters of different leading sizes, an lr that is
        negative or not finite, a β outside [0, 1) or a negative ε.

    >>> w = torch.zeros(2, 1, requires_grad=True)  # two seeds of a one-number parameter
    >>> adam = SeedAdam([w], lr=0.1)
    >>> w.grad = torch.tensor([[1.0], [-2.0]])
    >>> adam.step(active=torch.tensor([True, False]))  # first step moves by lr·sign(g)
    >>> w.detach().squeeze(1), adam.steps
    (tensor([-0.1000,  0.0000]), tensor([1, 0]))
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        param_lrs: list[float | None] | None = None,
    ):
        super().__init__(params, lr)
        beta1, beta2 = betas
        if not (0 <= beta1 < 1 and 0 <= beta2 < 1):
            raise BadInputError(f"SeedAdam(): 'betas' must both lie in [0, 1); got {betas}")
        if not eps >= 0:
            raise BadInputError(f"SeedAdam(): 'eps' must be ≥ 0; got {eps}")
        self.betas, self.eps = (beta1, beta2), eps
        self.param_lrs = param_lrs
        self.exp_avgs = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sqs = [torch.zeros_like(p) for p in self.params]
        # each parameter's step count when every seed has the same (None: they differ), kept
        # on the host so that the fused path below needs no sync to know it applies
        self._shared_steps: list[int | None] = [0] * len(self.params)

    @property
    def param_lrs(self) -> list[float | None] | None:
        """A fixed lr per parameter, or None to follow ``lr``: what a second parameter group
        of ``torch.optim.Adam`` gives (TD3's critics at ``critic_lr``); None: all follow lr."""
        return self._param_lrs

    @param_lrs.setter
    def param_lrs(self, values: list[float | None] | None) -> None:
        if values is None:
            self._param_lrs = None
            return
        values = list(values)
        if len(values) != len(self.params) or not all(
            x is None or (isinstance(x, (int, float)) and math.isfinite(x) and x >= 0)
            for x in values
        ):
            raise BadInputError(
                f"SeedAdam(): 'param_lrs' must hold {len(self.params)} entries, each a finite "
                f"number ≥ 0 or None; got {values!r}"
            )
        self._param_lrs = [None if x is None else float(x) for x in values]
        on = self.step_counts.device
        self._fixed = torch.tensor([x is not None for x in values], device=on).unsqueeze(1)
        fixed_lrs = [0.0 if x is None else float(x) for x in values]
        self._fixed_lrs = torch.tensor(fixed_lrs, dtype=torch.float64, device=on).unsqueeze(1)

    @torch.no_grad()
    def step(self, active: Tensor | None = None) -> None:
        """One Adam step of the seeds where ``active`` [S] (bool) is True, all seeds if None.

        An inactive seed's parameters, moments and step count stay bit for bit as they were,
        whatever its gradients hold (NaN included). A parameter whose ``.grad`` is None does not
        step, for any seed. No host sync.

        Raises:
            BadInputError: ``active`` not a bool tensor of shape (S,) on the parameters' device.
        """
        self._check_active(active)
        stepped = [i for i, p in enumerate(self.params) if p.grad is not None]
        if not stepped:
            return
        if active is None and self._fused(stepped):
            return
        increments = 1 if active is None else active.to(torch.int64)  # [S]
        if len(stepped) == len(self.params):
            self.step_counts += increments  # [P, S]
        else:
            for i in stepped:
                self.step_counts[i] += increments
        beta1, beta2 = self.betas
        # the bias corrections, per parameter and seed, in float64 as torch computes them in
        # Python floats; a seed at step 0 (inactive, never stepped) gets 1 to avoid 0/0
        counts = self.step_counts.to(torch.float64)  # [P, S]
        never = counts == 0
        corrections1 = torch.where(never, 1.0, 1 - beta1**counts)
        # lr / x rather than x's reciprocal times lr, which is what `self.lr / tensor` computes
        if isinstance(self.lr, list):
            lrs = torch.tensor(self.lr, dtype=torch.float64, device=corrections1.device)
            step_sizes = lrs.expand_as(corrections1).div(corrections1)  # [P, S]
        else:
            step_sizes = torch.full_like(corrections1, self.lr).div_(corrections1)  # [P, S]
        if self._param_lrs is not None:  # the parameters with an lr of their own
            own = self._fixed_lrs.expand_as(corrections1).div(corrections1)
            step_sizes = torch.where(self._fixed, own, step_sizes)
        correction2_sqrts = torch.where(never, 1.0, 1 - beta2**counts).sqrt()  # [P, S]
        # the same arithmetic as torch's single-tensor Adam, one foreach call per operation
        # over all the stepped parameters (a loop of small ops per parameter cost 6x more)
        params = [self.params[i] for i in stepped]
        grads = [p.grad for p in params]
        dtype = params[0].dtype
        sizes, corrections = step_sizes.to(dtype), correction2_sqrts.to(dtype)  # [P, S]
        exp_avgs = torch._foreach_lerp([self.exp_avgs[i] for i in stepped], grads, 1 - beta1)
        exp_avg_sqs = torch._foreach_mul([self.exp_avg_sqs[i] for i in stepped], beta2)
        torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - beta2)
        denominators = torch._foreach_sqrt(exp_avg_sqs)
        torch._foreach_div_(
            denominators,
            [broadcast_per_seed(corrections[i], p) for i, p in zip(stepped, params, strict=True)],
        )
        torch._foreach_add_(denominators, self.eps)
        updates = torch._foreach_mul(
            exp_avgs,
            [broadcast_per_seed(sizes[i], p) for i, p in zip(stepped, params, strict=True)],
        )
        torch._foreach_div_(updates, denominators)
        if active is None:
            torch._foreach_sub_(params, updates)
            for i, exp_avg, exp_avg_sq in zip(stepped, exp_avgs, exp_avg_sqs, strict=True):
                self.exp_avgs[i], self.exp_avg_sqs[i] = exp_avg, exp_avg_sq
                if self._shared_steps[i] is not None:  # every seed stepped: still shared
                    self._shared_steps[i] += 1
            return
        for i, param, update, exp_avg, exp_avg_sq in zip(
            stepped, params, updates, exp_avgs, exp_avg_sqs, strict=True
        ):
            stepping = broadcast_per_seed(active, param)  # [S, 1, ..., 1]: the seeds that step
            param.copy_(torch.where(stepping, param - update, param))
            self.exp_avgs[i] = torch.where(stepping, exp_avg, self.exp_avgs[i])
            self.exp_avg_sqs[i] = torch.where(stepping, exp_avg_sq, self.exp_avg_sqs[i])
        self._share_steps()  # a masked step may have split the counts (one host sync)

    def _share_steps(self) -> None:
        """Recompute which parameters' seeds share one step count (a host sync: after a masked
        step or a load, never on the usual unmasked step)."""
        counts = self.step_counts.tolist()  # [P][S]
        self._shared_steps = [row[0] if min(row) == max(row) else None for row in counts]

    def _fused(self, stepped: list[int]) -> bool:
        """Step every seed with torch's fused Adam kernel when it gives S independent Adams:
        each stepped parameter's seeds share one step count (so one bias correction), and one
        lr serves every seed. Elementwise, one pass over memory (about 11× faster than the
        general path at MuJoCo sizes); the arithmetic of ``torch.optim.Adam(fused=True)``,
        which rounds otherwise than the single-tensor Adam of the general path (last bits).
        Returns False, changing nothing, where it does not apply."""
        fused = getattr(torch, "_fused_adam_", None)
        steps = [self._shared_steps[i] for i in stepped]
        if fused is None or isinstance(self._lr, list) or None in steps:
            return False
        lrs = self._param_lrs or [None] * len(self.params)
        groups: dict[float, list[int]] = {}
        for i in stepped:
            groups.setdefault(self._lr if lrs[i] is None else lrs[i], []).append(i)
        beta1, beta2 = self.betas
        for lr, members in groups.items():
            on = self.params[members[0]].device
            fused(
                [self.params[i] for i in members],
                [self.params[i].grad for i in members],
                [self.exp_avgs[i] for i in members],
                [self.exp_avg_sqs[i] for i in members],
                [],
                [torch.tensor(float(self._shared_steps[i] + 1), device=on) for i in members],
                amsgrad=False,
                lr=lr,
                beta1=beta1,
                beta2=beta2,
                weight_decay=0.0,
                eps=self.eps,
                maximize=False,
            )
        for i in stepped:
            self._shared_steps[i] += 1
        self.step_counts[stepped] += 1  # [P, S], on the device: no sync
        return True

    def state_dict(self) -> dict:
        """Every seed's moments and step counts (copies) and the hyperparameters, laid out as
        ``torch.optim.Adam``'s state_dict with [S, ...] tensors and ``step`` [S] int64."""
        return {
            "state": {
                i: {
                    "step": self.step_counts[i].clone(),
                    "exp_avg": self.exp_avgs[i].clone(),
                    "exp_avg_sq": self.exp_avg_sqs[i].clone(),
                }
                for i in range(len(self.params))
            },
            "param_groups": [
                {
                    "lr": self.lr,
                    "param_lrs": self.param_lrs,
                    "betas": self.betas,
                    "eps": self.eps,
                    "params": list(range(len(self.params))),
                }
            ],
        }

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore what :meth:`state_dict` returned (the lr, betas and eps too).

        Raises:
            BadInputError: a state_dict of a different number of parameters or other shapes.
        """
        group = state_dict["param_groups"][0]
        entries = [state_dict["state"][i] for i in group["params"]]
        if len(entries) != len(self.params):
            raise BadInputError(
                f"SeedAdam.load_state_dict(): the state_dict holds {len(entries)} parameters; "
                f"this optimizer has {len(self.params)}"
            )
        for entry, param in zip(entries, self.params, strict=True):
            for name, shape in (("exp_avg", param.shape), ("exp_avg_sq", param.shape)):
                if entry[name].shape != shape:
                    raise BadInputError(
                        f"SeedAdam.load_state_dict(): '{name}' must have shape {tuple(shape)}; "
                        f"got {tuple(entry[name].shape)}"
                    )
            if entry["step"].shape != (self.seeds,):
                raise BadInputError(
                    f"SeedAdam.load_state_dict(): 'step' must have shape ({self.seeds},); "
                    f"got {tuple(entry['step'].shape)}"
                )
        self.lr, self.betas, self.eps = group["lr"], tuple(group["betas"]), group["eps"]
        self.param_lrs = group.get("param_lrs")
        self.exp_avgs = [
            e["exp_avg"].to(p, copy=True) for e, p in zip(entries, self.params, strict=True)
        ]
        self.exp_avg_sqs = [
            e["exp_avg_sq"].to(p, copy=True) for e, p in zip(entries, self.params, strict=True)
        ]
        steps = torch.stack([e["step"] for e in entries])  # [P, S]
        self.step_counts = steps.to(self.step_counts, copy=True)
        self._share_steps()

    def seed_state(self, seed: int) -> dict:
        """Seed ``seed``'s moments and step counts as the state_dict an ordinary
        ``torch.optim.Adam(lr=lr, betas=betas, eps=eps)`` of its unstacked parameters would
        write: ``{'state': {i: {'step', 'exp_avg', 'exp_avg_sq'}}, 'param_groups': [...]}``, with
        no entry for a parameter the seed has never stepped. Reads the step counts to the host
        (meant for checkpoints, not for every step)."""
        self._check_seed("SeedAdam.seed_state()", seed)
        # the group of a plain Adam; torch's Adam fills any key a newer version adds when it
        # loads this (building one here instead would import torch._dynamo: 1.3 s per process)
        group = {
            "lr": self.seed_lr(seed),
            "betas": self.betas,
            "eps": self.eps,
            "weight_decay": 0,
            "amsgrad": False,
            "maximize": False,
            "foreach": None,
            "capturable": False,
            "differentiable": False,
            "fused": None,
            "decoupled_weight_decay": False,
        }
        statistics = {"exp_avg": self.exp_avgs, "exp_avg_sq": self.exp_avg_sqs}
        return self._seed_state_dict(seed, group, statistics)

    def load_seed_state(self, seed: int, state_dict: dict) -> None:
        """Set seed ``seed``'s moments and step counts from a single-seed state_dict: one
        :meth:`seed_state` wrote, or one an ordinary ``torch.optim.Adam`` of the unstacked
        parameters wrote (its groups' parameters in order are this optimizer's). A parameter
        without an entry restarts from zero moments and step 0. The lr is not read: the trainer
        sets it.

        Raises:
            BadInputError: a seed out of range; a state_dict of another number of parameters or
            other shapes; one whose betas, eps, amsgrad, weight_decay or maximize this optimizer
            cannot continue.
        """
        function = "SeedAdam.load_seed_state()"
        self._check_seed(function, seed)
        expected = {"betas": self.betas, "eps": self.eps, "amsgrad": False}
        expected |= {"weight_decay": 0, "maximize": False}
        for i, entry in enumerate(self._seed_entries(function, state_dict, expected)):
            if entry is None:
                self.exp_avgs[i][seed] = 0
                self.exp_avg_sqs[i][seed] = 0
                self.step_counts[i, seed] = 0
                continue
            step = self._entry_step(function, i, entry, ("exp_avg", "exp_avg_sq"))
            self.exp_avgs[i][seed] = entry["exp_avg"]
            self.exp_avg_sqs[i][seed] = entry["exp_avg_sq"]
            self.step_counts[i, seed] = step
        self._share_steps()
