"""GRPO for Hugging Face causal language models, read top to bottom.

One training step: 1. take ``prompts_per_step`` prompts and sample ``num_generations`` (G)
completions of each with ``model.generate`` (KV cache, temperature, top-p); the completion mask
runs up to and including the first EOS; 2. score every completion with the reward functions
(TRL's convention ``f(prompts, completions, **columns) -> list[float | None]``), weight and sum
them, and turn each group's rewards into advantages (r_i − μ)/(σ + ε) with
:func:`rlgrad.returns.group_advantages`, with no critic; 3. ``num_iterations`` (μ) gradient steps
on :func:`rlgrad.grpo.grpo_token_loss` with the log-probabilities stored at sampling time, the
k3 KL to a frozen in-memory copy of the starting model (β), clip ranges ε_low/ε_high, gradient
clipping and AdamW with linear warm-up; 4. log, checkpoint.

Memory: with a ``peft_config`` (PEFT's ``LoraConfig``, say) only the adapters train, and the
reference for the KL is the same model with its adapters switched off, not a second copy;
``gradient_accumulation_steps`` splits each step's batch into micro-batches whose weighted
losses add up to the whole batch's; ``gradient_checkpointing`` recomputes activations in the
backward pass; ``bf16`` runs the forward passes under bfloat16 autocast.

The variants in use today are options: GSPO's sequence-level ratio
(``importance_sampling_level="sequence"``, :func:`rlgrad.grpo.gspo_loss`), DAPO's dynamic
sampling (groups whose rewards are all equal are dropped and more prompts sampled) and DAPO's
soft overlong penalty on the rewards (:func:`rlgrad.grpo_variants.overlong_penalty`).

Under ``torchrun`` (the trainer joins the process group the launcher describes, gloo on CPU and
NCCL on GPU, or uses one already initialized) each process takes its share of the prompts, and
the gradients are averaged after each process weighs its loss by its share of the aggregation's
denominator, so the update equals one process's update on the whole batch.

Data, as TRL users give it (:mod:`rlgrad.lm.data`): prompts are strings or chat messages
(rendered with the tokenizer's chat template); reward functions get ``prompts``,
``completions``, ``completion_ids``, ``trainer_state`` and the other columns, and a reward may be
a one-logit sequence-classification model with its tokenizer. Every ``eval_steps`` steps the
trainer generates for ``eval_dataset`` (greedy, or sampled with ``eval_do_sample``) on random
streams of its own and logs ``eval_reward_mean``; ``log_completions`` appends the prompts,
completions and rewards to ``output_dir/completions.jsonl`` (and to TensorBoard as text).

The field names follow TRL's ``GRPOConfig`` where they mean the same thing.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import itertools
import json
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from rlgrad.distributions import categorical_entropy, kl_k3
from rlgrad.errors import BadInputError
from rlgrad.grpo import (
    AGGREGATIONS,
    grpo_token_loss,
    gspo_loss,
    masked_mean,
    sequence_log_ratios,
)
from rlgrad.grpo_variants import overlong_penalty
from rlgrad.lm import data
from rlgrad.lm.lengths import completion_lengths, length_groups
from rlgrad.policy import clipped_fractions
from rlgrad.returns import equal_reward_groups, group_advantages
from rlgrad.support import checkpoints

# TRL's loss_type names, mapped onto rlgrad's aggregations (bnpo and dapo both average tokens)
LOSS_TYPES = {
    **{name: name for name in AGGREGATIONS},
    "grpo": "seq_mean",
    "bnpo": "token_mean",
    "dapo": "token_mean",
    "dr_grpo": "const_norm",
}
REWARD_SCALINGS = ("group", "batch", "none")
IMPORTANCE_SAMPLING_LEVELS = ("token", "sequence")
REPORT_TO = ("none", "tensorboard")


@dataclasses.dataclass(frozen=True)
class GRPOConfig:
    """GRPO's hyperparameters for a causal language model."""

    max_steps: int = 100
    """Training steps (each: sample, score, then num_iterations gradient steps)."""
    prompts_per_step: int = 8
    """Prompts per step, over all processes (a multiple of the number of processes)."""
    num_generations: int = 8
    """Completions sampled per prompt (G, the group)."""
    max_completion_length: int = 16
    """New tokens per completion at most; a completion without EOS by then is truncated."""
    temperature: float = 1.0
    """Sampling temperature."""
    top_p: float = 1.0
    """Nucleus sampling: keep the smallest set of tokens with this much probability."""
    num_iterations: int = 1
    """μ: gradient steps on each sampled batch (ratios against the sampling-time policy)."""
    learning_rate: float = 1e-5
    """AdamW learning rate after warm-up."""
    warmup_steps: int = 0
    """Gradient steps of linear learning-rate warm-up from 0."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float | None = 1.0
    """Clip the global gradient norm to this (none: no clipping)."""
    beta: float = 0.0
    """Coefficient of the k3 KL penalty to the frozen starting model (0: no reference kept)."""
    epsilon: float = 0.2
    """Lower clip range ε_low of the ratio (the upper one too unless epsilon_high)."""
    epsilon_high: float | None = None
    """Upper clip range ε_high (DAPO's clip-higher), or none for epsilon."""
    scale_rewards: str = "group"
    """'group': (r − μ_group)/(σ_group + ε) (the seeds' GRPO); 'batch': the group mean is
    subtracted and the batch σ divides; 'none': r − μ_group (Dr. GRPO)."""
    std_unbiased: bool = False
    """Sample σ (as TRL, verl, OpenRLHF) instead of the seeds' population σ."""
    loss_type: str = "token_mean"
    """token_mean (DAPO), seq_mean (original GRPO) or const_norm (Dr. GRPO; divides by
    max_completion_length); TRL's names grpo, bnpo, dapo and dr_grpo are accepted too."""
    mask_truncated_completions: bool = False
    """Leave completions that hit max_completion_length without EOS out of the loss."""
    importance_sampling_level: str = "token"
    """'token': a clipped ratio per token (GRPO); 'sequence': one per completion, the geometric
    mean of its token ratios (GSPO). GSPO's paper clips it with epsilon=3e-4, epsilon_high=4e-4
    and averages per completion (loss_type seq_mean)."""
    dynamic_sampling: bool = False
    """DAPO's dynamic sampling: drop the groups whose rewards are all equal (their advantages are
    0) and sample more prompts until prompts_per_step groups carry signal (one process only)."""
    max_sampling_rounds: int = 10
    """With dynamic_sampling, sampling rounds per step at most; at the cap the step trains on the
    groups found so far, or, when none carried signal, on the last round as sampled."""
    overlong_buffer: int | None = None
    """DAPO's soft overlong penalty: the reward falls linearly over the last this many tokens
    before max_completion_length, to −overlong_penalty_factor at the limit (none: off)."""
    overlong_penalty_factor: float = 1.0
    """The overlong penalty at max_completion_length."""
    seed: int = 0
    """Seeds prompt order, sampling and dropout."""
    logging_steps: int = 1
    """Print a log line every this many steps (0: never); every step is kept in the history."""
    save_steps: int = 0
    """Write a checkpoint every this many steps (0: only at the end, when output_dir is set)."""
    output_dir: str | None = None
    """Where checkpoints and metrics.jsonl go (none: nothing is written)."""
    gradient_accumulation_steps: int = 1
    """Split each process's batch into this many micro-batches, one forward and backward pass
    each; the update equals the one-batch update (a divisor of prompts · G per process)."""
    gradient_checkpointing: bool = False
    """Recompute each layer's activations in the backward pass instead of keeping them: less
    memory, about one more forward pass of time."""
    length_groups: int = 4
    """Run each forward pass of the loss and the stored log-probabilities in up to this many
    groups of completions of similar length, each cut after its longest completion, when that
    computes at least a quarter fewer token positions than one padded pass: the same
    log-probabilities without the padding (rlgrad.lm.lengths; 1: always one padded pass)."""
    bf16: bool = False
    """Run the model's forward passes for the loss and the stored log-probabilities under
    bfloat16 autocast (CPU and CUDA); sampling stays in the model's own precision."""
    eval_steps: int = 0
    """Evaluate on eval_dataset every this many steps, its metrics (eval_reward_mean, ...) in
    that step's row (0: never during training; trainer.evaluate() still runs one)."""
    eval_do_sample: bool = False
    """Evaluation generates one greedy completion per prompt (False) or num_generations sampled
    ones with temperature and top_p (True), from the same seed at every evaluation."""
    log_completions: bool = False
    """Append the prompts, completions and rewards of the logged steps and of every evaluation to
    output_dir/completions.jsonl (and to TensorBoard as a text table with report_to)."""
    log_completions_steps: int = 1
    """With log_completions, write the training completions of every this many steps."""
    report_to: str = "none"
    """'tensorboard': also write each step's metrics, and the logged completions as text, as
    TensorBoard events in output_dir (needs tensorboard); 'none': metrics.jsonl only."""


def check(config: GRPOConfig, world_size: int = 1) -> None:
    def require(condition: bool, message: str) -> None:
        if not condition:
            raise BadInputError(message)

    for name in (
        "max_steps",
        "prompts_per_step",
        "num_generations",
        "max_completion_length",
        "num_iterations",
        "temperature",
        "max_sampling_rounds",
        "gradient_accumulation_steps",
        "length_groups",
    ):
        value = getattr(config, name)
        require(value > 0, f"GRPOConfig.{name} must be > 0; got {value!r}")
    require(  # 0 is allowed: a control run that samples and scores but never moves
        config.learning_rate >= 0,
        f"GRPOConfig.learning_rate must be >= 0; got {config.learning_rate!r}",
    )
    require(0 < config.top_p <= 1, f"GRPOConfig.top_p must be in (0, 1]; got {config.top_p!r}")
    require(config.beta >= 0, f"GRPOConfig.beta must be >= 0; got {config.beta!r}")
    require(
        config.num_generations >= 2,
        f"GRPOConfig.num_generations must be at least 2 (a group compares completions); "
        f"got {config.num_generations}",
    )
    require(
        config.loss_type in LOSS_TYPES,
        f"GRPOConfig.loss_type must be one of {', '.join(LOSS_TYPES)}; got {config.loss_type!r}",
    )
    require(
        config.scale_rewards in REWARD_SCALINGS,
        f"GRPOConfig.scale_rewards must be one of {', '.join(REWARD_SCALINGS)}; "
        f"got {config.scale_rewards!r}",
    )
    require(
        config.importance_sampling_level in IMPORTANCE_SAMPLING_LEVELS,
        f"GRPOConfig.importance_sampling_level must be one of "
        f"{', '.join(IMPORTANCE_SAMPLING_LEVELS)}; got {config.importance_sampling_level!r}",
    )
    require(
        not (config.dynamic_sampling and world_size > 1),
        f"GRPOConfig.dynamic_sampling runs in one process only; got {world_size} processes",
    )
    buffer = config.overlong_buffer
    require(
        buffer is None or (type(buffer) is int and 1 <= buffer <= config.max_completion_length),
        f"GRPOConfig.overlong_buffer must be none or an integer in [1, max_completion_length = "
        f"{config.max_completion_length}]; got {buffer!r}",
    )
    require(
        config.overlong_penalty_factor >= 0,
        f"GRPOConfig.overlong_penalty_factor must be >= 0; got {config.overlong_penalty_factor!r}",
    )
    require(
        config.prompts_per_step % world_size == 0,
        f"GRPOConfig.prompts_per_step = {config.prompts_per_step} must be a multiple of the "
        f"number of processes ({world_size})",
    )
    completions = config.prompts_per_step // world_size * config.num_generations
    steps = config.gradient_accumulation_steps
    require(
        type(steps) is int and completions % steps == 0,
        f"GRPOConfig.gradient_accumulation_steps must be an integer that divides the completions "
        f"per process and step ({completions}); got {steps!r}",
    )
    check_logging(config)


def check_logging(config: GRPOConfig) -> None:
    """Raise a ValueError naming the first evaluation or logging field that is out of range."""
    for name in ("eval_do_sample", "log_completions"):
        value = getattr(config, name)
        if not isinstance(value, bool):
            raise BadInputError(f"GRPOConfig.{name} must be True or False; got {value!r}")
    if not (type(config.eval_steps) is int and config.eval_steps >= 0):
        raise BadInputError(
            f"GRPOConfig.eval_steps must be an integer >= 0; got {config.eval_steps!r}"
        )
    every = config.log_completions_steps
    if not (type(every) is int and every > 0):
        raise BadInputError(
            f"GRPOConfig.log_completions_steps must be an integer > 0; got {every!r}"
        )
    if config.report_to not in REPORT_TO:
        raise BadInputError(
            f"GRPOConfig.report_to must be one of {', '.join(REPORT_TO)}; got {config.report_to!r}"
        )
    for name, on in (
        ("log_completions", config.log_completions),
        ("report_to", config.report_to != "none"),
    ):
        if on and config.output_dir is None:
            raise BadInputError(
                f"GRPOConfig.{name} writes to output_dir, which must be set; got output_dir=None"
            )


RewardFunction = Callable[..., Sequence[float | None]]


@dataclasses.dataclass
class Batch:
    """One step's sampled completions, ``[B, L]`` with B = prompts · G (this process's share)."""

    input_ids: Tensor  # prompt + completion tokens
    attention_mask: Tensor
    prompt_length: int
    completion_ids: Tensor  # [B, L]
    completion_mask: Tensor  # [B, L] float: 1 through the first EOS
    advantages: Tensor  # [B]
    old_log_probs: Tensor | None = None  # [B, L], when num_iterations > 1
    ref_log_probs: Tensor | None = None  # [B, L], when beta > 0
    completion_log: list[dict] | None = None  # log_completions' records, on the steps it logs


def micro_batches(batch: Batch, count: int) -> list[Batch]:
    """``batch`` as ``count`` micro-batches of consecutive completions (sizes differ by one at
    most when ``count`` does not divide B; none is empty)."""
    size = len(batch.advantages)
    bounds = [size * i // count for i in range(count + 1)]
    fields = [
        f.name for f in dataclasses.fields(batch) if isinstance(getattr(batch, f.name), Tensor)
    ]
    return [
        dataclasses.replace(batch, **{name: getattr(batch, name)[start:stop] for name in fields})
        for start, stop in itertools.pairwise(bounds)
        if stop > start
    ]


@dataclasses.dataclass
class Sampled:
    """One sampling round: G completions of each prompt and their rewards, B = prompts · G."""

    rows: list[dict]  # the prompts' dataset rows, one per group
    input_ids: Tensor  # [B, P + L]: the prompt, left-padded to P, then the completion
    attention_mask: Tensor  # [B, P + L]
    prompt_length: int  # P
    completion_ids: Tensor  # [B, L]
    completion_mask: Tensor  # [B, L] float: 1 through the first EOS
    truncated: Tensor  # [B] bool: no EOS within max_completion_length
    per_function: Tensor  # [B, F] each reward function's scores (None → NaN)
    penalties: Tensor  # [B] the overlong penalty (0 when off)
    rewards: Tensor  # [B] the weighted sum of the scores, plus the penalty


def take_groups(sampled: Sampled, keep: Tensor) -> Sampled:
    """The groups where ``keep`` (``[prompts]`` bool) is True, each with its G completions."""
    completions = keep.repeat_interleave(len(sampled.rewards) // len(sampled.rows))  # [B]
    on_device = completions.to(sampled.input_ids.device)
    return Sampled(
        [row for row, kept in zip(sampled.rows, keep.tolist(), strict=True) if kept],
        sampled.input_ids[on_device],
        sampled.attention_mask[on_device],
        sampled.prompt_length,
        sampled.completion_ids[on_device],
        sampled.completion_mask[on_device],
        sampled.truncated[on_device],
        sampled.per_function[completions],
        sampled.penalties[completions],
        sampled.rewards[completions],
    )


def concatenate(parts: list[Sampled], pad_token_id: int) -> Sampled:
    """Several rounds as one batch: prompts left-padded to the longest P (generation pads them
    on the left), completions right-padded with masked padding to the longest L."""
    prompt_length = max(part.prompt_length for part in parts)
    length = max(part.completion_ids.shape[1] for part in parts)

    def padded(part: Sampled, x: Tensor, value: float, prompt: bool = True) -> Tensor:
        left = prompt_length - part.prompt_length if prompt else 0
        return torch.nn.functional.pad(
            x, (left, length - part.completion_ids.shape[1]), value=value
        )

    return Sampled(
        [row for part in parts for row in part.rows],
        torch.cat([padded(part, part.input_ids, pad_token_id) for part in parts]),
        torch.cat([padded(part, part.attention_mask, 0) for part in parts]),
        prompt_length,
        torch.cat([padded(part, part.completion_ids, pad_token_id, False) for part in parts]),
        torch.cat([padded(part, part.completion_mask, 0.0, False) for part in parts]),
        torch.cat([part.truncated for part in parts]),
        torch.cat([part.per_function for part in parts]),
        torch.cat([part.penalties for part in parts]),
        torch.cat([part.rewards for part in parts]),
    )


def make_optimizer(model, config: GRPOConfig):
    """AdamW and its schedule: the learning rate rises linearly over ``warmup_steps``
    (lr·(k + 1)/warmup at step k), then stays constant."""
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(
        trainable, lr=config.learning_rate, weight_decay=config.weight_decay
    )
    warmup = config.warmup_steps
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup) if warmup else 1.0
    )
    return optimizer, schedule


def with_adapters(model, peft_config):
    """``model`` wrapped with PEFT's adapters (``peft.get_peft_model``): only they train."""
    try:
        import peft
    except ImportError:
        raise ImportError("peft_config needs PEFT: pip install 'rlgrad[peft]'") from None
    return peft.get_peft_model(model, peft_config)


def trainable_state(model) -> dict[str, Tensor]:
    """The parameters that train, by name: with adapters, all that a checkpoint must hold to
    resume (the base weights never change)."""
    return {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}


def load_trainable_state(model, state: dict[str, Tensor]) -> None:
    """Put back what :func:`trainable_state` saved; a state of other parameters is refused."""
    names = set(trainable_state(model))
    if set(state) != names:
        different = sorted(set(state) ^ names)[:3]
        raise BadInputError(
            f"the checkpoint's trainable parameters are not this model's (e.g. {different})"
        )
    model.load_state_dict(state, strict=False)


def enable_gradient_checkpointing(model) -> None:
    """Recompute each layer's activations in the backward pass instead of keeping them, with
    torch's non-reentrant checkpoint (it needs no gradient at the input, which frozen embeddings
    in front of adapters would not give)."""
    options = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # the name since transformers 5
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=options)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=options)


