"""Exact ground truth on small MDPs: the policy gradient theorem in closed form, its
maximum-entropy (soft, SAC's) counterpart, the exact natural gradient (Fisher matrix, F⁺∇J), and
sampled estimators (REINFORCE, baselines, GAE) measured against it.

Import explicitly, ``import rlgrad.tabular``; the formula layer does not depend on this package.
"""

from rlgrad.tabular.exact import (
    evaluate,
    expected_gae_gradient,
    objective,
    optimal_policy,
    policy,
    policy_gradient,
    state_visitation,
)
from rlgrad.tabular.mdp import TabularMDP
from rlgrad.tabular.natural import (
    compare_ascents,
    fisher_information,
    iterations_to_fraction,
    misled_logits,
    natural_gradient_ascent,
    natural_policy_gradient,
)
from rlgrad.tabular.soft import (
    soft_evaluate,
    soft_objective,
    soft_optimal_policy,
    soft_policy_gradient,
)
from rlgrad.tabular.zoo import ZOO, chain, random_mdp, two_state

__all__ = [
    "ZOO",
    "TabularMDP",
    "chain",
    "compare_ascents",
    "evaluate",
    "expected_gae_gradient",
    "fisher_information",
    "iterations_to_fraction",
    "misled_logits",
    "natural_gradient_ascent",
    "natural_policy_gradient",
    "objective",
    "optimal_policy",
    "policy",
    "policy_gradient",
    "random_mdp",
    "soft_evaluate",
    "soft_objective",
    "soft_optimal_policy",
    "soft_policy_gradient",
    "state_visitation",
    "two_state",
]
