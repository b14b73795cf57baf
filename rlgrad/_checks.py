"""Input guards shared by the formula layer.

Every public formula validates its arguments before computing, so that a wrong shape, a wrong
dtype, a stray NaN or a hyperparameter out of range fails loudly with a message naming the
function, the argument, what was expected and what arrived, instead of broadcasting silently.

Under ``torch.func.vmap`` the checks that read values skip themselves. A trainer that runs many
seeds in one process maps the formulas over a leading seed axis, and vmap cannot turn a per-seed
value into the one Python ``bool`` an ``if`` needs (``.item()`` on a batched tensor is refused).
Such a trainer guards non-finite values per seed itself, on the unbatched losses it gets back,
where one diverging seed need not stop the others. The checks that read only shapes, dtypes,
devices and Python numbers stay on: they are the same for every seed. A formula takes
:func:`batched` tensors through the same arithmetic as plain ones.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import torch
from torch import Tensor
from torch._C import _functorch  # no public test for a vmap-batched tensor exists yet

from rlgrad.errors import BadInputError


class NonFiniteError(BadInputError):
    """A formula got NaN or inf where it needs finite numbers.

    A BadInputError (so a ValueError) like every other input error, with its own class so that a
    trainer can tell a diverging run (this) from a bad argument (any other BadInputError).
    """


def batched(x: Tensor) -> bool:
    """True when ``x`` is batched by ``torch.func.vmap``, at any level of functorch's wrapping.

    Under vmap and autograd transforms together a tensor can be a GradTrackingTensor around a
    BatchedTensor (``vmap(grad(f))``) or the other way round (``grad(vmap(f))``), so every
    wrapper is looked through, not only the outermost. A plain tensor costs one call: it is no
    functorch wrapper at all. Tensors under ``torch.func.grad`` alone are not batched: their
    values can be read, and they are checked as usual.
    """
    while _functorch.is_functorch_wrapped_tensor(x):
        if _functorch.is_batchedtensor(x):
            return True
        x = _functorch.get_unwrapped(x)
    return False


def _location(mask: Tensor) -> tuple[int, ...]:
    return tuple(int(i) for i in mask.nonzero()[0].tolist())


def tensor(fn: str, name: str, x: object, *, floating: bool = True) -> Tensor:
    """``x`` if it is a tensor (of floating dtype when ``floating``), else a TypeError."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{fn}(): '{name}' must be a torch.Tensor; got {type(x).__name__}")
    _dense(fn, name, x)
    if floating and not x.is_floating_point():
        raise TypeError(f"{fn}(): '{name}' must be a floating-point tensor; got dtype {x.dtype}")
    return x


def _dense(fn: str, name: str, x: Tensor) -> None:
    """Refuse sparse and other non-strided layouts, which most formulas' ops do not support."""
    if x.layout is not torch.strided:
        raise TypeError(
            f"{fn}(): '{name}' must be a dense (strided) tensor; got layout {x.layout} "
            f"(convert with .to_dense())"
        )


def all_finite(x: Tensor) -> bool:
    """True when every entry of ``x`` is finite.

    One reduction instead of an elementwise test: the sum of finite numbers is finite unless it
    overflows, and only then (or for a real NaN/inf) is the elementwise test needed. Trainers call
    the formulas thousands of times on small tensors, where each extra op costs more than the math.
    Always True for a :func:`batched` tensor, whose values vmap does not let Python read.
    """
    if batched(x):
        return True
    if x.numel() == 0 or math.isfinite(float(x.detach().sum())):
        return True
    return bool(torch.isfinite(x).all())


def finite(fn: str, name: str, x: Tensor) -> Tensor:
    """Raise ValueError naming the first NaN or infinite entry of ``x`` (not checked under vmap)."""
    if all_finite(x):
        return x
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        where = _location(bad)
        raise NonFiniteError(
            f"{fn}(): '{name}' must be finite; got {x[where].item()} at index {where}"
        )
    return x


def non_empty(fn: str, name: str, x: Tensor) -> Tensor:
    """Refuse an empty batch: the mean a loss takes over it would be a silent NaN."""
    if x.numel() == 0:
        raise BadInputError(
            f"{fn}(): '{name}' must hold at least one sample; got an empty batch of shape "
            f"{tuple(x.shape)}"
        )
    return x


