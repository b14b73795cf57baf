"""GRPO variants that act on the rewards and the sampling, not on the loss (DAPO, Yu et al. 2025).

* The overlong penalty (DAPO §3.4) lowers the reward of a completion that comes close to the
  length limit, so that an answer cut off there does not score like one that finished.
* Dynamic sampling (DAPO §3.2) needs no new formula: :func:`rlgrad.returns.equal_reward_groups`
  says which groups of a ``[prompts, G]`` reward tensor carry no signal (all rewards equal, so all
  advantages 0), and a trainer drops those and samples more prompts.

The loss-side variant, GSPO's sequence-level ratio, sits next to GRPO's token loss in
:mod:`rlgrad.grpo` (:func:`rlgrad.grpo.gspo_loss`), with which it shares its argument checks.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rlgrad import _checks
from rlgrad.errors import BadInputError


def overlong_penalty(
    lengths: Tensor, max_length: int, overlong_buffer: int, penalty_factor: float = 1.0
) -> Tensor:
    """DAPO's soft overlong punishment, a reward term that grows as a completion nears the limit.

        R_b = c · clip(((L_max − L_buf) − |o_b|) / L_buf, −1, 0)

    that is 0 while |o_b| ≤ L_max − L_buf, falling linearly to −c across the last L_buf tokens,
    and −c at L_max and beyond (Yu et al. 2025, DAPO §3.4, with c = 1 there). Added to the
    task reward, it tells a long answer that was cut off from one that finished.

    Args:
        lengths: ``[*B]`` completion lengths |o_b| ≥ 0 in tokens (through EOS), integer or float.
        max_length: L_max > 0, the generation limit.
        overlong_buffer: L_buf, 1 ≤ L_buf ≤ L_max, the tokens over which the penalty grows.
        penalty_factor: c ≥ 0, the penalty at L_max.

    Returns:
        ``[*B]`` floats ≤ 0 (the dtype of ``lengths`` if it is floating, else the default dtype);
        no gradient flows to the lengths.

    Raises:
        ValueError: on a negative or non-finite length, or an option out of range.
        TypeError: on a non-tensor ``lengths`` or a non-integer ``max_length``/``overlong_buffer``.

    Example (L_max = 10, L_buf = 4: the ramp starts after 6 tokens; 8 tokens are halfway along
    it, (8 − 6)/4 = 0.5; 10 and 12 tokens get the full −1):
        >>> overlong_penalty(torch.tensor([5, 6, 8, 10, 12]), max_length=10, overlong_buffer=4)
        tensor([ 0.0000,  0.0000, -0.5000, -1.0000, -1.0000])
    """
    fn = "overlong_penalty"
    lengths = _checks.tensor(fn, "lengths", lengths, floating=False)
    if lengths.dtype == torch.bool or lengths.is_complex():
        raise TypeError(
            f"{fn}(): 'lengths' must hold integer or float lengths; got {lengths.dtype}"
        )
    if not lengths.is_floating_point():
        lengths = lengths.to(torch.get_default_dtype())
    lengths = _checks.finite(fn, "lengths", lengths.detach())
    negative = lengths < 0
    if bool(negative.any()):
        where = tuple(int(i) for i in negative.nonzero()[0].tolist())
        raise BadInputError(
            f"{fn}(): 'lengths' must be >= 0; got {lengths[where].item()} at index {where}"
        )
    max_length = _checks.count(fn, "max_length", max_length)
    overlong_buffer = _checks.count(fn, "overlong_buffer", overlong_buffer)
    if max_length < 1:
        raise BadInputError(f"{fn}(): 'max_length' must be >= 1; got {max_length}")
    if not 1 <= overlong_buffer <= max_length:
        raise BadInputError(
            f"{fn}(): 'overlong_buffer' must lie in [1, max_length = {max_length}]; "
            f"got {overlong_buffer}"
        )
    penalty_factor = _checks.non_negative(fn, "penalty_factor", penalty_factor)
    start = max_length - overlong_buffer  # the last length with no penalty
    return penalty_factor * ((start - lengths) / overlong_buffer).clamp(-1.0, 0.0)
