"""GRPO's configuration for a causal language model, and its checks.

The field names follow TRL's ``GRPOConfig`` (and the ``TrainingArguments`` it extends) where they
mean the same thing, so a TRL script's config runs unchanged; each field's docstring says what it
does. A TRL field that rlgrad does not implement is refused in one line that names it (no field
is ever ignored), except at the value that describes what rlgrad does anyway (``use_vllm=False``,
say: :data:`TRL_VALUES_RLGRAD_FOLLOWS`). :func:`resolve` turns TRL's batch size and epochs into
rlgrad's prompts per step and steps; :func:`check` refuses a config whose fields are out of range
with a ValueError that names the field, what it must be and what it got.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math

from rlgrad.errors import BadInputError
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
DEFAULT_PROMPTS_PER_STEP = 8  # when neither prompts_per_step nor per_device_train_batch_size is set
DEFAULT_MAX_STEPS = 100  # when neither max_steps nor num_train_epochs is set

# TRL fields rlgrad does not implement, accepted at the values that describe what it does anyway,
# so that a TRL script that spells out such a value runs; any other value is refused
TRL_VALUES_RLGRAD_FOLLOWS = {
    "use_vllm": (False,),
    "use_transformers_paged": (False,),
    "use_transformers_continuous_batching": (False,),
    "use_liger_kernel": (False,),
    "fp16": (False,),
    "push_to_hub": (False,),
    "trust_remote_code": (False,),
    "sync_ref_model": (False,),
    "remove_unused_columns": (False,),  # every column reaches the reward functions
    "shuffle_dataset": (True,),  # the prompts are reshuffled every epoch
    "disable_dropout": (True,),  # sampling and the update run in eval mode
    "optim": ("adamw_torch", "adamw_torch_fused"),  # torch's AdamW
    "lr_scheduler_type": ("constant_with_warmup",),  # linear warm-up, then constant
    "warmup_ratio": (0, 0.0),
    "multi_objective_aggregation": ("sum_then_normalize",),  # weighted sum, then advantages
    "top_entropy_quantile": (1.0,),
    "entropy_coef": (0, 0.0),
    "min_p": (None,),
    "repetition_penalty": (1.0,),
    "delta": (None,),
    "steps_per_generation": (None,),
    "generation_batch_size": (None,),
    "num_generations_eval": (None,),
    "generation_kwargs": (None,),
    "chat_template_kwargs": (None,),
    "log_completions_hub_repo": (None,),
    "run_name": (None,),
    "save_strategy": ("steps",),  # every save_steps steps, and at the end
    "logging_strategy": ("steps",),
    "eval_strategy": ("steps", "no"),  # "no" only with eval_steps 0: see refuse_foreign_fields
    "gradient_checkpointing_kwargs": (None, {"use_reentrant": False}),
}

# TRL's GRPOConfig fields (TRL 1.x, and some of 0.x) that rlgrad does not implement, besides the
# TrainingArguments fields (read from transformers when one is named) and TRL_VALUES_RLGRAD_FOLLOWS;
# every vllm_* name is TRL's too
TRL_GRPO_ONLY_FIELDS = frozenset(
    {
        "router_aux_loss_coef",
        "pad_to_multiple_of",
        "cache_implementation",
        "sapo_temperature_neg",
        "sapo_temperature_pos",
        "vespo_k_pos",
        "vespo_lambda_pos",
        "vespo_k_neg",
        "vespo_lambda_neg",
        "ref_model_mixup_alpha",
        "ref_model_sync_steps",
        "use_adaptive_entropy",
        "entropy_coef_min",
        "entropy_coef_max",
        "entropy_coef_delta",
        "entropy_target",
        "off_policy_mask_threshold",
        "use_bias_correction_kl",
        "log_multimodal",
        "num_completions_to_print",
        "log_unique_prompts",
        "transformers_continuous_batching_config",
        "ds3_gather_for_generation",
        "use_liger_loss",
        "wandb_log_unique_prompts",
    }
)


@dataclasses.dataclass(frozen=True)
class GRPOConfig:
    """GRPO's hyperparameters for a causal language model."""

    max_steps: int | None = None
    """Training steps (each: sample, score, then num_iterations gradient steps); none or −1
    (TRL's "unset"): from num_train_epochs, or 100 when that is none too."""
    num_train_epochs: float | None = None
    """With max_steps none or −1: train for ceil(num_train_epochs · rows / prompts_per_step)
    steps (TRL's name; a max_steps > 0 wins, as in TRL)."""
    prompts_per_step: int | None = None
    """Prompts per step, over all processes (a multiple of the number of processes); none: from
    per_device_train_batch_size, or 8 when that is none too."""
    per_device_train_batch_size: int | None = None
    """TRL's batch size: completions per process in each micro-batch, so that
    prompts_per_step = per_device_train_batch_size · processes · gradient_accumulation_steps / G
    (a whole number; set this or prompts_per_step)."""
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
    top_k: int = 0
    """Sample among the k most probable tokens only (0: all of them)."""
    max_prompt_length: int | None = None
    """Keep the last this many tokens of each (rendered) prompt; the reward functions still get
    the whole prompt (none: no cut)."""
    num_iterations: int = 1
    """μ: gradient steps on each sampled batch (ratios against the sampling-time policy)."""
    learning_rate: float = 1e-5
    """AdamW learning rate after warm-up."""
    warmup_steps: int = 0
    """Gradient steps of linear learning-rate warm-up from 0."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    adam_beta1: float = 0.9
    """AdamW's β₁ (decay of the gradient's running mean)."""
    adam_beta2: float = 0.999
    """AdamW's β₂ (decay of the squared gradient's running mean)."""
    adam_epsilon: float = 1e-8
    """AdamW's ε in the denominator."""
    max_grad_norm: float | None = 1.0
    """Clip the global gradient norm to this (none: no clipping)."""
    beta: float = 0.0
    """Coefficient of the k3 KL penalty to the frozen starting model (0: no reference kept)."""
    epsilon: float = 0.2
    """Lower clip range ε_low of the ratio (the upper one too unless epsilon_high)."""
    epsilon_high: float | None = None
    """Upper clip range ε_high (DAPO's clip-higher), or none for epsilon."""
    reward_weights: tuple[float, ...] | None = None
    """One weight per reward function in the weighted sum of rewards (none: all 1)."""
    scale_rewards: str = "group"
    """'group': (r − μ_group)/(σ_group + ε) (the course's GRPO); 'batch': the group mean is
    subtracted and the batch σ divides; 'none': r − μ_group (Dr. GRPO). TRL's True and False
    mean 'group' and 'none'."""
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
    TensorBoard events in output_dir (needs tensorboard); 'none': no events. TRL's forms
    ["tensorboard"], [] and None are read as 'tensorboard', 'none' and 'none'."""
    model_init_kwargs: dict | None = None
    """Keyword arguments of AutoModelForCausalLM.from_pretrained when the trainer's model is
    given as a path (torch_dtype, attn_implementation, ...)."""

    def __post_init__(self):
        # TRL's spellings of two fields, read as rlgrad's (the dataclass is frozen, hence
        # object.__setattr__)
        scaling = {True: "group", False: "none"}.get(self.scale_rewards, self.scale_rewards)
        object.__setattr__(self, "scale_rewards", scaling)
        object.__setattr__(self, "report_to", report_to_name(self.report_to))
        if isinstance(self.reward_weights, list):
            object.__setattr__(self, "reward_weights", tuple(self.reward_weights))


def _taking_trl_fields(init):
    """The dataclass's ``__init__``, by keyword only, called after :func:`refuse_foreign_fields`
    has refused the names that are no field in one line (instead of Python's TypeError) and
    dropped the TRL fields given at a value rlgrad follows anyway."""

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        if args:  # TRL's first field is output_dir, rlgrad's is not: by name, nothing is mixed up
            raise BadInputError(
                f"GRPOConfig takes its fields by name only (GRPOConfig(output_dir=...)); got "
                f"{len(args)} positional argument{'s' if len(args) > 1 else ''}"
            )
        refuse_foreign_fields(kwargs)
        names = {field.name for field in dataclasses.fields(GRPOConfig)}
        init(self, *args, **{key: value for key, value in kwargs.items() if key in names})

    return __init__


GRPOConfig.__init__ = _taking_trl_fields(GRPOConfig.__init__)


def report_to_name(value):
    """TRL's report_to as rlgrad's one name: None and [] mean 'none', a one-name list that name
    (anything else is returned as given, for :func:`check` to refuse)."""
    if value is None:
        return "none"
    if isinstance(value, (list, tuple)) and len(value) <= 1:
        return value[0] if value else "none"
    return value


def refuse_foreign_fields(fields: dict) -> None:
    """Raise for the first name in ``fields`` that is no GRPOConfig field: a TRL field rlgrad
    does not implement (unless at a value in :data:`TRL_VALUES_RLGRAD_FOLLOWS`), or an unknown
    name, with the closest field's name."""
    own = {field.name for field in dataclasses.fields(GRPOConfig)}
    for name, value in fields.items():
        if name in own:
            continue
        accepted = TRL_VALUES_RLGRAD_FOLLOWS.get(name)
        if accepted is not None:
            # eval_strategy="no" says "never evaluate", which only eval_steps=0 does
            no_evaluation = name == "eval_strategy" and value == "no"
            if value in accepted and not (no_evaluation and fields.get("eval_steps", 0)):
                continue
            allowed = " or ".join(f"{name}={option!r}" for option in accepted)
            raise BadInputError(
                f"GRPOConfig: TRL's field {name!r} is not implemented in rlgrad; it accepts only "
                f"{allowed} (what rlgrad does{' with eval_steps=0' if no_evaluation else ''}); "
                f"got {value!r}"
            )
        if is_trl_field(name):
            raise BadInputError(
                f"GRPOConfig: TRL's field {name!r} is not implemented in rlgrad; remove it "
                f"(got {name}={value!r})"
            )
        close = difflib.get_close_matches(name, sorted(own), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise BadInputError(f"GRPOConfig has no field {name!r}{hint}")


def is_trl_field(name: str) -> bool:
    """Whether ``name`` is a field of TRL's GRPOConfig or of transformers' TrainingArguments."""
    if name in TRL_GRPO_ONLY_FIELDS or name.startswith("vllm_"):
        return True
    try:
        from transformers import TrainingArguments
    except ImportError:
        return False
    return name in {field.name for field in dataclasses.fields(TrainingArguments)}


def resolve(config: GRPOConfig, world_size: int, rows: int) -> GRPOConfig:
    """``config`` with prompts_per_step and max_steps as numbers, for a run on ``world_size``
    processes over a data set of ``rows`` prompts: prompts_per_step from TRL's
    per_device_train_batch_size B as B · world_size · gradient_accumulation_steps / G, and
    max_steps (none or −1) from num_train_epochs E as ceil(E · rows / prompts_per_step).

    >>> config = resolve(GRPOConfig(per_device_train_batch_size=4, num_generations=2,
    ...                             gradient_accumulation_steps=2, num_train_epochs=1.5), 2, 10)
    >>> config.prompts_per_step, config.max_steps
    (8, 2)
    """
    require = configs.require
    prompts = config.prompts_per_step
    per_device = config.per_device_train_batch_size
    if per_device is not None:
        require(
            type(per_device) is int and per_device > 0,
            f"GRPOConfig.per_device_train_batch_size must be an integer > 0; got {per_device!r}",
        )
        completions = per_device * world_size * config.gradient_accumulation_steps
        require(
            completions % config.num_generations == 0,
            f"GRPOConfig.per_device_train_batch_size · processes · gradient_accumulation_steps "
            f"({per_device} · {world_size} · {config.gradient_accumulation_steps} = "
            f"{completions}) must be a multiple of num_generations ({config.num_generations})",
        )
        derived = completions // config.num_generations
        require(
            prompts is None or prompts == derived,
            f"GRPOConfig: set prompts_per_step or per_device_train_batch_size, not both; got "
            f"prompts_per_step={prompts} where per_device_train_batch_size gives {derived}",
        )
        prompts = derived
    prompts = DEFAULT_PROMPTS_PER_STEP if prompts is None else prompts
    steps = config.max_steps
    if steps is None or steps == -1:
        epochs = config.num_train_epochs
        require(
            epochs is None or (isinstance(epochs, (int, float)) and epochs > 0),
            f"GRPOConfig.num_train_epochs must be > 0 or none; got {epochs!r}",
        )
        steps = DEFAULT_MAX_STEPS if epochs is None else math.ceil(epochs * rows / prompts)
    return dataclasses.replace(config, prompts_per_step=prompts, max_steps=steps)


def check(config: GRPOConfig, world_size: int = 1) -> None:
    """Raise a ValueError naming the first field of ``config`` that is out of range for a run on
    ``world_size`` processes (prompts_per_step and max_steps as :func:`resolve` sets them)."""
    require = configs.require
    config = resolve(config, world_size, rows=1)
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
        "adam_epsilon",
    )
    # learning_rate 0 is allowed: a control run that samples and scores but never moves
    configs.non_negative(config, "learning_rate", "beta", "overlong_penalty_factor")
    check_trl_fields(config)
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


def check_trl_fields(config: GRPOConfig) -> None:
    """Raise a ValueError naming the first of the fields added for TRL scripts that is out of
    range."""
    require = configs.require
    require(
        type(config.top_k) is int and config.top_k >= 0,
        f"GRPOConfig.top_k must be an integer >= 0; got {config.top_k!r}",
    )
    cut = config.max_prompt_length
    require(
        cut is None or (type(cut) is int and cut > 0),
        f"GRPOConfig.max_prompt_length must be none or an integer > 0; got {cut!r}",
    )
    for name in ("adam_beta1", "adam_beta2"):
        value = getattr(config, name)
        require(
            isinstance(value, (int, float)) and 0 <= value < 1,
            f"GRPOConfig.{name} must be in [0, 1); got {value!r}",
        )
    weights = config.reward_weights
    require(
        weights is None
        or (
            isinstance(weights, tuple)
            and all(isinstance(w, (int, float)) and math.isfinite(w) for w in weights)
        ),
        f"GRPOConfig.reward_weights must be none or a list of finite numbers; got {weights!r}",
    )
    kwargs = config.model_init_kwargs
    require(
        kwargs is None or isinstance(kwargs, dict),
        f"GRPOConfig.model_init_kwargs must be none or a dict; got {type(kwargs).__name__}",
    )


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