def same_shape(fn: str, name: str, x: Tensor, ref_name: str, ref: Tensor) -> None:
    if x.shape != ref.shape:
        raise BadInputError(
            f"{fn}(): '{name}' must have the shape of '{ref_name}' {tuple(ref.shape)}; "
            f"got {tuple(x.shape)}"
        )


def same_kind(fn: str, name: str, x: Tensor, ref_name: str, ref: Tensor) -> None:
    """Refuse mixed dtypes or devices, which torch would silently promote or fail on later."""
    if x.dtype != ref.dtype:
        raise TypeError(
            f"{fn}(): '{name}' must have the dtype of '{ref_name}' ({ref.dtype}); got {x.dtype} "
            f"(convert with .to({ref_name}.dtype))"
        )
    if x.device != ref.device:
        raise BadInputError(
            f"{fn}(): '{name}' must be on the device of '{ref_name}' ({ref.device}); got {x.device}"
        )


def floats(
    fn: str, name: str, x: object, ref_name: str | None = None, ref: Tensor | None = None
) -> Tensor:
    """A finite floating-point tensor, shaped, typed and placed like ``ref`` when one is given."""
    x = tensor(fn, name, x)
    if ref is not None:
        ref_name = ref_name or "reference"
        same_shape(fn, name, x, ref_name, ref)
        same_kind(fn, name, x, ref_name, ref)
    return finite(fn, name, x)


def flags(fn: str, name: str, x: object, ref_name: str, ref: Tensor) -> Tensor:
    """Bool or 0/1 numeric flags shaped like ``ref``, as a bool tensor; 0.5 or NaN is refused.

    Under vmap the values are not checked, and any nonzero entry counts as true.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{fn}(): '{name}' must be a torch.Tensor of flags; got {type(x).__name__}")
    _dense(fn, name, x)
    same_shape(fn, name, x, ref_name, ref)
    if x.device != ref.device:
        raise BadInputError(
            f"{fn}(): '{name}' must be on the device of '{ref_name}' ({ref.device}); got {x.device}"
        )
    if x.dtype == torch.bool:
        return x
    if x.is_complex():
        raise TypeError(f"{fn}(): '{name}' must hold bool or 0/1 flags; got dtype {x.dtype}")
    if batched(x):
        return x != 0
    not_binary = (x != 0) & (x != 1)
    if bool(not_binary.any()):
        where = _location(not_binary)
        raise BadInputError(
            f"{fn}(): '{name}' must hold only 0/1 (or bool) flags; got {x[where].item()} "
            f"at index {where}"
        )
    return x != 0


def number(fn: str, name: str, value: object) -> float:
    """A finite real Python number (or 0-dim tensor) as a float."""
    if type(value) is not float:  # a float, the usual case, skips the abstract-class checks
        if isinstance(value, Tensor):
            if value.numel() != 1:
                raise TypeError(
                    f"{fn}(): '{name}' must be a number; got a tensor of shape {tuple(value.shape)}"
                )
            if batched(value):
                raise TypeError(
                    f"{fn}(): '{name}' must be a number, the same for every row under vmap; got a "
                    f"tensor batched by vmap (pass it with in_dims=None, or as a Python float)"
                )
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, Real):
            raise TypeError(f"{fn}(): '{name}' must be a real number; got {type(value).__name__}")
        value = float(value)
    if not math.isfinite(value):
        raise NonFiniteError(f"{fn}(): '{name}' must be finite; got {value}")
    return value


def unit_interval(fn: str, name: str, value: object) -> float:
    """A number in [0, 1], such as a discount γ or a trace parameter λ."""
    if type(value) is float and 0.0 <= value <= 1.0:  # the usual call, with nothing to convert
        return value
    value = number(fn, name, value)
    if not 0.0 <= value <= 1.0:
        raise BadInputError(f"{fn}(): '{name}' must lie in [0, 1]; got {value}")
    return value


def discounts(fn: str, name: str, value: object, ref_name: str, ref: Tensor) -> float | Tensor:
    """One discount in [0, 1], or a tensor of per-sample discounts shaped and typed like ``ref``."""
    if not isinstance(value, Tensor) or value.dim() == 0:
        return unit_interval(fn, name, value)
    value = floats(fn, name, value, ref_name, ref)
    if batched(value):
        return value
    outside = (value < 0) | (value > 1)
    if bool(outside.any()):
        where = _location(outside)
        raise BadInputError(
            f"{fn}(): '{name}' must lie in [0, 1]; got {value[where].item()} at index {where}"
        )
    return value


def positive(fn: str, name: str, value: object) -> float:
    """A number > 0, such as a clip range ε or a learning rate."""
    value = number(fn, name, value)
    if value <= 0.0:
        raise BadInputError(f"{fn}(): '{name}' must be > 0; got {value}")
    return value


def non_negative(fn: str, name: str, value: object) -> float:
    value = number(fn, name, value)
    if value < 0.0:
        raise BadInputError(f"{fn}(): '{name}' must be >= 0; got {value}")
    return value


def count(fn: str, name: str, value: object) -> int:
    """A non-negative Python integer, such as a number of steps."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{fn}(): '{name}' must be an integer; got {type(value).__name__}")
    if value < 0:
        raise BadInputError(f"{fn}(): '{name}' must be >= 0; got {value}")
    return int(value)


