"""GRPO's steps 1 and 2 for a causal LM: sample G completions of each prompt, score them.

* :func:`generate` continues left-padded prompts with ``model.generate`` (KV cache, temperature,
  top-p, or greedy) and returns a :class:`Generation`: the tokens, and the completion mask, which
  runs up to and including the first EOS. :func:`generate_with_tools` lets completions call tools
  over several turns (:mod:`rlgrad.lm.tools`); its completion mask covers the model's own tokens.
* :func:`reward_scores` calls every reward function (or reward model) on the decoded completions:
  ``[B, F]``, None → NaN.
* :class:`Sampled` is one sampling round, scored; :func:`take_groups` keeps some of its groups
  and :func:`concatenate` joins rounds (DAPO's dynamic sampling uses both).
* :func:`separate_random_streams` runs an evaluation on random streams of its own.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Awaitable, Callable, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from torch import Tensor

from rlgrad.errors import BadInputError
from rlgrad.lm import data, tools

# a reward function returns its rewards, or (async def) an awaitable of them
RewardFunction = Callable[..., Sequence[float | None] | Awaitable[Sequence[float | None]]]


@dataclasses.dataclass
class Generation:
    """What :func:`generate` returns, B = prompts · group completions, P prompt tokens (left
    padded), L new tokens (right padded)."""

    input_ids: Tensor  # [B, P + L]: the prompt, then the completion
    attention_mask: Tensor  # [B, P + L] long: the prompt's, then the completion's tokens
    prompt_length: int  # P
    completion_ids: Tensor  # [B, L]
    completion_mask: Tensor  # [B, L] float: 1 through the first EOS (with tools: the model's)
    truncated: Tensor  # [B] bool: no EOS within the L tokens (with tools: the budget ran out)


@torch.no_grad()
def generate(
    model,
    tokenizer,
    prompts: list[str],
    *,
    group: int,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int = 0,
    greedy: bool = False,
    add_special_tokens: bool = True,
    max_prompt_length: int | None = None,
) -> Generation:
    """``group`` completions of each prompt text, sampled with temperature, top_p and top_k (0:
    off) or greedy, at most ``max_new_tokens`` each; with ``max_prompt_length`` each prompt keeps
    its last that many tokens. A chat template writes its own special tokens: its texts are
    encoded with ``add_special_tokens=False``."""
    device = next(model.parameters()).device
    # generation continues right after the prompt, so pad on the left, and a long prompt loses
    # its beginning, not the end the completion continues; the caller's tokenizer keeps its own
    # settings
    cut = {"truncation": True, "max_length": max_prompt_length} if max_prompt_length else {}
    with data.padding_on(tokenizer, "left", truncation="left"):
        encoded = tokenizer(
            prompts,
            return_tensors="pt",
            padding=True,
            add_special_tokens=add_special_tokens,
            **cut,
        ).to(device)
    input_ids = encoded.input_ids.repeat_interleave(group, dim=0)  # [B, P]
    attention = encoded.attention_mask.repeat_interleave(group, dim=0)  # [B, P]
    completion_ids, completion_mask, truncated = continue_ids(
        model,
        tokenizer,
        input_ids,
        attention,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        greedy=greedy,
    )
    return Generation(
        input_ids=torch.cat([input_ids, completion_ids], dim=1),
        attention_mask=torch.cat([attention, completion_mask.long()], dim=1),
        prompt_length=input_ids.shape[1],
        completion_ids=completion_ids,
        completion_mask=completion_mask,
        truncated=truncated,
    )


@torch.no_grad()
def continue_ids(
    model,
    tokenizer,
    input_ids: Tensor,
    attention: Tensor,
    *,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int = 0,
    greedy: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """New tokens after the left-padded ``input_ids`` ``[B, P]``: the completions ``[B, L]``,
    their mask ``[B, L]`` (1 through the first EOS) and whether each is truncated ``[B]`` (no EOS
    within L tokens)."""
    sampling = {"temperature": temperature, "top_p": top_p, "top_k": top_k}
    model.eval()
    sequences = model.generate(
        input_ids=input_ids,
        attention_mask=attention,
        do_sample=not greedy,
        **({} if greedy else sampling),
        max_new_tokens=max_new_tokens,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        use_cache=True,
    )
    completion_ids = sequences[:, input_ids.shape[1] :]  # [B, L]
    is_eos = completion_ids == tokenizer.eos_token_id
    has_eos = is_eos.any(dim=1)
    first_eos = torch.where(has_eos, is_eos.int().argmax(dim=1), completion_ids.shape[1])  # [B]
    positions = torch.arange(completion_ids.shape[1], device=input_ids.device)[None, :]  # [1, L]
    completion_mask = (positions <= first_eos[:, None]).float()
    return completion_ids, completion_mask, ~has_eos


@torch.no_grad()
def generate_with_tools(
    model,
    tokenizer,
    prompts: list[list[dict]],
    functions: list[dict],
    schemas: list[dict],
    *,
    max_new_tokens: int,
    max_iterations: int | None,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int = 0,
    greedy: bool = False,
    max_prompt_length: int | None = None,
) -> tuple[Generation, list[tools.Rollout]]:
    """One multi-turn completion of each chat prompt (B prompts, one per completion), offering
    the tools ``schemas``; ``functions[b]`` are rollout b's tools by name.

    Each round, the rollouts whose last turn ended (EOS) with tool calls run them, get the tool
    messages' tokens (:func:`rlgrad.lm.tools.tool_suffix_ids`, masked out of the loss) and
    generate their next turn together, left-padded, from their own tokens (never re-tokenized).
    A rollout stops when its turn makes no call, after ``max_iterations`` rounds of tool calls
    (none: no cap), or when its ``max_new_tokens`` tokens in all (the model's and the tools') run
    out; tool messages that would leave no room for a model token are dropped, and the rollout is
    then truncated. The Generation's attention mask covers every token, its completion mask the
    model's own (:func:`rlgrad.lm.tools.padded_rollouts`)."""
    device = next(model.parameters()).device
    texts = [data.render_prompt(tokenizer, prompt, schemas) for prompt in prompts]
    cut = {"truncation": True, "max_length": max_prompt_length} if max_prompt_length else {}
    with data.padding_on(tokenizer, "left", truncation="left"):
        encoded = tokenizer(
            texts, return_tensors="pt", padding=True, add_special_tokens=False, **cut
        ).to(device)
    prompt_ids = [
        ids[mask.bool()].tolist()
        for ids, mask in zip(encoded.input_ids, encoded.attention_mask, strict=True)
    ]
    options = {"temperature": temperature, "top_p": top_p, "top_k": top_k, "greedy": greedy}
    rollouts = [
        tools.Rollout(functions=named, prompt=text)
        for named, text in zip(functions, texts, strict=True)
    ]
    waiting = list(range(len(prompts)))  # the rollouts that generate this round
    contexts = [list(ids) for ids in prompt_ids]  # each rollout's prompt and completion so far
    iteration = 0
    while waiting:
        turns = model_turns(
            model,
            tokenizer,
            [contexts[b] for b in waiting],
            [max_new_tokens - len(rollouts[b].ids) for b in waiting],
            **options,
        )
        for b, (turn, ended) in zip(waiting, turns, strict=True):
            text = tokenizer.decode(turn, skip_special_tokens=True)
            rollouts[b].add_model_turn(turn, text, ended)
            contexts[b] += turn
        if max_iterations is not None and iteration == max_iterations:
            break  # the calls of this last turn stay unanswered
        calling = [b for b in waiting if rollouts[b].pending]
        waiting = []
        for b in calling:
            rollout = rollouts[b]
            messages = rollout.call_tools()
            suffix = tools.tool_suffix_ids(tokenizer, rollout.messages[-1], messages)
            if len(rollout.ids) + len(suffix) >= max_new_tokens:  # no room left for the model
                rollout.truncated = True
                continue
            rollout.add_tool_turn(messages, suffix)
            contexts[b] += suffix
            waiting.append(b)
        iteration += 1
    completion_ids, attention, completion_mask = tools.padded_rollouts(
        rollouts, tokenizer.pad_token_id, device
    )
    generation = Generation(
        input_ids=torch.cat([encoded.input_ids, completion_ids], dim=1),
        attention_mask=torch.cat([encoded.attention_mask, attention], dim=1),
        prompt_length=encoded.input_ids.shape[1],
        completion_ids=completion_ids,
        completion_mask=completion_mask,
        truncated=torch.tensor([rollout.truncated for rollout in rollouts], device=device),
    )
    return generation, rollouts


