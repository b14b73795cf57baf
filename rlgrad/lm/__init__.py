"""GRPO for Hugging Face causal language models (needs the ``lm`` extra: transformers)."""