def eval_mode_that_checkpoints(model) -> None:
    """Eval mode (no dropout: the ratio must compare the same function of θ), except for the
    modules that hold Hugging Face's ``gradient_checkpointing`` flag: they checkpoint their
    layers only in training mode, so that mode is set on them alone; their dropout layers and
    attention stay in eval mode. Without gradient checkpointing this is ``model.eval()``."""
    model.eval()
    for module in model.modules():
        if getattr(module, "gradient_checkpointing", False) is True:
            module.training = True


@contextmanager
def separate_random_streams(seed: int):
    """Run the block on torch's (CPU and every CUDA device's), NumPy's and Python's global random
    streams seeded with ``seed``, and put the streams as they were back afterwards: what runs
    inside (an evaluation) leaves the training's random numbers exactly as they would have been,
    and runs the same at every call (common random numbers across evaluations)."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            np.random.seed(seed % 2**32)
            random.seed(seed)
            yield
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)


def weights_for(weights: Sequence[float] | None, count: int, field: str) -> Tensor:
    """The reward weights as a ``[count]`` tensor (none: all 1)."""
    weights = [1.0] * count if weights is None else list(weights)
    if len(weights) != count:
        raise BadInputError(
            f"GRPOTrainer: {field} must have one weight per reward function ({count}); "
            f"got {len(weights)}"
        )
    return torch.tensor(weights, dtype=torch.float32)


def as_list(rewards) -> list:
    """One reward or a sequence of them, as a list."""
    if isinstance(rewards, Sequence) and not isinstance(rewards, str):
        return list(rewards)
    return [rewards]


def _distributed() -> tuple[int, int]:
    """(rank, world size); joins the process group that ``torchrun`` describes in the
    environment when nobody has yet, as TRL users expect from a launcher."""
    if not torch.distributed.is_available():
        return 0, 1
    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1 and "MASTER_ADDR" in os.environ
    if launched and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class GRPOTrainer:
    """GRPO on a causal LM: ``GRPOTrainer(model, tokenizer, reward_funcs, train_dataset,
    config).train()``.

    ``train_dataset`` is a list of dicts or a ``datasets.Dataset`` with a ``prompt`` column,
    strings or chat messages (see :mod:`rlgrad.lm.data`); other columns reach the reward
    functions as keyword lists, one entry per completion. A reward in ``reward_funcs`` may be a
    sequence-classification model with one logit, its tokenizer at the same index of
    ``reward_processing_classes``. ``eval_dataset`` (the same form) is scored by
    ``eval_reward_funcs`` with ``eval_reward_weights`` (none: the training rewards and weights)
    every ``eval_steps`` steps. ``peft_config`` (a PEFT config such as ``LoraConfig``) wraps the
    model with adapters, which alone train; ``trainer.model`` is then the PEFT model, and
    checkpoints hold the adapters.
    """

    def __init__(
        self,
        model,
        tokenizer,
        reward_funcs: RewardFunction | Sequence[RewardFunction],
        train_dataset,
        config: GRPOConfig | None = None,
        reward_weights: Sequence[float] | None = None,
        peft_config=None,
        *,
        reward_processing_classes: Sequence | None = None,
        eval_dataset=None,
        eval_reward_funcs: RewardFunction | Sequence[RewardFunction] | None = None,
        eval_reward_weights: Sequence[float] | None = None,
        eval_reward_processing_classes: Sequence | None = None,
    ):
        self.config = config or GRPOConfig()
        self.rank, self.world_size = _distributed()
        check(self.config, self.world_size)
        self.model, self.tokenizer = model, tokenizer
        if tokenizer.eos_token_id is None or tokenizer.pad_token_id is None:
            raise BadInputError("the tokenizer needs an eos_token_id and a pad_token_id")
        self.dataset = self._rows(train_dataset, "train_dataset")
        self.reward_funcs = as_list(reward_funcs)
        self.reward_weights = weights_for(reward_weights, len(self.reward_funcs), "reward_weights")
        self.reward_processing_classes = data.check_rewards(
            self.reward_funcs, reward_processing_classes, "reward_funcs"
        )
        self.eval_dataset = None
        if eval_dataset is not None:
            self.eval_dataset = self._rows(eval_dataset, "eval_dataset")
        elif self.config.eval_steps:
            raise BadInputError(
                f"GRPOTrainer: GRPOConfig.eval_steps = {self.config.eval_steps} needs an "
                "eval_dataset; got none"
            )
        self._set_eval_rewards(
            eval_reward_funcs, eval_reward_weights, eval_reward_processing_classes
        )
        self.aggregation = LOSS_TYPES[self.config.loss_type]
        self.device = next(model.parameters()).device
        torch.manual_seed(self.config.seed + self.rank)  # before the adapters' random init
        # the frozen reference is the starting model, kept in memory (never reloaded by name);
        # with adapters it is the same model with them switched off, no copy
        self.uses_adapters = peft_config is not None
        # generate() numbers positions from the attention mask, so that left padding does not
        # shift a prompt; the loss's forward passes must do the same, where the model takes them
        # (a model the caller wrapped in PEFT already is asked through its base model)
        base_model = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.takes_position_ids = "position_ids" in inspect.signature(base_model.forward).parameters
        self.ref_model = None
        if self.config.beta > 0 and not self.uses_adapters:
            self.ref_model = copy.deepcopy(model).requires_grad_(False).eval()
        if self.config.gradient_checkpointing:
            enable_gradient_checkpointing(model)
        if self.uses_adapters:
            self.model = model = with_adapters(model, peft_config)
        self.optimizer, self.scheduler = make_optimizer(model, self.config)
        self.generator = torch.Generator().manual_seed(self.config.seed)  # prompt order
        self.order: list[int] = []
        self.prompts_drawn = 0  # over all processes, since the start
        self.epoch = 0.0  # passes over the data set before the latest prompts were drawn
        self.step = 0
        self.history: list[dict] = []
        self.tensorboard = None  # a SummaryWriter while train() runs, with report_to

    def _rows(self, dataset, name: str) -> list[dict]:
        """The data set's rows as dicts, after checking their prompts; a chat template is needed
        when the prompts are chat messages."""
        rows = [dict(row) for row in dataset]
        if data.check_prompts(rows, name):
            data.require_chat_template(self.tokenizer, name)
        return rows

    def _set_eval_rewards(self, functions, weights, tokenizers) -> None:
        """The evaluation's rewards, weights and reward tokenizers: the training's when no
        functions are given (then weights and tokenizers must not be given either)."""
        if functions is None:
            given = [
                name
                for name, value in (
                    ("eval_reward_weights", weights),
                    ("eval_reward_processing_classes", tokenizers),
                )
                if value is not None
            ]
            if given:
                raise BadInputError(
                    f"GRPOTrainer: {given[0]} applies to eval_reward_funcs, which must then be "
                    "given; got eval_reward_funcs=None"
                )
            self.eval_reward_funcs = self.reward_funcs
            self.eval_reward_weights = self.reward_weights
            self.eval_reward_processing_classes = self.reward_processing_classes
        else:
            self.eval_reward_funcs = as_list(functions)
            self.eval_reward_weights = weights_for(
                weights, len(self.eval_reward_funcs), "eval_reward_weights"
            )
            self.eval_reward_processing_classes = data.check_rewards(
                self.eval_reward_funcs, tokenizers, "eval_reward_funcs"
            )
        self._check_reward_chat_templates(functions is None)

    def _check_reward_chat_templates(self, eval_uses_training_rewards: bool) -> None:
        """A reward model that reads chat conversations renders them with its own tokenizer's
        chat template, which must then exist."""
        eval_field = "reward" if eval_uses_training_rewards else "eval_reward"
        for rows, tokenizers, field, name in (
            (self.dataset, self.reward_processing_classes, "reward", "train_dataset"),
            (self.eval_dataset, self.eval_reward_processing_classes, eval_field, "eval_dataset"),
        ):
            if not rows or not data.is_conversational(rows[0]["prompt"]):
                continue
            for index, tokenizer in enumerate(tokenizers):
                if tokenizer is not None:
                    which = f"{field}_processing_classes[{index}]"
                    data.require_chat_template(tokenizer, name, which)

    # ----- 1. sampling -----

    def _next_prompts(self) -> list[dict]:
        """This process's share of the next prompts_per_step rows, reshuffled each epoch."""
        self.epoch = self.prompts_drawn / len(self.dataset)
        rows = []
        for _ in range(self.config.prompts_per_step):
            if not self.order:
                self.order = torch.randperm(len(self.dataset), generator=self.generator).tolist()
            rows.append(self.dataset[self.order.pop()])
        self.prompts_drawn += len(rows)
        share = self.config.prompts_per_step // self.world_size
        return rows[self.rank * share : (self.rank + 1) * share]

    @torch.no_grad()
    def _generate(
        self,
        prompts: list[str],
        num_generations: int | None = None,
        greedy: bool = False,
        add_special_tokens: bool = True,
    ):
        """num_generations (none: G) completions per prompt text, sampled with temperature and
        top_p or greedy; their tokens and the mask through the first EOS. A chat template writes
        its own special tokens: its texts are encoded with add_special_tokens=False."""
        config, tokenizer = self.config, self.tokenizer
        group = config.num_generations if num_generations is None else num_generations
        # generation continues right after the prompt, so pad on the left; the caller's
        # tokenizer keeps its own setting
        with data.padding_on(tokenizer, "left"):
            encoded = tokenizer(
                prompts, return_tensors="pt", padding=True, add_special_tokens=add_special_tokens
            ).to(self.device)
        input_ids = encoded.input_ids.repeat_interleave(group, dim=0)
        attention = encoded.attention_mask.repeat_interleave(group, dim=0)
        sampling = {"temperature": config.temperature, "top_p": config.top_p, "top_k": 0}
        self.model.eval()
        sequences = self.model.generate(
            input_ids=input_ids,
            attention_mask=attention,
            do_sample=not greedy,
            **({} if greedy else sampling),
            max_new_tokens=config.max_completion_length,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            use_cache=True,
        )
        prompt_length = input_ids.shape[1]
        completion_ids = sequences[:, prompt_length:]
        is_eos = completion_ids == tokenizer.eos_token_id
        has_eos = is_eos.any(dim=1)
        first_eos = torch.where(has_eos, is_eos.int().argmax(dim=1), completion_ids.shape[1])
        positions = torch.arange(completion_ids.shape[1], device=self.device)[None, :]
        completion_mask = (positions <= first_eos[:, None]).float()
        full_mask = torch.cat([attention, completion_mask.long()], dim=1)
        return sequences, full_mask, prompt_length, completion_ids, completion_mask, ~has_eos

    # ----- 2. rewards and advantages -----

    def _prompt_texts(self, rows: list[dict]) -> list[str]:
        """The text the policy continues for each row (chat messages rendered)."""
        return [data.render_prompt(self.tokenizer, row["prompt"]) for row in rows]

    def _completion_texts(self, completion_ids: Tensor) -> list[str]:
        """The completions as the reward functions read them: decoded, special tokens dropped."""
        return self.tokenizer.batch_decode(completion_ids, skip_special_tokens=True)

    def _rewards(
        self,
        rows: list[dict],
        completions: list[str],
        completion_ids: list[list[int]],
        evaluation: bool = False,
    ) -> Tensor:
        """``[B, F]`` rewards of each function, B = len(completions), G consecutive completions
        per row (None → NaN, as TRL: left out of the sum); the evaluation's rewards with
        ``evaluation``. The trainer state is the training's before this step's update, or, in
        evaluation, after the latest one."""
        if evaluation:
            functions, tokenizers = self.eval_reward_funcs, self.eval_reward_processing_classes
            state = data.TrainerState(self.step, self.prompts_drawn / len(self.dataset))
        else:
            functions, tokenizers = self.reward_funcs, self.reward_processing_classes
            state = data.TrainerState(self.step, self.epoch)
        inputs = data.reward_inputs(rows, completions, completion_ids, state)
        scores = [
            data.score(function, tokenizer, data.reward_name(function, index), inputs)
            for index, (function, tokenizer) in enumerate(zip(functions, tokenizers, strict=True))
        ]
        shape = (len(functions), len(completions))  # [F, B], also when F = 0
        return torch.tensor(scores, dtype=torch.float32).reshape(shape).T

    def _sample_round(self, rows: list[dict]) -> Sampled:
        """G completions of each prompt in ``rows``, scored: the weighted sum of the reward
        functions plus, when overlong_buffer is set, the overlong penalty of each length."""
        config = self.config
        chat = data.is_conversational(rows[0]["prompt"])
        sequences, attention, prompt_length, completion_ids, completion_mask, truncated = (
            self._generate(self._prompt_texts(rows), add_special_tokens=not chat)
        )
        texts = self._completion_texts(completion_ids)
        ids = data.unpadded_ids(completion_ids, completion_mask)
        per_function = self._rewards(rows, texts, ids)
        lengths = completion_mask.sum(dim=1).cpu()  # tokens through EOS
        penalties = torch.zeros_like(lengths)
        if config.overlong_buffer is not None:
            penalties = overlong_penalty(
                lengths,
                config.max_completion_length,
                config.overlong_buffer,
                config.overlong_penalty_factor,
            )
        rewards = torch.nansum(per_function * self.reward_weights, dim=1) + penalties
        return Sampled(
            rows,
            sequences,
            attention,
            prompt_length,
            completion_ids,
            completion_mask,
            truncated,
            per_function,
            penalties,
            rewards,
        )

    def _dynamic_sampling(self, sampled: Sampled) -> tuple[Sampled, int, int]:
        """DAPO's dynamic sampling: drop the groups whose rewards are all equal (their advantages
        are 0: no policy gradient, only a smaller weight for the other groups) and sample more
        prompts until as many groups as ``sampled`` holds are kept (extra ones go unused) or
        max_sampling_rounds is reached. Returns the batch, the groups dropped and the rounds."""
        config = self.config
        wanted, kept, found, dropped, rounds = len(sampled.rows), [], 0, 0, 1
        while True:
            informative = ~equal_reward_groups(sampled.rewards.view(-1, config.num_generations))
            kept.append(take_groups(sampled, informative))
            found += int(informative.sum())
            dropped += int((~informative).sum())
            if found >= wanted or rounds == config.max_sampling_rounds:
                break
            sampled = self._sample_round(self._next_prompts())
            rounds += 1
        if found == 0:  # no group carried signal within the cap: train on the last round as is
            return sampled, dropped - len(sampled.rows), rounds
        batch = concatenate(kept, self.tokenizer.pad_token_id)
        return take_groups(batch, torch.arange(found) < wanted), dropped, rounds

    def _advantages(self, rewards: Tensor) -> Tensor:
        """``[B]`` advantages from the weighted rewards ``[B]``, group by group."""
        config = self.config
        groups = rewards.view(-1, config.num_generations)
        unbiased = config.std_unbiased
        if config.scale_rewards == "group":
            return group_advantages(groups, unbiased=unbiased).flatten()
        centered = group_advantages(groups, scale=False).flatten()
        if config.scale_rewards == "none":
            return centered
        everything = self._gather(rewards)
        return centered / (everything.std(correction=1 if unbiased else 0) + 1e-8)

    def _gather(self, x: Tensor) -> Tensor:
        if self.world_size == 1:
            return x
        parts = [torch.empty_like(x) for _ in range(self.world_size)]
        torch.distributed.all_gather(parts, x.contiguous())
        return torch.cat(parts)

    # ----- 3. the update -----

    def _token_log_probs(self, model, batch: Batch, with_entropy: bool = False):
        """log π(o_t | q, o_<t) of the completion tokens, ``[B, L]`` (and their entropies), by
        groups of similar completion length (rlgrad.lm.lengths): 0 past each group's longest."""
        lengths = completion_lengths(batch.completion_mask)
        groups = length_groups(lengths, batch.prompt_length, self.config.length_groups)
        pieces = [
            self._group_log_probs(
                model, batch, rows, max(1, int(lengths[rows].max())), with_entropy
            )
            for rows in groups
        ]
        if len(pieces) == 1:
            return pieces[0]
        order = torch.cat(groups)
        back = torch.empty_like(order)  # the row of each completion in the groups' order
        back[order] = torch.arange(len(order), device=order.device)
        taken = torch.cat([piece[0] for piece in pieces])[back]
        if not with_entropy:
            return taken, None
        return taken, torch.cat([piece[1] for piece in pieces])[back]

    def _group_log_probs(self, model, batch: Batch, rows: Tensor, length: int, with_entropy: bool):
        """The rows' ``[R, L]`` log-probs (and entropies) from one pass cut after ``length``
        completion tokens (causal attention: nothing before the cut changes), 0 after it."""
        every_row = len(rows) == len(batch.completion_ids)  # one group: all rows, in order

        def select(tensor: Tensor) -> Tensor:
            return tensor if every_row else tensor.index_select(0, rows)

        end = batch.prompt_length + length
        attention_mask = select(batch.attention_mask[:, :end])
        positions = {}
        if self.takes_position_ids:  # as generate() numbers them (padding: 1, never attended)
            position_ids = attention_mask.long().cumsum(-1) - 1
            positions["position_ids"] = position_ids.masked_fill(attention_mask == 0, 1)
        with torch.autocast(self.device.type, torch.bfloat16, enabled=self.config.bf16):
            logits = model(
                input_ids=select(batch.input_ids[:, :end]),
                attention_mask=attention_mask,
                use_cache=False,
                **positions,
            ).logits
        logits = logits[:, batch.prompt_length - 1 : -1].float() / self.config.temperature
        log_probs = torch.log_softmax(logits, dim=-1)
        completion_ids = select(batch.completion_ids[:, :length])
        taken = log_probs.gather(-1, completion_ids[..., None]).squeeze(-1)
        cut = batch.completion_ids.shape[1] - length  # columns after the cut
        taken = torch.nn.functional.pad(taken, (0, cut))
        if not with_entropy:
            return taken, None
        return taken, torch.nn.functional.pad(categorical_entropy(logits.detach()), (0, cut))

    @torch.no_grad()
    def _stored_log_probs(self, batch: Batch, reference: bool = False) -> Tensor:
        """``[B, L]`` log-probs kept with the batch: the policy's as sampled, or the reference's
        (the starting model's copy, or with adapters the same model with them switched off),
        micro-batch by micro-batch as the update computes them."""
        model = self.ref_model if reference and not self.uses_adapters else self.model
        switch = self.model.disable_adapter if reference and self.uses_adapters else nullcontext
        with switch():
            parts = micro_batches(batch, self.config.gradient_accumulation_steps)
            return torch.cat([self._token_log_probs(model, part)[0] for part in parts])

    def _loss_share(self, batch: Batch) -> float:
        """This process's share of the aggregation's denominator, times the number of
        processes: averaged gradients then equal those of the whole batch's loss."""
        if self.world_size == 1:
            return 1.0
        if self.aggregation == "token_mean":
            local = batch.completion_mask.sum()
            total = local.clone()
            torch.distributed.all_reduce(total)
            return float(local / total.clamp(min=1.0)) * self.world_size
        return 1.0  # seq_mean and const_norm: every process holds the same number of sequences

    def _micro_batch_weights(self, parts: list[Batch]) -> list[float]:
        """Each micro-batch's share of the aggregation's denominator (token_mean: its tokens;
        seq_mean and const_norm: its completions): the micro-batches' losses, each its own
        aggregate, weighted by these sum to the whole batch's loss."""
        if self.aggregation == "token_mean":
            counts = torch.stack([part.completion_mask.sum() for part in parts])
        else:
            counts = torch.tensor([float(len(part.advantages)) for part in parts])
        return (counts / counts.sum().clamp(min=1.0)).tolist()

    def _average_gradients(self) -> None:
        if self.world_size == 1:
            return
        for parameter in self.model.parameters():
            if parameter.grad is not None:
                torch.distributed.all_reduce(parameter.grad)
                parameter.grad /= self.world_size

    def update(self, batch: Batch) -> dict:
        """num_iterations gradient steps on GRPO's loss for one sampled batch; the metrics.

        Each step adds up the gradients of gradient_accumulation_steps micro-batches, each loss
        weighted by the micro-batch's share of the aggregation's denominator."""
        config = self.config
        eval_mode_that_checkpoints(self.model)  # no dropout: the ratio compares one function
        metrics: dict[str, list[float]] = {}
        share = self._loss_share(batch)
        parts = micro_batches(batch, config.gradient_accumulation_steps)
        weights = self._micro_batch_weights(parts)
        sequence_level = config.importance_sampling_level == "sequence"
        loss_function = gspo_loss if sequence_level else grpo_token_loss
        for _ in range(config.num_iterations):
            self.optimizer.zero_grad(set_to_none=True)
            loss_value, all_log_probs, entropies = 0.0, [], []
            for part, weight in zip(parts, weights, strict=True):
                log_probs, entropy = self._token_log_probs(self.model, part, with_entropy=True)
                old = part.old_log_probs if part.old_log_probs is not None else log_probs.detach()
                loss = loss_function(
                    log_probs,
                    old,
                    part.advantages,
                    part.completion_mask,
                    clip_eps=config.epsilon,
                    clip_eps_high=config.epsilon_high,
                    ref_log_probs=part.ref_log_probs,
                    beta=config.beta,
                    aggregation=self.aggregation,
                    max_length=config.max_completion_length,
                )
                (loss * (weight * share)).backward()
                loss_value += weight * loss.item()
                all_log_probs.append(log_probs.detach())
                entropies.append(entropy)
            log_probs, entropy = torch.cat(all_log_probs), torch.cat(entropies)  # [B, L]
            old = batch.old_log_probs if batch.old_log_probs is not None else log_probs
            self._average_gradients()
            limit = config.max_grad_norm if config.max_grad_norm is not None else math.inf
            norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), limit))
            if not (math.isfinite(norm) and math.isfinite(loss_value)):
                raise RuntimeError(
                    f"GRPO step {self.step}: the loss ({loss_value}) or gradient norm ({norm}) "
                    "is not finite; lower learning_rate or max_grad_norm"
                )
            self.optimizer.step()
            self.scheduler.step()
            with torch.no_grad():
                mask = batch.completion_mask.bool()
                if sequence_level:  # GSPO clips whole completions: the fractions count those
                    log_ratios = sequence_log_ratios(log_probs, old, mask)
                    ratios, advantage = torch.exp(log_ratios), batch.advantages
                else:
                    ratios = torch.exp(log_probs - old)[mask]
                    advantage = batch.advantages[:, None].expand_as(mask)[mask]
                low_clipped, high_clipped = clipped_fractions(
                    ratios.float(), advantage.float(), config.epsilon, config.epsilon_high
                )
                metrics.setdefault("loss", []).append(loss_value)
                metrics.setdefault("grad_norm", []).append(norm)
                metrics.setdefault("clip_ratio/low_mean", []).append(low_clipped.item())
                metrics.setdefault("clip_ratio/high_mean", []).append(high_clipped.item())
                metrics.setdefault("entropy", []).append(
                    masked_mean(entropy, batch.completion_mask).item()
                )
                if batch.ref_log_probs is not None:
                    kl = kl_k3(log_probs, batch.ref_log_probs)
                    metrics.setdefault("kl", []).append(masked_mean(kl, mask).item())
        return {name: float(np.mean(values)) for name, values in metrics.items()}

    # ----- the loop -----

    def sample(self) -> tuple[Batch, dict]:
        """Steps 1 and 2: completions, rewards and advantages for this process's prompts."""
        config = self.config
        sampled = self._sample_round(self._next_prompts())
        dropped, rounds = 0, 1
        if config.dynamic_sampling:
            sampled, dropped, rounds = self._dynamic_sampling(sampled)
        rewards, truncated = sampled.rewards, sampled.truncated
        completion_mask = sampled.completion_mask
        advantages = self._advantages(rewards).to(self.device)
        lengths = completion_mask.sum(dim=1)  # tokens through EOS, before any masking
        if config.mask_truncated_completions:
            completion_mask = completion_mask * (~truncated).float()[:, None]
        batch = Batch(
            sampled.input_ids,
            sampled.attention_mask,
            sampled.prompt_length,
            sampled.completion_ids,
            completion_mask,
            advantages,
        )
        if config.num_iterations > 1:
            batch.old_log_probs = self._stored_log_probs(batch)
        if config.beta > 0:
            batch.ref_log_probs = self._stored_log_probs(batch, reference=True)
        groups = rewards.view(-1, config.num_generations)
        info = {
            "reward": rewards.mean().item(),
            "reward_std": rewards.std(correction=0).item(),
            "frac_reward_zero_std": equal_reward_groups(groups).float().mean().item(),
            "completions/mean_length": lengths.float().mean().item(),
            "completions/min_length": lengths.min().item(),
            "completions/max_length": lengths.max().item(),
            "completions/clipped_ratio": truncated.float().mean().item(),
            "groups_dropped": dropped,
            "sampling_rounds": rounds,
        }
        if config.overlong_buffer is not None:
            info["rewards/overlong_penalty/mean"] = sampled.penalties.mean().item()
        for name, column in zip(self._reward_names(), sampled.per_function.T, strict=True):
            info[f"rewards/{name}/mean"] = torch.nanmean(column).item()
            info[f"rewards/{name}/std"] = float(np.nanstd(column.numpy()))
        if self._logs_completions(self.step + 1):
            batch.completion_log = self._completion_log(sampled, advantages)
        return batch, info

    def _completion_log(self, sampled: Sampled, advantages: Tensor) -> list[dict]:
        """The completion records of the step being sampled, one per completion."""
        group = self.config.num_generations
        prompts = [text for text in self._prompt_texts(sampled.rows) for _ in range(group)]
        return data.completion_records(
            self.step + 1,
            "train",
            prompts,
            self._completion_texts(sampled.completion_ids),
            self._reward_names(),
            sampled.per_function,
            sampled.rewards,
            advantages.cpu(),
        )

    def _reward_names(self, evaluation: bool = False) -> list[str]:
        functions = self.eval_reward_funcs if evaluation else self.reward_funcs
        return [data.reward_name(function, index) for index, function in enumerate(functions)]

    def _logs_completions(self, step: int) -> bool:
        """Whether the training completions of ``step`` go to the completion log."""
        config = self.config
        return config.log_completions and step % config.log_completions_steps == 0

    # ----- evaluation -----

    @torch.no_grad()
    def evaluate(self) -> dict:
        """Generate for every eval_dataset prompt and score the completions with the evaluation's
        rewards; the metrics, named eval_*. One greedy completion per prompt, or with
        eval_do_sample num_generations sampled ones (temperature, top_p), on random streams
        seeded with the config's seed at every evaluation: the training's random numbers stay as
        they were. Processes split the prompts; every process returns the same metrics."""
        if self.eval_dataset is None:
            raise BadInputError("GRPOTrainer.evaluate(): there is no eval_dataset to evaluate on")
        config = self.config
        group = config.num_generations if config.eval_do_sample else 1
        # as many completions per generate call as a training step's per process
        per_call = max(1, config.prompts_per_step // self.world_size * config.num_generations)
        size = max(1, per_call // group)
        rows = self.eval_dataset[self.rank :: self.world_size]
        records, lengths = [], []
        with separate_random_streams(config.seed + self.rank):
            for start in range(0, len(rows), size):
                more, tokens = self._evaluate_rows(rows[start : start + size], group)
                records.extend(more)
                lengths.extend(tokens)
        records, lengths = self._from_every_process(records), self._from_every_process(lengths)
        if config.log_completions:
            self._write_completions(records)
        return self._evaluation_metrics(records, lengths)

    def _evaluate_rows(self, rows: list[dict], group: int) -> tuple[list[dict], list[int]]:
        """Completion records of ``group`` completions of each row, and their lengths in tokens
        (through EOS)."""
        config = self.config
        prompts = self._prompt_texts(rows)
        chat = data.is_conversational(rows[0]["prompt"])
        _, _, _, completion_ids, completion_mask, _ = self._generate(
            prompts, group, greedy=not config.eval_do_sample, add_special_tokens=not chat
        )
        texts = self._completion_texts(completion_ids)
        ids = data.unpadded_ids(completion_ids, completion_mask)
        per_function = self._rewards(rows, texts, ids, evaluation=True)
        rewards = torch.nansum(per_function * self.eval_reward_weights, dim=1)
        records = data.completion_records(
            self.step,
            "eval",
            [text for text in prompts for _ in range(group)],
            texts,
            self._reward_names(evaluation=True),
            per_function,
            rewards,
        )
        return records, [len(tokens) for tokens in ids]

    def _evaluation_metrics(self, records: list[dict], lengths: list[int]) -> dict:
        """eval_reward_mean and _std, each reward's mean (None left out) and the mean length."""
        rewards = torch.tensor([record["reward"] for record in records])
        metrics = {
            "eval_reward_mean": rewards.mean().item(),
            "eval_reward_std": rewards.std(correction=0).item(),
        }
        for name in self._reward_names(evaluation=True):
            scores = [record["rewards"][name] for record in records]
            values = torch.tensor([math.nan if s is None else s for s in scores])
            metrics[f"eval_rewards/{name}/mean"] = torch.nanmean(values).item()
        metrics["eval_completions/mean_length"] = float(np.mean(lengths))
        return metrics

    def _from_every_process(self, items: list) -> list:
        """The lists ``items`` of every process joined, in rank order (on every process)."""
        if self.world_size == 1:
            return items
        parts = [None] * self.world_size
        torch.distributed.all_gather_object(parts, items)
        return [item for part in parts for item in part]

    def train(
        self,
        resume_from_checkpoint: str | Path | None = None,
        callbacks: Sequence[Callable[[GRPOTrainer, dict], bool | None]] = (),
    ) -> list[dict]:
        """Run max_steps GRPO steps (from a checkpoint when given); return the metric rows.

        Each callback is called as ``callback(trainer, row)`` after every step (an evaluation,
        a custom log, early stopping); training stops after the step where one returns True.
        Every eval_steps steps the row holds the evaluation's metrics too (see :meth:`evaluate`).
        """
        if resume_from_checkpoint is not None:
            self.load_checkpoint(resume_from_checkpoint)
        config = self.config
        progress = self._progress_bar()
        self.tensorboard = self._open_tensorboard()
        try:
            while self.step < config.max_steps:
                started = time.perf_counter()
                batch, info = self.sample()
                metrics = self.update(batch)
                self.step += 1
                row = {
                    "step": self.step,
                    **info,
                    **metrics,
                    "learning_rate": self.scheduler.get_last_lr()[0],
                    "step_time": time.perf_counter() - started,
                }
                if batch.completion_log is not None:
                    self._write_completions(self._from_every_process(batch.completion_log))
                if config.eval_steps and self.step % config.eval_steps == 0:
                    started = time.perf_counter()
                    row.update(self.evaluate())
                    row["eval_time"] = time.perf_counter() - started
                self.history.append(row)
                self._log(row, progress)
                if config.save_steps and self.step % config.save_steps == 0:
                    self.save_checkpoint()
                # every callback sees every step, even after one asked to stop
                if any([bool(callback(self, row)) for callback in callbacks]):
                    break
        finally:
            if self.tensorboard is not None:
                self.tensorboard.close()
                self.tensorboard = None
        if progress is not None:
            progress.close()
        if config.output_dir is not None:
            self.save_checkpoint()
        return self.history

    # ----- 4. logs and checkpoints -----

    def _progress_bar(self):
        if self.rank != 0 or not self.config.logging_steps:
            return None
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return None
        return tqdm(total=self.config.max_steps, initial=self.step, desc="grpo", unit="step")

    def _open_tensorboard(self):
        """A TensorBoard writer on output_dir with report_to='tensorboard' (rank 0), else None;
        events after the current step, left by a run that stopped later, are dropped."""
        if self.config.report_to != "tensorboard" or self.rank != 0:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ImportError(
                "GRPOConfig.report_to='tensorboard' needs TensorBoard: "
                "pip install 'rlgrad[tensorboard]'"
            ) from None
        return SummaryWriter(self.config.output_dir, purge_step=self.step or None)

    def _log(self, row: dict, progress) -> None:
        if self.rank != 0:
            return
        if self.config.output_dir is not None:
            directory = Path(self.config.output_dir)
            directory.mkdir(parents=True, exist_ok=True)
            with open(directory / "metrics.jsonl", "a") as handle:
                handle.write(json.dumps(row) + "\n")
        if self.tensorboard is not None:
            for name, value in row.items():
                if name != "step" and isinstance(value, (int, float)):
                    self.tensorboard.add_scalar(name, value, row["step"])
        if progress is not None:
            progress.update(1)
            progress.set_postfix(
                reward=f"{row['reward']:.3f}", kl=f"{row.get('kl', 0):.3f}", refresh=False
            )

    def _write_completions(self, records: list[dict]) -> None:
        """Append the completion records (every process's) to output_dir/completions.jsonl and,
        with report_to, to TensorBoard as a text table (tagged completions/train or /eval)."""
        if self.rank != 0 or not records:
            return
        data.append_records(Path(self.config.output_dir) / "completions.jsonl", records)
        if self.tensorboard is not None:
            split, step = records[0]["split"], records[0]["step"]
            self.tensorboard.add_text(f"completions/{split}", data.markdown_table(records), step)

    def save_checkpoint(self) -> Path | None:
        """``output_dir/checkpoint-STEP``: the model (``save_pretrained``; with adapters, the
        adapters only), the tokenizer, and everything needed to resume exactly (the trained
        weights, optimizer, schedule, prompt order, RNG states)."""
        if self.config.output_dir is None or self.rank != 0:
            return None
        path = Path(self.config.output_dir) / f"checkpoint-{self.step}"
        path.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(path)
        if hasattr(self.tokenizer, "save_pretrained"):
            self.tokenizer.save_pretrained(path)
        state = {
            "step": self.step,
            "model": trainable_state(self.model) if self.uses_adapters else self.model.state_dict(),
            "ref_model": self.ref_model.state_dict() if self.ref_model is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "order": list(self.order),
            "prompts_drawn": self.prompts_drawn,
            "epoch": self.epoch,
            "history": self.history,
            **checkpoints.random_states(self.generator),
        }
        checkpoints.save(state, path / "trainer_state.pt")
        return path

    def load_checkpoint(self, path: str | Path) -> None:
        state = torch.load(Path(path) / "trainer_state.pt", weights_only=False)
        if self.uses_adapters:  # the base weights are the ones given to the trainer, unchanged
            load_trainable_state(self.model, state["model"])
        else:
            self.model.load_state_dict(state["model"])
        if self.ref_model is not None and state["ref_model"] is not None:
            self.ref_model.load_state_dict(state["ref_model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.order = list(state["order"])
        self.history = list(state["history"])
        self.step = state["step"]
        # checkpoints written before the trainer counted prompts: the steps' share, as a guess
        self.prompts_drawn = state.get("prompts_drawn", self.step * self.config.prompts_per_step)
        self.epoch = state.get("epoch", self.prompts_drawn / len(self.dataset))
        checkpoints.restore_random_states(state, self.generator)
