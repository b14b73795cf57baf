"""GRPO's configuration for a causal language model, and its checks.

The field names follow TRL's ``GRPOConfig`` where they mean the same thing; each field's
docstring says what it does. :func:`check` refuses a config whose fields are out of range with a
ValueError that names the field, what it must be and what it got.
"""

from __future__ import annotations

import dataclasses

from rlgrad.grpo import AGGREGATIONS
from rlgrad.support import configs

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
    """New tokens per completion at most; a completion without EOS by then is truncated. With
    tools, the tool messages' tokens count too."""
    max_tool_calling_iterations: int | None = None
    """With tools: rounds of tool calls per completion at most (each: run the calls of the
    model's turn, then generate its next turn); none: until a turn makes no call or
    max_completion_length runs out."""
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
    """'group': (r − μ_group)/(σ_group + ε) (the course's GRPO); 'batch': the group mean is
    subtracted and the batch σ divides; 'none': r − μ_group (Dr. GRPO)."""
    std_unbiased: bool = False
    """Sample σ (as TRL, verl, OpenRLHF) instead of the course's population σ."""
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
    """Print a log line every this many steps (0: never, and checkpoints are written without
    transformers' progress bars); every step is kept in the history."""
    save_steps: int = 0
    """Write a checkpoint every this many steps (0: only at the end, when output_dir is set)."""
    output_dir: str | None = None
    """The run directory: config.json, metrics.csv and summary.json as every rlgrad trainer
    writes them (rlgrad plot and rlgrad report read them), metrics.jsonl, checkpoints (none:
    nothing is written)."""
    task: str = "lm"
    """A name for what is learned (the data set and its rewards), written as the run's env in
    config.json and summary.json: rlgrad report groups runs by it."""
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
    TensorBoard events in output_dir (needs tensorboard); 'none': no events."""


def check(config: GRPOConfig, world_size: int = 1) -> None:
    """Raise a ValueError naming the first field of ``config`` that is out of range for a run on
    ``world_size`` processes."""
    require = configs.require
    configs.positive(
        config,
        "max_steps",
        "prompts_per_step",
        "num_generations",
        "max_completion_length",
        "num_iterations",
        "temperature",
        "max_sampling_rounds",
        "gradient_accumulation_steps",
        "length_groups",
    )
    # learning_rate 0 is allowed: a control run that samples and scores but never moves
    configs.non_negative(config, "learning_rate", "beta", "overlong_penalty_factor")
    require(
        isinstance(config.task, str) and config.task != "",
        f"GRPOConfig.task must be a non-empty string; got {config.task!r}",
    )
    require(0 < config.top_p <= 1, f"GRPOConfig.top_p must be in (0, 1]; got {config.top_p!r}")
    require(
        config.num_generations >= 2,
        f"GRPOConfig.num_generations must be at least 2 (a group compares completions); "
        f"got {config.num_generations}",
    )
    for name, allowed in (
        ("loss_type", LOSS_TYPES),
        ("scale_rewards", REWARD_SCALINGS),
        ("importance_sampling_level", IMPORTANCE_SAMPLING_LEVELS),
    ):
        value = getattr(config, name)
        require(
            value in allowed,
            f"GRPOConfig.{name} must be one of {', '.join(allowed)}; got {value!r}",
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
    iterations = config.max_tool_calling_iterations
    require(
        iterations is None or (type(iterations) is int and iterations >= 0),
        f"GRPOConfig.max_tool_calling_iterations must be none or an integer >= 0; got "
        f"{iterations!r}",
    )
    check_logging(config)


def check_logging(config: GRPOConfig) -> None:
    """Raise a ValueError naming the first evaluation or logging field that is out of range."""
    require = configs.require
    for name in ("eval_do_sample", "log_completions"):
        value = getattr(config, name)
        require(isinstance(value, bool), f"GRPOConfig.{name} must be True or False; got {value!r}")
    require(
        type(config.eval_steps) is int and config.eval_steps >= 0,
        f"GRPOConfig.eval_steps must be an integer >= 0; got {config.eval_steps!r}",
    )
    every = config.log_completions_steps
    require(
        type(every) is int and every > 0,
        f"GRPOConfig.log_completions_steps must be an integer > 0; got {every!r}",
    )
    require(
        config.report_to in REPORT_TO,
        f"GRPOConfig.report_to must be one of {', '.join(REPORT_TO)}; got {config.report_to!r}",
    )
    for name, on in (
        ("log_completions", config.log_completions),
        ("report_to", config.report_to != "none"),
    ):
        require(
            not on or config.output_dir is not None,
            f"GRPOConfig.{name} writes to output_dir, which must be set; got output_dir=None",
        )
