"""rlgrad: the calculus of reinforcement-learning optimization as small, exact PyTorch functions.

Every formula is one function with its equation in the docstring; everything is re-exported
here, so ``import rlgrad`` is all a user needs for the formula layer.
"""

from rlgrad._checks import NonFiniteError
from rlgrad.calculus import (
    gradient,
    gradient_ascent,
    gradient_descent,
    hessian,
    numerical_gradient,
    taylor,
)
from rlgrad.continuous import (
    clipped_double_q_targets,
    deterministic_policy_loss,
    joint_soft_q_targets,
    sac_actor_loss,
    smoothed_target_actions,
    soft_q_targets,
    temperature_loss,
)
from rlgrad.distributions import (
    categorical_entropy,
    categorical_kl,
    categorical_log_prob,
    entropy_loss,
    gaussian_entropy,
    gaussian_kl,
    gaussian_log_prob,
    kl_k3,
    squashed_gaussian_log_prob,
)
from rlgrad.errors import BadInputError
from rlgrad.grpo import grpo_token_loss, gspo_loss, masked_mean, sequence_log_ratios
from rlgrad.grpo_variants import overlong_penalty
from rlgrad.policy import (
    approx_kl,
    clip_fraction,
    clipped_fractions,
    policy_gradient_loss,
    ppo_clip_loss,
    ppo_objective,
)
from rlgrad.returns import (
    batch_scaled_group_advantages,
    discounted_returns,
    equal_reward_groups,
    gae,
    group_advantages,
    n_step_returns,
    normalize_advantages,
    td_errors,
)
from rlgrad.trust_region import (
    CGResult,
    LineSearchResult,
    RatioTaylor,
    backtracking_line_search,
    conjugate_gradient,
    fisher_operator,
    fisher_vector_product,
    hessian_vector_product,
    ratio_taylor,
    surrogate_objective,
    trust_region_step,
)
from rlgrad.value import (
    dqn_loss,
    dqn_targets,
    epsilon_schedule,
    explained_variance,
    polyak_update,
    semi_gradient_td_update,
    value_loss,
)

__version__ = "0.1.0"


__all__ = [
    "BadInputError",
    "CGResult",
    "LineSearchResult",
    "NonFiniteError",
    "RatioTaylor",
    "approx_kl",
    "backtracking_line_search",
    "batch_scaled_group_advantages",
    "categorical_entropy",
    "categorical_kl",
    "categorical_log_prob",
    "clip_fraction",
    "clipped_double_q_targets",
    "clipped_fractions",
    "conjugate_gradient",
    "deterministic_policy_loss",
    "discounted_returns",
    "dqn_loss",
    "dqn_targets",
    "entropy_loss",
    "epsilon_schedule",
    "equal_reward_groups",
    "explained_variance",
    "fisher_operator",
    "fisher_vector_product",
    "gae",
    "gaussian_entropy",
    "gaussian_kl",
    "gaussian_log_prob",
    "gradient",
    "gradient_ascent",
    "gradient_descent",
    "group_advantages",
    "grpo_token_loss",
    "gspo_loss",
    "hessian",
    "hessian_vector_product",
    "joint_soft_q_targets",
    "kl_k3",
    "masked_mean",
    "n_step_returns",
    "normalize_advantages",
    "numerical_gradient",
    "overlong_penalty",
    "policy_gradient_loss",
    "polyak_update",
    "ppo_clip_loss",
    "ppo_objective",
    "ratio_taylor",
    "sac_actor_loss",
    "semi_gradient_td_update",
    "sequence_log_ratios",
    "smoothed_target_actions",
    "soft_q_targets",
    "squashed_gaussian_log_prob",
    "surrogate_objective",
    "taylor",
    "td_errors",
    "temperature_loss",
    "trust_region_step",
    "value_loss",
]
