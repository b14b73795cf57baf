"""The policy model in GRPO's update (step 3): the sampled batch, the log-probabilities of its
completion tokens, the optimizer, adapters and gradient checkpointing.

* :class:`Batch` holds one step's completions with their advantages; :func:`micro_batches` cuts
  it for gradient accumulation, and :func:`micro_batch_weights` weighs the micro-batches' losses
  so that they add up to the whole batch's.
* :func:`token_log_probs` computes log π(o_t | q, o_<t) in groups of similar completion length
  (:mod:`rlgrad.lm.lengths`), each pass cut after its longest completion.
* :func:`make_optimizer`: AdamW with linear warm-up; :func:`with_adapters` wraps the model with
  PEFT's adapters, and :func:`trainable_state` is what a checkpoint must hold of them.
"""

from __future__ import annotations

import dataclasses
import inspect
import itertools

import torch
from torch import Tensor

from rlgrad.distributions import categorical_entropy
from rlgrad.errors import BadInputError
from rlgrad.lm.lengths import completion_lengths, length_groups


@dataclasses.dataclass
class Batch:
    """One step's sampled completions, ``[B, L]`` with B = prompts · G (this process's share)."""

    input_ids: Tensor  # [B, P + L]: prompt + completion tokens
    attention_mask: Tensor  # [B, P + L]
    prompt_length: int  # P
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


def micro_batch_weights(parts: list[Batch], aggregation: str) -> list[float]:
    """Each micro-batch's share of the aggregation's denominator (token_mean: its tokens;
    seq_mean and const_norm: its completions): the micro-batches' losses, each its own
    aggregate, weighted by these sum to the whole batch's loss."""
    if aggregation == "token_mean":
        counts = torch.stack([part.completion_mask.sum() for part in parts])
    else:
        counts = torch.tensor([float(len(part.advantages)) for part in parts])
    return (counts / counts.sum().clamp(min=1.0)).tolist()


# ----- log-probabilities of the completion tokens -----


@dataclasses.dataclass(frozen=True)
class Forward:
    """How the model's forward passes for the loss run (from the config and the model)."""

    temperature: float  # the logits are divided by it, as in sampling
    max_groups: int  # GRPOConfig.length_groups
    bf16: bool  # bfloat16 autocast
    takes_position_ids: bool  # the model's forward takes position_ids


def takes_position_ids(model) -> bool:
    """Whether the model's forward takes ``position_ids`` (a model already wrapped in PEFT is
    asked through its base model)."""
    base_model = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "position_ids" in inspect.signature(base_model.forward).parameters


def token_log_probs(model, batch: Batch, forward: Forward, with_entropy: bool = False):
    """log π(o_t | q, o_<t) of the completion tokens, ``[B, L]`` (and their entropies ``[B, L]``,
    else None), by groups of similar completion length (rlgrad.lm.lengths): 0 past each group's
    longest completion."""
    lengths = completion_lengths(batch.completion_mask)  # [B]
    groups = length_groups(lengths, batch.prompt_length, forward.max_groups)
    pieces = [
        group_log_probs(model, batch, rows, max(1, int(lengths[rows].max())), forward, with_entropy)
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


def group_log_probs(
    model, batch: Batch, rows: Tensor, length: int, forward: Forward, with_entropy: bool
):
    """The rows' ``[R, L]`` log-probs (and entropies) from one pass cut after ``length``
    completion tokens (causal attention: nothing before the cut changes), 0 after it."""
    every_row = len(rows) == len(batch.completion_ids)  # one group: all rows, in order

    def select(tensor: Tensor) -> Tensor:
        return tensor if every_row else tensor.index_select(0, rows)

    end = batch.prompt_length + length
    attention_mask = select(batch.attention_mask[:, :end])  # [R, P + length]
    positions = {}
    # generate() numbers positions from the attention mask, so that left padding does not shift
    # a prompt; the loss's passes do the same (padding: 1, never attended)
    if forward.takes_position_ids:
        position_ids = attention_mask.long().cumsum(-1) - 1
        positions["position_ids"] = position_ids.masked_fill(attention_mask == 0, 1)
    device_type = batch.input_ids.device.type
    with torch.autocast(device_type, torch.bfloat16, enabled=forward.bf16):
        logits = model(
            input_ids=select(batch.input_ids[:, :end]),
            attention_mask=attention_mask,
            use_cache=False,
            **positions,
        ).logits  # [R, P + length, V]
    # the logit at position t predicts token t + 1: the completion's come from P − 1 on
    logits = logits[:, batch.prompt_length - 1 : -1].float() / forward.temperature  # [R, length, V]
    log_probs = torch.log_softmax(logits, dim=-1)
    completion_ids = select(batch.completion_ids[:, :length])  # [R, length]
    taken = log_probs.gather(-1, completion_ids[..., None]).squeeze(-1)  # [R, length]
    cut = batch.completion_ids.shape[1] - length  # columns after the cut
    taken = torch.nn.functional.pad(taken, (0, cut))  # [R, L]
    if not with_entropy:
        return taken, None
    return taken, torch.nn.functional.pad(categorical_entropy(logits.detach()), (0, cut))


# ----- optimizer, adapters, gradient checkpointing -----


def make_optimizer(model, config):
    """AdamW on the parameters that train (``config``'s learning rate, weight decay, β₁, β₂ and
    ε), and its schedule (:func:`warm_up_schedule`)."""
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(
        trainable,
        lr=config.learning_rate,
        betas=(config.adam_beta1, config.adam_beta2),
        eps=config.adam_epsilon,
        weight_decay=config.weight_decay,
    )
    return optimizer, warm_up_schedule(optimizer, config.warmup_steps)


def warm_up_schedule(optimizer, warmup: int):
    """The learning rate rises linearly over ``warmup`` steps (lr·(k + 1)/warmup at step k), then
    stays constant."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup) if warmup else 1.0
    )


def given_or_made_optimizer(model, config, optimizers: tuple, uses_adapters: bool):
    """TRL's ``optimizers=(optimizer, scheduler)``: the given optimizer (on the model's
    parameters) with the given scheduler, or the warm-up schedule when that is none; AdamW and
    the warm-up schedule when both are none (:func:`make_optimizer`)."""
    if not (isinstance(optimizers, (tuple, list)) and len(optimizers) == 2):
        raise BadInputError(
            f"GRPOTrainer: optimizers must be a pair (optimizer, scheduler), either None; got "
            f"{type(optimizers).__name__}"
        )
    optimizer, scheduler = optimizers
    if optimizer is None:
        if scheduler is not None:
            raise BadInputError(
                "GRPOTrainer: optimizers=(None, scheduler) has a scheduler with no optimizer; "
                "pass the optimizer it schedules too"
            )
        return make_optimizer(model, config)
    if uses_adapters:
        raise BadInputError(
            "GRPOTrainer: optimizers cannot be given with peft_config (the adapters it would "
            "optimize are made by the trainer); wrap the model with peft first and pass no "
            "peft_config, or let the trainer make AdamW"
        )
    own = {id(parameter) for parameter in model.parameters()}
    for group in optimizer.param_groups:
        if any(id(parameter) not in own for parameter in group["params"]):
            raise BadInputError(
                "GRPOTrainer: optimizers[0] must optimize the model's parameters; got one "
                "that is not the model's"
            )
    if scheduler is None:
        scheduler = warm_up_schedule(optimizer, config.warmup_steps)
    return optimizer, scheduler


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