def model_turns(
    model, tokenizer, contexts: list[list[int]], budgets: list[int], **options
) -> list[tuple[list[int], bool]]:
    """The model's next turn after each context (token lists), at most its budget of tokens, and
    whether it ended (EOS). The contexts continue together, left-padded; each call generates as
    many tokens as the smallest budget left, so that no row runs past its own (nor past the
    positions its prompt and budget need), and the turns that neither ended nor ran out go on in
    the next call. (``options``: temperature, top_p, top_k, greedy.)"""
    device = next(model.parameters()).device
    turns: list[list[int]] = [[] for _ in contexts]
    ended = [False] * len(contexts)
    going = list(range(len(contexts)))
    while going:
        left = [budgets[i] - len(turns[i]) for i in going]
        with data.padding_on(tokenizer, "left"):
            batch = tokenizer.pad(
                {"input_ids": [contexts[i] + turns[i] for i in going]}, return_tensors="pt"
            )
        new_ids, new_mask, truncated = continue_ids(
            model,
            tokenizer,
            batch["input_ids"].to(device),
            batch["attention_mask"].to(device),
            max_new_tokens=min(left),
            **options,
        )
        for i, ids, mask, cut in zip(going, new_ids, new_mask, truncated.tolist(), strict=True):
            turns[i] += ids[: int(mask.sum())].tolist()  # through EOS
            ended[i] = not cut
        going = [i for i in going if not ended[i] and len(turns[i]) < budgets[i]]
    return list(zip(turns, ended, strict=True))


