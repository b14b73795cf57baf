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

from collections.abc import Iterable

import torch
from torch import Tensor

from rlgrad.errors import BadInputError
from rlgrad.support.seed_adam import SeedOptimizer, broadcast_per_seed


class SeedRMSprop(SeedOptimizer):
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
        super().__init__(params, lr)
        if not 0 <= alpha <= 1:
            raise BadInputError(f"SeedRMSprop(): 'alpha' must lie in [0, 1]; got {alpha}")
        if not eps >= 0:
            raise BadInputError(f"SeedRMSprop(): 'eps' must be ≥ 0; got {eps}")
        self.alpha, self.eps = alpha, eps
        self.square_avgs = [torch.zeros_like(p) for p in self.params]

    @torch.no_grad()
    def step(self, active: Tensor | None = None) -> None:
        """One RMSprop step of the seeds where ``active`` [S] (bool) is True, all seeds if None.

        An inactive seed's parameters, averages and step count stay bit for bit as they were,
        whatever its gradients hold (NaN included). A parameter whose ``.grad`` is None does not
        step, for any seed. No host sync.

        Raises:
            BadInputError: ``active`` not a bool tensor of shape (S,) on the parameters' device.
        """
        self._check_active(active)
        if isinstance(self.lr, list):  # A2C, its one user, anneals every seed alike
            raise BadInputError("SeedRMSprop.step(): 'lr' must be one number for every seed")
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
                stepping = broadcast_per_seed(active, param)  # [S, 1, ..., 1]
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
        }
        return self._seed_state_dict(seed, group, {"square_avg": self.square_avgs})

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
        expected = {"alpha": self.alpha, "eps": self.eps, "momentum": 0, "centered": False}
        expected |= {"weight_decay": 0, "maximize": False}
        for i, entry in enumerate(self._seed_entries(function, state_dict, expected)):
            if entry is None:
                self.square_avgs[i][seed] = 0
                self.step_counts[i, seed] = 0
                continue
            step = self._entry_step(function, i, entry, ("square_avg",))
            self.square_avgs[i][seed] = entry["square_avg"]
            self.step_counts[i, seed] = step
