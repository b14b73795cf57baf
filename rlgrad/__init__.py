"""rlgrad: the calculus of reinforcement-learning optimization as small, exact PyTorch functions.

Every formula is one function with its equation in the docstring; everything is re-exported
here, so ``import rlgrad`` is all a user needs for the formula layer.
"""

from rlgrad.calculus import (
    gradient,
    gradient_ascent,
    gradient_descent,
    hessian,
    numerical_gradient,
    taylor,
)
from rlgrad.distributions import categorical_entropy, kl_k3
from rlgrad.policy import (
    approx_kl,
    clip_fraction,
    policy_gradient_loss,
    ppo_clip_loss,
    ppo_objective,
)
from rlgrad.returns import (
    discounted_returns,
    gae,
    group_advantages,
    normalize_advantages,
    td_errors,
)
from rlgrad.value import dqn_loss, dqn_targets, semi_gradient_td_update, value_loss

__version__ = "0.1.0"

__all__ = [
    "approx_kl",
    "categorical_entropy",
    "clip_fraction",
    "discounted_returns",
    "dqn_loss",
    "dqn_targets",
    "gae",
    "gradient",
    "gradient_ascent",
    "gradient_descent",
    "group_advantages",
    "hessian",
    "kl_k3",
    "normalize_advantages",
    "numerical_gradient",
    "policy_gradient_loss",
    "ppo_clip_loss",
    "ppo_objective",
    "semi_gradient_td_update",
    "taylor",
    "td_errors",
    "value_loss",
]