# ----- rewards -----


def as_list(rewards) -> list:
    """One reward or a sequence of them, as a list."""
    if isinstance(rewards, Sequence) and not isinstance(rewards, str):
        return list(rewards)
    return [rewards]


def as_list_or_none(tokenizers) -> list | None:
    """Reward tokenizers as a list (TRL takes one alone too), or None."""
    return None if tokenizers is None else as_list(tokenizers)


def weights_for(weights: Sequence[float] | None, count: int, field: str) -> Tensor:
    """The reward weights as a ``[count]`` tensor (none: all 1)."""
    weights = [1.0] * count if weights is None else list(weights)
    if len(weights) != count:
        raise BadInputError(
            f"GRPOTrainer: {field} must have one weight per reward function ({count}); "
            f"got {len(weights)}"
        )
    return torch.tensor(weights, dtype=torch.float32)


def reward_scores(
    functions: list,
    tokenizers: list,
    rows: list[dict],
    completions: list,
    completion_ids: list[list[int]],
    state: data.TrainerState,
    environments: list | None = None,
) -> Tensor:
    """``[B, F]`` scores of each of the F reward functions (or reward models, with their
    tokenizers), B = len(completions), G consecutive completions per row; None → NaN, which the
    weighted sum leaves out, as TRL does. The calls of async reward functions are awaited
    together (:func:`rlgrad.lm.data.scores`). ``environments``: each completion's environment."""
    inputs = data.reward_inputs(rows, completions, completion_ids, state, environments)
    names = [data.reward_name(function, index) for index, function in enumerate(functions)]
    scores = data.scores(functions, tokenizers, names, inputs)
    shape = (len(functions), len(completions))  # [F, B], also when F = 0
    return torch.tensor(scores, dtype=torch.float32).reshape(shape).T


# ----- one sampling round, scored -----


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
    rollouts: list[tools.Rollout] | None = None  # [B] with tools: each completion's turns


def take_groups(sampled: Sampled, keep: Tensor) -> Sampled:
    """The groups where ``keep`` (``[prompts]`` bool) is True, each with its G completions."""
    completions = keep.repeat_interleave(len(sampled.rewards) // len(sampled.rows))  # [B]
    on_device = completions.to(sampled.input_ids.device)
    return Sampled(
        rows=[row for row, kept in zip(sampled.rows, keep.tolist(), strict=True) if kept],
        input_ids=sampled.input_ids[on_device],
        attention_mask=sampled.attention_mask[on_device],
        prompt_length=sampled.prompt_length,
        completion_ids=sampled.completion_ids[on_device],
        completion_mask=sampled.completion_mask[on_device],
        truncated=sampled.truncated[on_device],
        per_function=sampled.per_function[completions],
        penalties=sampled.penalties[completions],
        rewards=sampled.rewards[completions],
        rollouts=None
        if sampled.rollouts is None
        else [r for r, kept in zip(sampled.rollouts, completions.tolist(), strict=True) if kept],
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
        rows=[row for part in parts for row in part.rows],
        input_ids=torch.cat([padded(part, part.input_ids, pad_token_id) for part in parts]),
        attention_mask=torch.cat([padded(part, part.attention_mask, 0) for part in parts]),
        prompt_length=prompt_length,
        completion_ids=torch.cat(
            [padded(part, part.completion_ids, pad_token_id, False) for part in parts]
        ),
        completion_mask=torch.cat(
            [padded(part, part.completion_mask, 0.0, False) for part in parts]
        ),
        truncated=torch.cat([part.truncated for part in parts]),
        per_function=torch.cat([part.per_function for part in parts]),
        penalties=torch.cat([part.penalties for part in parts]),
        rewards=torch.cat([part.rewards for part in parts]),
        rollouts=None
        if parts[0].rollouts is None
        else [rollout for part in parts for rollout in part.rollouts],
    )


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
