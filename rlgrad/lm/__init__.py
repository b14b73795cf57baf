"""GRPO for Hugging Face causal language models (needs the ``lm`` extra: transformers).

``from rlgrad.lm import GRPOConfig, GRPOTrainer`` (transformers itself is imported only where a
model or tokenizer is built or called).
"""

from rlgrad.lm.config import GRPOConfig
from rlgrad.lm.data import RewardFunctionError, TrainerState
from rlgrad.lm.grpo import GRPOTrainer

__all__ = ["GRPOConfig", "GRPOTrainer", "RewardFunctionError", "TrainerState"]