def sample_mask(fn: str, mask: object, ref_name: str, ref: Tensor, at_least: int = 1) -> Tensor:
    """A mask over the samples of ``ref``, as a bool tensor that keeps ``at_least`` of them.

    Bool or 0/1 flags of the shape of ``ref``. The count is a value, checked outside vmap only:
    under vmap each row may keep a different number of samples, and the formulas give a finite
    result (0 for a mean) for a row that keeps too few.
    """
    mask = flags(fn, "mask", mask, ref_name, ref)
    if at_least and not batched(mask):  # at_least = 0 skips the count and its host sync
        kept = int(mask.sum())
        if kept < at_least:
            raise BadInputError(
                f"{fn}(): 'mask' must keep at least {at_least} sample(s) of '{ref_name}'; got "
                f"{kept} of {mask.numel()}"
            )
    return mask


def reduction(
    fn: str, dim: object, mask: object, ref_name: str, ref: Tensor, at_least: int = 1
) -> tuple[int | None, Tensor | None]:
    """The axis a formula reduces over and the mask it reduces with, checked.

    ``dim`` None: the whole tensor, and ``mask`` (if any) as :func:`sample_mask`, which refuses a
    mask keeping fewer than ``at_least`` samples. An integer ``dim`` must be an axis of ``ref``
    (negative counts from the end). Then nothing is refused for
    counts: each row along ``dim`` may keep a different number of samples, and one that keeps
    fewer than ``at_least`` gets the formula's finite value for it. Without a mask, an axis
    shorter than ``at_least`` gets an all-True mask, so that the masked arithmetic gives those
    values instead of torch's NaN.
    """
    if dim is None:
        return None, None if mask is None else sample_mask(fn, mask, ref_name, ref, at_least)
    if isinstance(dim, bool) or not isinstance(dim, Integral):
        raise TypeError(f"{fn}(): 'dim' must be an integer or None; got {type(dim).__name__}")
    rank = ref.dim()
    if not -rank <= dim < rank:
        raise BadInputError(
            f"{fn}(): 'dim' must be an axis of '{ref_name}' of shape {tuple(ref.shape)}, in "
            f"[{-rank}, {rank}); got {dim}"
        )
    dim = int(dim)  # a NumPy integer becomes a Python one, as torch's reductions want
    if mask is not None:
        return dim, sample_mask(fn, mask, ref_name, ref, at_least=0)
    if ref.shape[dim] < at_least:
        return dim, torch.ones_like(ref, dtype=torch.bool)
    return dim, None


def rank_at_least(fn: str, name: str, x: Tensor, rank: int, layout: str) -> None:
    if x.dim() < rank:
        raise BadInputError(
            f"{fn}(): '{name}' must have at least {rank} dimension(s) {layout}; "
            f"got shape {tuple(x.shape)}"
        )
