"""RMSprop over parameters stacked along a leading seed axis: S independent RMSprops in one
optimizer (A2C's optimizer, as :class:`~rlgrad.support.seed_adam.SeedAdam` is PPO's).

RMSprop is elementwise, so one update of the stacked tensors ``[S, ...]`` is S updates; what this
module adds is the ``active`` mask of :meth:`SeedRMSprop.step` (a seed that must not step keeps
its parameters, averages and step count exactly, even if its gradients are NaN) and per-seed
checkpoints in ``torch.optim.RMSprop``'s format. Per-seed gradient clipping is
:func:`~rlgrad.support.seed_adam.clip_grad_norms`.

The update of an active seed is ``torch.optim.RMSprop``'s (``momentum=0``, ``centered=False``,
``weight_decay=0``, ``maximize=False``, the single-tensor arithmetic):

    v ← α v + (1 − α) g²            θ ← θ − lr · g / (√v + ε)

Tieleman & Hinton (2012), "Lecture 6.5 — RMSprop", Coursera: Neural Networks for Machine
Learning, with ε added after the square root as PyTorch does. The step count is kept only
because torch's state_dict holds one; the update does not use it (no bias correction).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor

from rlgrad.errors import BadInputError
from rlgrad.support.seed_adam import _per_seed, _seed_count


class SeedRMSprop:
    """RMSprop over parameters stacked [S, ...]: seed s's slice steps exactly as an ordinary
    ``torch.optim.RMSprop(lr=lr, alpha=alpha, eps=eps)`` of seed s's parameters would.

    Attributes:
        lr: the learning rate of every seed; the trainers anneal it by assigning it.
        alpha, eps: RMSprop's smoothing constant α and ε.
        params: the stacked parameters, updated in place.

    Raises:
        BadInputError: no parameters, parameters of different leading sizes, an lr that is
        negative or not finite, an α outside [0, 1] or a negative ε.

    >>> w = torch.zeros(2, 1, requires_grad=True)  # two seeds of a one-number parameter
    >>> rmsprop = SeedRMSprop([w], lr=0.1, alpha=0.75, eps=0.0)
    >>> w.grad = torch.tensor([[1.0], [-2.0]])
    >>> rmsprop.step(active=torch.tensor([True, False]))  # v = 0.25·1², θ = −0.1·1/√0.25
    >>> w.detach().squeeze(1), rmsprop.steps
    (tensor([-0.2000,  0.0000]), tensor([1, 0]))
    """

    def __init__(self, params: Iterable[Tensor], lr: float, alpha: float = 0.99, eps: float = 1e-8):
        self.params = list(params)
        self.seeds = _seed_count("SeedRMSprop()", self.params)
        self.lr = lr
        if not 0 <= alpha <= 1:
            raise BadInputError(f"SeedRMSprop(): 'alpha' must lie in [0, 1]; got {alpha}")
        if not eps >= 0:
            raise BadInputError(f"SeedRMSprop(): 'eps' must be ≥ 0; got {eps}")
        self.alpha, self.eps = alpha, eps
        self.square_avgs = [torch.zeros_like(p) for p in self.params]
        # step_counts[i, s]: the steps parameter i of seed s has taken (torch counts per
        # parameter, and a parameter whose gradient is None does not step)
        self.step_counts = torch.zeros(
            len(self.params), self.seeds, dtype=torch.int64, device=self.params[0].device
        )

    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise BadInputError(f"SeedRMSprop: 'lr' must be a finite number ≥ 0; got {value!r}")
        self._lr = float(value)

    @property
    def steps(self) -> Tensor:
        """[S] int64: the steps each seed has taken (of its parameters, the most stepped one's)."""
        return self.step_counts.amax(dim=0)

    def zero_grad(self) -> None:
        """Drop every gradient."""
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, active: Tensor | None = None) -> None:
        """One RMSprop step of the seeds where ``active`` [S] (bool) is True, all seeds if None.

        An inactive seed's parameters, averages and step count stay bit for bit as they were,
        whatever its gradients hold (NaN included). A parameter whose ``.grad`` is None does not
        step, for any seed. No host sync.

        Raises:
            BadInputError: ``active`` not a bool tensor of shape (S,) on the parameters' device.
        """
        device = self.step_counts.device
        if active is not None and not (
            isinstance(active, Tensor)
            and (active.dtype, active.shape, active.device) == (torch.bool, (self.seeds,), device)
        ):
            raise BadInputError(
                f"SeedRMSprop.step(): 'active' must be None or a torch.bool tensor of shape "
                f"({self.seeds},) on {device}; got {active!r}"
            )
        increments = 1 if active is None else active.to(torch.int64)  # [S]
        for i, param in enumerate(self.params):
            grad = param.grad
            if grad is None:
                continue
            self.step_counts[i] += increments
            square_avg = (
                self.square_avgs[i].mul(self.alpha).addcmul_(grad, grad, value=1 - self.alpha)
            )
            root = square_avg.sqrt().add_(self.eps)  # √v + ε
            if active is None:
                param.addcdiv_(grad, root, value=-self.lr)
                self.square_avgs[i] = square_avg
            else:
                stepping = _per_seed(active, param)  # [S, 1, ..., 1]
                param.copy_(torch.where(stepping, param.addcdiv(grad, root, value=-self.lr), param))
                self.square_avgs[i] = torch.where(stepping, square_avg, self.square_avgs[i])

    def seed_state(self, seed: int) -> dict:
        """Seed ``seed``'s averages and step counts as the state_dict an ordinary
        ``torch.optim.RMSprop(lr=lr, alpha=alpha, eps=eps)`` of its unstacked parameters would
        write: ``{'state': {i: {'step', 'square_avg'}}, 'param_groups': [...]}``, with no entry
        for a parameter the seed has never stepped. Reads the step counts to the host (meant for
        checkpoints)."""
        self._check_seed("SeedRMSprop.seed_state()", seed)
        group = {
            "lr": self.lr,
            "momentum": 0,
            "alpha": self.alpha,
            "eps": self.eps,
            "centered": False,
            "weight_decay": 0,
            "capturable": False,
            "foreach": None,
            "maximize": False,
            "differentiable": False,
            "params": list(range(len(self.params))),
        }
        step_dtype = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
        state = {
            i: {
                "step": torch.tensor(float(count), dtype=step_dtype),
                "square_avg": self.square_avgs[i][seed].clone(),
            }
            for i, count in enumerate(self.step_counts[:, seed].tolist())
            if count > 0
        }
        return {"state": state, "param_groups": [group]}

    def load_seed_state(self, seed: int, state_dict: dict) -> None:
        """Set seed ``seed``'s averages and step counts from a single-seed state_dict: one
        :meth:`seed_state` wrote, or one an ordinary ``torch.optim.RMSprop`` of the unstacked
        parameters wrote (A2C's checkpoints before the seed axis). A parameter without an entry
        restarts from a zero average and step 0. The lr is not read: the trainer sets it.

        Raises:
            BadInputError: a seed out of range; a state_dict of another number of parameters or
            other shapes; one whose alpha, eps, momentum, centered, weight_decay or maximize this
            optimizer cannot continue.
        """
        function = "SeedRMSprop.load_seed_state()"
        self._check_seed(function, seed)
        ids = [i for group in state_dict["param_groups"] for i in group["params"]]
        if len(ids) != len(self.params):
            raise BadInputError(
                f"{function}: the state_dict holds {len(ids)} parameters; "
                f"this optimizer has {len(self.params)}"
            )
        expected = {"alpha": self.alpha, "eps": self.eps, "momentum": 0, "centered": False}
        expected |= {"weight_decay": 0, "maximize": False}
        for group in state_dict["param_groups"]:
            for name, value in expected.items():
                if group.get(name, value) != value:
                    raise BadInputError(f"{function}: '{name}' must be {value}; got {group[name]}")
        for i, key in enumerate(ids):
            entry = state_dict["state"].get(key)
            if entry is None:
                self.square_avgs[i][seed] = 0
                self.step_counts[i, seed] = 0
                continue
            shape = self.params[i].shape[1:]
            if entry["square_avg"].shape != shape:
                raise BadInputError(
                    f"{function}: parameter {i}'s 'square_avg' must have shape {tuple(shape)}; "
                    f"got {tuple(entry['square_avg'].shape)}"
                )
            step = float(entry["step"])
            if not (step >= 0 and step == int(step)):
                raise BadInputError(
                    f"{function}: parameter {i}'s 'step' must be a whole number ≥ 0; got {step}"
                )
            self.square_avgs[i][seed] = entry["square_avg"]
            self.step_counts[i, seed] = int(step)

    def _check_seed(self, function: str, seed: int) -> None:
        if not (isinstance(seed, int) and 0 <= seed < self.seeds):
            raise BadInputError(
                f"{function}: 'seed' must be an int in [0, {self.seeds}); got {seed!r}"
            )
