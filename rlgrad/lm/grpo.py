"""GRPO for Hugging Face causal language models: the trainer, read top to bottom.

One training step (:meth:`GRPOTrainer.train`): 1. take ``prompts_per_step`` prompts and sample
``num_generations`` (G) completions of each with ``model.generate`` (KV cache, temperature,
top-p); the completion mask runs up to and including the first EOS; 2. score every completion
with the reward functions (TRL's convention ``f(prompts, completions, **columns) ->
list[float | None]``), weight and sum them, and turn each group's rewards into advantages
(r_i − μ)/(σ + ε) with :func:`rlgrad.returns.group_advantages`, with no critic; 3.
``num_iterations`` (μ) gradient steps on :func:`rlgrad.grpo.grpo_token_loss` with the
log-probabilities stored at sampling time, the k3 KL to a frozen in-memory copy of the starting
model (β), clip ranges ε_low/ε_high, gradient clipping and AdamW with linear warm-up; 4. log,
checkpoint.

The pieces live by concern: the config and its checks in :mod:`rlgrad.lm.config`; generation,
reward scoring and sampling rounds in :mod:`rlgrad.lm.sampling`; the batch, log-probabilities,
optimizer and adapters in :mod:`rlgrad.lm.model`; torchrun's data parallelism in
:mod:`rlgrad.lm.distributed`; metrics, TensorBoard, the completion log and checkpoints in
:mod:`rlgrad.lm.outputs`; prompts, reward calls and completion records in :mod:`rlgrad.lm.data`.

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

The trainer is called as TRL's (:mod:`rlgrad.lm.arguments`: the model may be a path; the
older positional call still works), with TRL's config names (:mod:`rlgrad.lm.config`) and
TrainerCallbacks (:mod:`rlgrad.lm.callbacks`).

Data, as TRL users give it (:mod:`rlgrad.lm.data`): prompts are strings or chat messages
(rendered with the tokenizer's chat template); reward functions get ``prompts``,
``completions``, ``completion_ids``, ``trainer_state`` and the other columns, may be ``async
def`` (awaited together), and a reward may be a one-logit sequence-classification model with its
tokenizer. Every ``eval_steps`` steps the
trainer generates for ``eval_dataset`` (greedy, or sampled with ``eval_do_sample``) on random
streams of its own and logs ``eval_reward_mean``; ``log_completions`` appends the prompts,
completions and rewards to ``output_dir/completions.jsonl`` (and to TensorBoard as text).

Tools (:mod:`rlgrad.lm.tools`): with ``tools=[f, ...]`` or an ``environment_factory``, a
completion may call functions and go on after their results, over several turns
(:func:`rlgrad.lm.sampling.generate_with_tools`); the completion mask is then 1 on the model's
own tokens only, so the loss, the KL, the entropy and the loss's token counts leave the tool
messages out, and the reward functions get each completion as its messages.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from rlgrad.distributions import kl_k3
from rlgrad.errors import BadInputError
from rlgrad.grpo import grpo_token_loss, gspo_loss, masked_mean, sequence_log_ratios
from rlgrad.grpo_variants import overlong_penalty
from rlgrad.lm import arguments, data, distributed, outputs, run_files, sampling
from rlgrad.lm import tools as tool_use
from rlgrad.lm.callbacks import Callbacks
from rlgrad.lm.config import LOSS_TYPES, GRPOConfig, check, resolve
from rlgrad.lm.model import (
    Batch,
    Forward,
    enable_gradient_checkpointing,
    eval_mode_that_checkpoints,
    given_or_made_optimizer,
    load_trainable_state,
    make_optimizer,
    micro_batch_weights,
    micro_batches,
    takes_position_ids,
    token_log_probs,
    trainable_state,
    with_adapters,
)
from rlgrad.lm.sampling import RewardFunction, Sampled
from rlgrad.policy import clipped_fractions
from rlgrad.returns import (
    batch_scaled_group_advantages,
    equal_reward_groups,
    group_advantages,
)
from rlgrad.support import checkpoints

# the names this module has always offered; new code imports them from their own modules
__all__ = ["Batch", "GRPOConfig", "GRPOTrainer", "check", "make_optimizer"]


class GRPOTrainer:
    """GRPO on a causal LM, called as TRL's ``GRPOTrainer``:

    ```python
    trainer = GRPOTrainer(
        model="path/to/model",          # or an AutoModelForCausalLM object
        reward_funcs=[correct],         # f(prompts, completions, **columns) -> floats
        args=GRPOConfig(output_dir="out", num_generations=8, per_device_train_batch_size=8),
        train_dataset=dataset,
        processing_class=tokenizer,     # none: AutoTokenizer of the model's path
    )
    history = trainer.train()
    ```

    ``model`` is a model or a local path (loaded with ``AutoModelForCausalLM.from_pretrained``
    and ``args.model_init_kwargs``); without ``processing_class`` the tokenizer is
    ``AutoTokenizer.from_pretrained`` of the model's path, and one without a pad token pads with
    EOS. ``train_dataset`` is a list of dicts or a ``datasets.Dataset`` with a ``prompt`` column,
    strings or chat messages (see :mod:`rlgrad.lm.data`); other columns reach the reward
    functions as keyword lists, one entry per completion. A reward in ``reward_funcs`` may be an
    ``async def`` function (the trainer awaits every such call of a scoring round concurrently)
    or a sequence-classification model with one logit, its tokenizer at the same index of
    ``reward_processing_classes``. The rewards' weights are ``args.reward_weights`` (or
    ``reward_weights=``). ``eval_dataset`` (the same form) is scored by ``eval_reward_funcs``
    with ``eval_reward_weights`` (none: the training rewards and weights) every ``eval_steps``
    steps. ``callbacks`` are transformers ``TrainerCallback`` objects, of which the trainer calls
    the events listed in :mod:`rlgrad.lm.callbacks`. ``optimizers=(optimizer, scheduler)``
    replaces AdamW and its warm-up schedule (a scheduler of none: the warm-up schedule on the
    given optimizer). ``peft_config`` (a PEFT config such as ``LoraConfig``) wraps the model
    with adapters, which alone train; ``trainer.model`` is then the PEFT model, and checkpoints
    hold the adapters. ``tools`` (functions with type hints and Google-style docstrings) and
    ``environment_factory`` (a class whose objects' public methods are tools, ``reset(**row)``
    per rollout; the reward functions get them as ``environments``) let the model call tools
    over several turns, up to ``args.max_tool_calling_iterations`` rounds (see
    :mod:`rlgrad.lm.tools`).

    The older call ``GRPOTrainer(model, tokenizer, reward_funcs, train_dataset, config,
    reward_weights, peft_config)`` and the keywords ``config=`` and ``tokenizer=`` still work,
    with a DeprecationWarning (:mod:`rlgrad.lm.arguments`).
    """

    @arguments.accepts_the_older_call
    def __init__(
        self,
        model,
        reward_funcs: RewardFunction | Sequence[RewardFunction] | None = None,
        args: GRPOConfig | None = None,
        train_dataset=None,
        eval_dataset=None,
        processing_class=None,
        reward_processing_classes=None,
        callbacks: Sequence | None = None,
        optimizers: tuple = (None, None),
        peft_config=None,
        *,
        reward_weights: Sequence[float] | None = None,
        eval_reward_funcs: RewardFunction | Sequence[RewardFunction] | None = None,
        eval_reward_weights: Sequence[float] | None = None,
        eval_reward_processing_classes: Sequence | None = None,
        tools: Sequence[Callable] | None = None,
        environment_factory: Callable[[], object] | None = None,
    ):
        args = args or GRPOConfig()
        if not isinstance(args, GRPOConfig):
            raise TypeError(
                "GRPOTrainer: args must be an rlgrad.lm.GRPOConfig; got "
                f"{type(args).__module__}.{type(args).__name__}"
            )
        for name, value in (("reward_funcs", reward_funcs), ("train_dataset", train_dataset)):
            if value is None:
                raise BadInputError(f"GRPOTrainer: {name} must be given; got None")
        self.rank, self.world_size = distributed.join_process_group()
        model, tokenizer = arguments.load_model(model, processing_class, args.model_init_kwargs)
        self.model, self.tokenizer = model, tokenizer
        self.dataset = self._rows(train_dataset, "train_dataset")
        self.config = resolve(args, self.world_size, len(self.dataset))
        check(self.config, self.world_size)
        self.reward_funcs = sampling.as_list(reward_funcs)
        self.reward_weights = sampling.weights_for(
            self._reward_weights(reward_weights), len(self.reward_funcs), "reward_weights"
        )
        self.reward_processing_classes = data.check_rewards(
            self.reward_funcs, sampling.as_list_or_none(reward_processing_classes), "reward_funcs"
        )
        self.eval_dataset = None
        if isinstance(eval_dataset, dict):
            raise BadInputError(
                f"GRPOTrainer: eval_dataset must be one data set; got a dict of {len(eval_dataset)}"
            )
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
        self._set_tools(tools, environment_factory)
        self.aggregation = LOSS_TYPES[self.config.loss_type]
        self.device = next(model.parameters()).device
        torch.manual_seed(self.config.seed + self.rank)  # before the adapters' random init
        # the frozen reference is the starting model, kept in memory (never reloaded by name);
        # with adapters it is the same model with them switched off, no copy
        self.uses_adapters = peft_config is not None
        # generate() numbers positions from the attention mask, so that left padding does not
        # shift a prompt; the loss's forward passes must do the same, where the model takes them
        self.forward = Forward(
            temperature=self.config.temperature,
            max_groups=self.config.length_groups,
            bf16=self.config.bf16,
            takes_position_ids=takes_position_ids(model),
        )
        self.ref_model = None
        if self.config.beta > 0 and not self.uses_adapters:
            self.ref_model = copy.deepcopy(model).requires_grad_(False).eval()
        if self.config.gradient_checkpointing:
            enable_gradient_checkpointing(model)
        if self.uses_adapters:
            self.model = model = with_adapters(model, peft_config)
        self.optimizer, self.scheduler = given_or_made_optimizer(
            model, self.config, optimizers, self.uses_adapters
        )
        self.generator = torch.Generator().manual_seed(self.config.seed)  # prompt order
        self.order: list[int] = []
        self.prompts_drawn = 0  # over all processes, since the start
        self.epoch = 0.0  # passes over the data set before the latest prompts were drawn
        self.step = 0
        self.history: list[dict] = []
        self.tensorboard = None  # a SummaryWriter while train() runs, with report_to
        self.callbacks = Callbacks(callbacks, self)
        self.callbacks("on_init_end")

    def _reward_weights(self, given: Sequence[float] | None) -> Sequence[float] | None:
        """The weights given to the trainer or in the config (TRL's place), not both."""
        if given is not None and self.config.reward_weights is not None:
            raise BadInputError(
                "GRPOTrainer: give the reward weights as GRPOConfig.reward_weights or as "
                "reward_weights=, not both"
            )
        return given if given is not None else self.config.reward_weights

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
            self.eval_reward_funcs = sampling.as_list(functions)
            self.eval_reward_weights = sampling.weights_for(
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

    def _set_tools(self, tools, environment_factory) -> None:
        """The tools offered to the model: the functions in ``tools`` and the public methods of
        the ``environment_factory``'s objects (one made now, to read them), with their JSON
        schemas. Tools need chat-message prompts and a chat template that writes tool calls."""
        self.standalone_tools = list(tools or [])
        self.environment_factory = environment_factory
        self.environment_pool: list = []  # made once, reset for every rollout (TRL's pool)
        self.uses_tools = bool(self.standalone_tools) or environment_factory is not None
        self.tool_schemas: list[dict] | None = None
        if not self.uses_tools:
            return
        for index, function in enumerate(self.standalone_tools):
            if not callable(function) or not hasattr(function, "__name__"):
                raise TypeError(
                    f"GRPOTrainer: tools[{index}] must be a function; got {type(function).__name__}"
                )
        functions = list(self.standalone_tools)
        if environment_factory is not None:
            if not callable(environment_factory):
                raise TypeError(
                    "GRPOTrainer: environment_factory must be a class or a function that makes "
                    f"an environment; got {type(environment_factory).__name__}"
                )
            environment = environment_factory()
            tool_use.check_environment(environment, environment_factory)
            self.environment_pool.append(environment)
            functions += tool_use.environment_tools(environment)
        tool_use.functions_by_name(functions)  # refuses two tools of one name
        for rows, name in ((self.dataset, "train_dataset"), (self.eval_dataset, "eval_dataset")):
            if rows and not data.is_conversational(rows[0]["prompt"]):
                raise BadInputError(
                    f"GRPOTrainer: tools and environment_factory need chat-message prompts (tool "
                    f"results are chat messages); got plain strings in {name}"
                )
        if functions:
            self.tool_schemas = tool_use.tool_schemas(functions)
            tool_use.check_chat_template(self.tokenizer, self.tool_schemas)

    # ----- the loop -----

    def train(
        self,
        resume_from_checkpoint: str | Path | None = None,
        callbacks: Sequence[Callable[[GRPOTrainer, dict], bool | None]] = (),
    ) -> list[dict]:
        """Run max_steps GRPO steps (from a checkpoint when given); return the metric rows.

        Each callback is called as ``callback(trainer, row)`` after every step (an evaluation,
        a custom log, early stopping); training stops after the step where one returns True.
        The constructor's ``TrainerCallback`` objects are called too (:mod:`rlgrad.lm.callbacks`).
        Every eval_steps steps the row holds the evaluation's metrics too (see :meth:`evaluate`).
        """
        if resume_from_checkpoint is not None:
            self.load_checkpoint(resume_from_checkpoint)
        config = self.config
        writes = self.rank == 0  # rank 0 alone writes files, TensorBoard and the progress bar
        progress = None
        if writes and config.logging_steps:
            progress = outputs.progress_bar(config.max_steps, self.step)
        if writes and config.report_to == "tensorboard":
            self.tensorboard = outputs.open_tensorboard(config.output_dir, self.step)
        metrics_file = None  # the run directory's metrics.csv, as every rlgrad trainer writes
        if writes and config.output_dir is not None:
            run_files.write_config(config.output_dir, config)
            metrics_file = run_files.MetricsFile(config.output_dir, self.history)
            outputs.start_rows(config.output_dir, self.history)
            outputs.start_completions(config.output_dir, self.step)
        self.callbacks("on_train_begin")
        try:
            while self.step < config.max_steps:
                self.callbacks("on_step_begin")
                started = time.perf_counter()
                batch, info = self.sample()  # 1. sample and 2. score
                metrics = self.update(batch)  # 3. update
                self.step += 1
                # 4. log, evaluate, checkpoint
                row = {
                    "step": self.step,
                    **info,
                    **metrics,
                    "learning_rate": self.scheduler.get_last_lr()[0],
                    "step_time": time.perf_counter() - started,
                }
                self.callbacks("on_step_end")
                if batch.completion_log is not None:
                    self._write_completions(batch.completion_log)
                due = config.eval_steps and self.step % config.eval_steps == 0
                if self.callbacks.take("should_evaluate") or due:
                    started = time.perf_counter()
                    evaluation = self.evaluate()
                    row.update(evaluation, eval_time=time.perf_counter() - started)
                    self.callbacks("on_evaluate", metrics=evaluation)
                self.history.append(row)
                if writes:
                    outputs.write_row(row, config.output_dir, self.tensorboard, progress)
                if metrics_file is not None:
                    metrics_file.append(row)
                self.callbacks("on_log", logs=row)
                due = config.save_steps and self.step % config.save_steps == 0
                if (self.callbacks.take("should_save") or due) and config.output_dir:
                    self.save_checkpoint()
                    self.callbacks("on_save")
                # every callback sees every step, even after one asked to stop
                if any([bool(callback(self, row)) for callback in callbacks]):
                    break
                if self.callbacks.take("should_training_stop"):
                    break
        finally:
            if self.tensorboard is not None:
                self.tensorboard.close()
                self.tensorboard = None
        if progress is not None:
            progress.close()
        if config.output_dir is not None:
            self.save_checkpoint()
        if metrics_file is not None:
            run_files.write_summary(config.output_dir, config, metrics_file.rows)
        self.callbacks("on_train_end")
        return self.history

    # ----- 1. sampling and 2. rewards and advantages -----

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
        lengths = completion_mask.sum(dim=1)  # the model's tokens through EOS, before masking
        if config.mask_truncated_completions:
            completion_mask = completion_mask * (~truncated).float()[:, None]
        batch = Batch(
            input_ids=sampled.input_ids,
            attention_mask=sampled.attention_mask,
            prompt_length=sampled.prompt_length,
            completion_ids=sampled.completion_ids,
            completion_mask=completion_mask,
            advantages=advantages,
        )
        if config.num_iterations > 1:
            batch.old_log_probs = self._stored_log_probs(batch)
        if config.beta > 0:
            batch.ref_log_probs = self._stored_log_probs(batch, reference=True)
        groups = rewards.view(-1, config.num_generations)  # [prompts, G]
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
        if sampled.rollouts is not None:
            info.update(tool_use.tool_metrics(sampled.rollouts))
        for name, column in zip(self._reward_names(), sampled.per_function.T, strict=True):
            info[f"rewards/{name}/mean"] = torch.nanmean(column).item()
            info[f"rewards/{name}/std"] = float(np.nanstd(column.numpy()))
        if self._logs_completions(self.step + 1):
            batch.completion_log = self._completion_log(sampled, advantages)
        return batch, info

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

    def _generate(
        self,
        prompts: list[str],
        num_generations: int | None = None,
        greedy: bool = False,
        add_special_tokens: bool = True,
    ) -> sampling.Generation:
        """num_generations (none: G) completions per prompt text, sampled with the config's
        temperature and top_p, or greedy (see :func:`rlgrad.lm.sampling.generate`)."""
        config = self.config
        return sampling.generate(
            self.model,
            self.tokenizer,
            prompts,
            group=config.num_generations if num_generations is None else num_generations,
            max_new_tokens=config.max_completion_length,
            temperature=config.temperature,
            top_p=config.top_p,
            top_k=config.top_k,
            greedy=greedy,
            add_special_tokens=add_special_tokens,
            max_prompt_length=config.max_prompt_length,
        )

    def _prompt_texts(self, rows: list[dict]) -> list[str]:
        """The text the policy continues for each row (chat messages rendered, with the tools)."""
        return [
            data.render_prompt(self.tokenizer, row["prompt"], self.tool_schemas) for row in rows
        ]

    def _completion_texts(self, completion_ids: Tensor) -> list[str]:
        """The completions as the reward functions read them: decoded, special tokens dropped."""
        return self.tokenizer.batch_decode(completion_ids, skip_special_tokens=True)

    def _rewards(
        self,
        rows: list[dict],
        completions: list,
        completion_ids: list[list[int]],
        evaluation: bool = False,
        environments: list | None = None,
    ) -> Tensor:
        """``[B, F]`` rewards of each function (see :func:`rlgrad.lm.sampling.reward_scores`);
        the evaluation's rewards with ``evaluation``. The trainer state is the training's before
        this step's update, or, in evaluation, after the latest one. ``environments``: each
        completion's environment, with an environment_factory."""
        if evaluation:
            functions, tokenizers = self.eval_reward_funcs, self.eval_reward_processing_classes
            state = data.TrainerState(self.step, self.prompts_drawn / len(self.dataset))
        else:
            functions, tokenizers = self.reward_funcs, self.reward_processing_classes
            state = data.TrainerState(self.step, self.epoch)
        return sampling.reward_scores(
            functions, tokenizers, rows, completions, completion_ids, state, environments
        )

    def _roll_out(self, rows: list[dict], group: int | None = None, greedy: bool = False):
        """``group`` (none: G) completions of each row: the Generation, the completions as the
        reward functions read them (texts, or messages), their tokens through EOS, and with tools
        the :class:`rlgrad.lm.tools.Rollout` and environment of each (else None)."""
        group = self.config.num_generations if group is None else group
        if not self.uses_tools:
            chat = data.is_conversational(rows[0]["prompt"])
            generation = self._generate(
                self._prompt_texts(rows), group, greedy, add_special_tokens=not chat
            )
            texts = self._completion_texts(generation.completion_ids)
            ids = data.unpadded_ids(generation.completion_ids, generation.completion_mask)
            return generation, texts, ids, None, None
        config = self.config
        expanded = [row for row in rows for _ in range(group)]  # one per rollout
        prompts, environments = self._start_episodes(expanded)
        functions = [
            tool_use.functions_by_name(
                self.standalone_tools
                + ([] if environment is None else tool_use.environment_tools(environment))
            )
            for environment in environments or [None] * len(expanded)
        ]
        generation, rollouts = sampling.generate_with_tools(
            self.model,
            self.tokenizer,
            prompts,
            functions,
            self.tool_schemas,
            max_new_tokens=config.max_completion_length,
            max_iterations=config.max_tool_calling_iterations,
            temperature=config.temperature,
            top_p=config.top_p,
            top_k=config.top_k,
            greedy=greedy,
            max_prompt_length=config.max_prompt_length,
        )
        completion_tokens = generation.attention_mask[:, generation.prompt_length :]
        ids = data.unpadded_ids(generation.completion_ids, completion_tokens)
        completions = [rollout.messages for rollout in rollouts]
        return generation, completions, ids, rollouts, environments

    def _start_episodes(self, rows: list[dict]) -> tuple[list[list[dict]], list | None]:
        """Each rollout's prompt and environment (None without an environment_factory): an
        environment from the pool (made when the pool is short), ``reset(**row)``; a string it
        returns is added to the prompt's last message, as in TRL."""
        prompts = [list(row["prompt"]) for row in rows]
        if self.environment_factory is None:
            return prompts, None
        while len(self.environment_pool) < len(rows):
            self.environment_pool.append(self.environment_factory())
        environments = self.environment_pool[: len(rows)]
        for index, (environment, row) in enumerate(zip(environments, rows, strict=True)):
            observation = environment.reset(**row)
            if observation is None:
                continue
            if not isinstance(observation, str):
                raise TypeError(
                    f"GRPOTrainer: {type(environment).__name__}.reset() must return None or a "
                    f"string to add to the prompt; got {type(observation).__name__}"
                )
            last = prompts[index][-1]
            prompts[index][-1] = {**last, "content": last["content"] + observation}
        return prompts, environments

    def _sample_round(self, rows: list[dict]) -> Sampled:
        """G completions of each prompt in ``rows``, scored: the weighted sum of the reward
        functions plus, when overlong_buffer is set, the overlong penalty of each length."""
        config = self.config
        generation, completions, ids, rollouts, environments = self._roll_out(rows)
        per_function = self._rewards(rows, completions, ids, environments=environments)  # [B, F]
        # [B] tokens through EOS; with tools, the tool messages' count against the budget too
        lengths = generation.attention_mask[:, generation.prompt_length :].sum(dim=1).cpu()
        penalties = torch.zeros_like(lengths)
        if config.overlong_buffer is not None:
            penalties = overlong_penalty(
                lengths,
                config.max_completion_length,
                config.overlong_buffer,
                config.overlong_penalty_factor,
            )
        rewards = torch.nansum(per_function * self.reward_weights, dim=1) + penalties  # [B]
        return Sampled(
            rows=rows,
            input_ids=generation.input_ids,
            attention_mask=generation.attention_mask,
            prompt_length=generation.prompt_length,
            completion_ids=generation.completion_ids,
            completion_mask=generation.completion_mask,
            truncated=generation.truncated,
            per_function=per_function,
            penalties=penalties,
            rewards=rewards,
            rollouts=rollouts,
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
            kept.append(sampling.take_groups(sampled, informative))
            found += int(informative.sum())
            dropped += int((~informative).sum())
            if found >= wanted or rounds == config.max_sampling_rounds:
                break
            sampled = self._sample_round(self._next_prompts())
            rounds += 1
        if found == 0:  # no group carried signal within the cap: train on the last round as is
            return sampled, dropped - len(sampled.rows), rounds
        batch = sampling.concatenate(kept, self.tokenizer.pad_token_id)
        return sampling.take_groups(batch, torch.arange(found) < wanted), dropped, rounds

    def _advantages(self, rewards: Tensor) -> Tensor:
        """``[B]`` advantages from the weighted rewards ``[B]``, group by group."""
        config = self.config
        groups = rewards.view(-1, config.num_generations)  # [prompts, G]
        unbiased = config.std_unbiased
        if config.scale_rewards == "group":
            return group_advantages(groups, unbiased=unbiased).flatten()
        if config.scale_rewards == "none":
            return group_advantages(groups, scale=False).flatten()
        everything = distributed.gather(rewards, self.world_size)  # every process's rewards
        return batch_scaled_group_advantages(
            groups, unbiased=unbiased, batch_rewards=everything
        ).flatten()

    def _completion_log(self, sampled: Sampled, advantages: Tensor) -> list[dict]:
        """The completion records of the step being sampled, one per completion."""
        group = self.config.num_generations
        prompts = [text for text in self._prompt_texts(sampled.rows) for _ in range(group)]
        if sampled.rollouts is not None:  # each as its rollout began (reset's text in)
            prompts = [rollout.prompt for rollout in sampled.rollouts]
        return data.completion_records(
            self.step + 1,
            "train",
            prompts,
            self._completion_texts(sampled.completion_ids),
            self._reward_names(),
            sampled.per_function,
            sampled.rewards,
            advantages.cpu(),
            conversations=None
            if sampled.rollouts is None
            else [rollout.messages for rollout in sampled.rollouts],
        )

    def _reward_names(self, evaluation: bool = False) -> list[str]:
        functions = self.eval_reward_funcs if evaluation else self.reward_funcs
        return [data.reward_name(function, index) for index, function in enumerate(functions)]

    def _logs_completions(self, step: int) -> bool:
        """Whether the training completions of ``step`` go to the completion log."""
        config = self.config
        return config.log_completions and step % config.log_completions_steps == 0

    # ----- 3. the update -----

    def update(self, batch: Batch) -> dict:
        """num_iterations gradient steps on GRPO's loss for one sampled batch; the metrics.

        Each step adds up the gradients of gradient_accumulation_steps micro-batches, each loss
        weighted by the micro-batch's share of the aggregation's denominator."""
        config = self.config
        eval_mode_that_checkpoints(self.model)  # no dropout: the ratio compares one function
        metrics: dict[str, list[float]] = {}
        share = distributed.loss_share(batch.completion_mask, self.aggregation, self.world_size)
        parts = micro_batches(batch, config.gradient_accumulation_steps)
        weights = micro_batch_weights(parts, self.aggregation)
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
            distributed.average_gradients(self.model, self.world_size)
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

    def _token_log_probs(self, model, batch: Batch, with_entropy: bool = False):
        """``[B, L]`` log-probs of the completion tokens under ``model`` (and their entropies):
        :func:`rlgrad.lm.model.token_log_probs` with this run's forward settings."""
        return token_log_probs(model, batch, self.forward, with_entropy)

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
        with sampling.separate_random_streams(config.seed + self.rank):
            for start in range(0, len(rows), size):
                more, tokens = self._evaluate_rows(rows[start : start + size], group)
                records.extend(more)
                lengths.extend(tokens)
        records = distributed.gather_lists(records, self.world_size)
        lengths = distributed.gather_lists(lengths, self.world_size)
        if config.log_completions and self.rank == 0:
            outputs.write_completions(records, config.output_dir, self.tensorboard)
        return self._evaluation_metrics(records, lengths)

    def _evaluate_rows(self, rows: list[dict], group: int) -> tuple[list[dict], list[int]]:
        """Completion records of ``group`` completions of each row, and their lengths in tokens
        (through EOS)."""
        generation, completions, ids, rollouts, environments = self._roll_out(
            rows, group, greedy=not self.config.eval_do_sample
        )
        prompts = [text for text in self._prompt_texts(rows) for _ in range(group)]
        if rollouts is not None:  # each as its rollout began (reset's text in)
            prompts = [rollout.prompt for rollout in rollouts]
        per_function = self._rewards(
            rows, completions, ids, evaluation=True, environments=environments
        )  # [B, F]
        rewards = torch.nansum(per_function * self.eval_reward_weights, dim=1)  # [B]
        records = data.completion_records(
            self.step,
            "eval",
            prompts,
            self._completion_texts(generation.completion_ids),
            self._reward_names(evaluation=True),
            per_function,
            rewards,
            conversations=None if rollouts is None else completions,
        )
        # the model's tokens through EOS (tool messages left out)
        return records, generation.completion_mask.sum(dim=1).int().tolist()

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

    # ----- 4. logs and checkpoints -----

    def _write_completions(self, records: list[dict]) -> None:
        """The training completion records of every process, written by rank 0."""
        records = distributed.gather_lists(records, self.world_size)
        if self.rank == 0:
            outputs.write_completions(records, self.config.output_dir, self.tensorboard)

    def save_checkpoint(self) -> Path | None:
        """``output_dir/checkpoint-STEP``: the model (``save_pretrained``; with adapters, the
        adapters only), the tokenizer, and everything needed to resume exactly (the trained
        weights, optimizer, schedule, prompt order, RNG states)."""
        if self.config.output_dir is None or self.rank != 0:
            return None
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
        # logging_steps = 0: the trainer prints nothing, nor does save_pretrained's progress bar
        return outputs.write_checkpoint(
            self.config.output_dir,
            self.step,
            self.model,
            self.tokenizer,
            state,
            progress_bars=self.config.logging_steps > 0,
        )

    def save_model(self, output_dir: str | Path | None = None) -> Path | None:
        """TRL's ``save_model``: the model (``save_pretrained``; with adapters, the adapters
        only) and the tokenizer in ``output_dir`` (none: the config's), for
        ``from_pretrained`` to load; no training state (see :meth:`save_checkpoint`)."""
        output_dir = output_dir if output_dir is not None else self.config.output_dir
        if output_dir is None:
            raise BadInputError(
                "GRPOTrainer.save_model(): output_dir must be given when GRPOConfig.output_dir "
                "is none; got None"
            )
        if self.rank != 0:
            return None
        progress_bars = self.config.logging_steps > 0
        return outputs.write_model(output_dir, self.model, self.tokenizer, progress_bars)

    def load_checkpoint(self, path: str | Path) -> None:
        """Continue from what :meth:`save_checkpoint` wrote in ``path``."""
        state = outputs.read_checkpoint(path)
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
