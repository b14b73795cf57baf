"""What GRPO's language-model trainer reads and writes besides tensors: prompts in TRL's two
forms, the call of each reward function or reward model, and the table of sampled completions.

* **Prompts.** A dataset row's ``prompt`` is a plain string, used as is, or a list of chat
  messages (``[{"role": "user", "content": ...}, ...]``), rendered with the policy tokenizer's
  chat template and ``add_generation_prompt=True``. With chat messages the reward functions get
  each completion as messages too, ``[{"role": "assistant", "content": text}]`` (with tools,
  the assistant's turns and the tool messages), and the prompts as the original message lists,
  as in TRL.
* **Rewards.** Every reward function is called as TRL calls it:
  ``f(prompts=..., completions=..., completion_ids=..., trainer_state=..., **columns)``, one
  entry per completion in every list. A function that takes no ``**kwargs`` gets the two newer
  arguments only when it names them, so functions written for the plain
  ``f(prompts, completions, **columns)`` call keep working. An ``async def`` function is called
  the same way; the calls of every async reward of one scoring round are awaited together on
  the process's rewards loop (:func:`awaited`), so that slow verifiers wait at the same time. A
  reward that raises surfaces as a :class:`RewardFunctionError` naming it. A reward may also be a
  sequence-classification model with one logit (``num_labels=1``) and its tokenizer: it scores
  the prompt and completion together, under no_grad, with its logit.
* **Completion log.** One record per completion (step, split, prompt, completion, each function's
  reward, the weighted reward and, in training, the advantage), appended to a JSON-lines file and
  shown to TensorBoard as a Markdown table.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import math
import threading
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import Tensor

from rlgrad.errors import BadInputError

# the keyword arguments the trainer passes itself: a dataset column of one of these names would
# be passed twice
RESERVED_COLUMNS = ("prompts", "completions", "completion_ids", "trainer_state", "environments")


@dataclasses.dataclass(frozen=True)
class TrainerState:
    """Where training stands, handed to every reward function as ``trainer_state``.

    >>> state = TrainerState(step=3, epoch=0.5)
    >>> state.global_step, state.epoch
    (3, 0.5)
    """

    step: int
    """Updates done so far: the completions being scored in training are step + 1's."""
    epoch: float
    """Passes over train_dataset: in training, the prompts drawn before the ones being scored,
    divided by the number of rows; in evaluation, all the prompts drawn so far."""

    @property
    def global_step(self) -> int:
        """TRL's name for ``step``, so that reward functions written for TRL run unchanged."""
        return self.step


# ----- prompts -----


def is_conversational(prompt) -> bool:
    """Whether ``prompt`` is a non-empty list of chat messages, dicts with a role and a content.

    >>> is_conversational([{"role": "user", "content": "1+2="}]), is_conversational("1+2=")
    (True, False)
    """
    return (
        isinstance(prompt, (list, tuple))
        and len(prompt) > 0
        and all(isinstance(m, dict) and "role" in m and "content" in m for m in prompt)
    )


def check_prompts(rows: list[dict], name: str) -> bool:
    """Whether the ``prompt`` of every row of the dataset ``name`` is chat messages (False: a
    string); raise when a row has none, a prompt is of neither form, the two forms are mixed, or
    a column is named like one of the reward functions' own arguments."""
    if not rows:
        raise BadInputError(f"GRPOTrainer: {name} must hold at least one row; got none")
    forms = set()
    for index, row in enumerate(rows):
        if "prompt" not in row:
            raise BadInputError(
                f"GRPOTrainer: {name}[{index}] must have a 'prompt' column; got columns "
                f"{sorted(row)}"
            )
        prompt = row["prompt"]
        if not (isinstance(prompt, str) or is_conversational(prompt)):
            raise TypeError(
                f"GRPOTrainer: {name}[{index}]['prompt'] must be a string or a list of chat "
                f"messages {{'role': ..., 'content': ...}}; got {type(prompt).__name__} "
                f"{str(prompt)[:60]!r}"
            )
        forms.add(not isinstance(prompt, str))
    if len(forms) > 1:
        raise BadInputError(
            f"GRPOTrainer: {name} must hold prompts of one form; got plain strings and chat "
            "messages both"
        )
    reserved = sorted(set(rows[0]) & set(RESERVED_COLUMNS))
    if reserved:
        raise BadInputError(
            f"GRPOTrainer: {name}'s column {reserved[0]!r} would reach the reward functions twice "
            f"(the trainer passes an argument of that name); rename it"
        )
    return forms.pop()


def require_chat_template(tokenizer, name: str, which: str = "the tokenizer") -> None:
    """Raise unless ``tokenizer`` (``which``) has a chat template to render the chat-message
    prompts of the data set ``name``."""
    if getattr(tokenizer, "chat_template", None) is None:
        raise BadInputError(
            f"GRPOTrainer: {name} holds chat-message prompts but {which} has no chat template "
            "(its chat_template is None); set its chat_template to a Jinja template string, "
            "use a chat model's tokenizer, or give plain-string prompts"
        )


def render_prompt(tokenizer, prompt, tools: list[dict] | None = None) -> str:
    """The text the policy continues: a string as is, chat messages through the tokenizer's chat
    template with the assistant turn opened (``add_generation_prompt=True``) and the ``tools``
    (JSON schemas) offered."""
    if isinstance(prompt, str):
        return prompt
    return tokenizer.apply_chat_template(
        prompt, tools=tools, tokenize=False, add_generation_prompt=True
    )


@contextmanager
def padding_on(tokenizer, side: str, truncation: str | None = None):
    """The tokenizer pads on ``side`` (and truncates on ``truncation``, when given) inside the
    block; its own settings come back after."""
    kept = tokenizer.padding_side, tokenizer.truncation_side
    tokenizer.padding_side = side
    tokenizer.truncation_side = truncation or tokenizer.truncation_side
    try:
        yield tokenizer
    finally:
        tokenizer.padding_side, tokenizer.truncation_side = kept


def unpadded_ids(completion_ids: Tensor, completion_mask: Tensor) -> list[list[int]]:
    """Each completion's tokens through its first EOS, padding dropped: ``[B, L]`` → B lists.

    >>> unpadded_ids(torch.tensor([[5, 1, 0], [6, 7, 8]]), torch.tensor([[1.0, 1, 0], [1, 1, 1]]))
    [[5, 1], [6, 7, 8]]
    """
    keep = completion_mask.bool().cpu()
    return [ids[row].tolist() for ids, row in zip(completion_ids.cpu(), keep, strict=True)]


# ----- rewards -----


@dataclasses.dataclass
class RewardInputs:
    """What every reward function is called with: one entry per completion in each list, the G
    completions of a prompt next to each other."""

    prompts: list  # strings, or chat-message lists
    completions: list  # strings, or [{"role": "assistant", "content": text}] each
    completion_ids: list[list[int]]
    columns: dict[str, list]  # the dataset's other columns
    trainer_state: TrainerState
    environments: list | None = None  # with environment_factory: each completion's instance

    @property
    def conversational(self) -> bool:
        return not isinstance(self.prompts[0], str)


def reward_inputs(
    rows: list[dict],
    completions: list,
    completion_ids: list[list[int]],
    trainer_state: TrainerState,
    environments: list | None = None,
) -> RewardInputs:
    """The reward functions' arguments for ``completions``, G = len(completions) / len(rows)
    consecutive ones per row; with chat-message prompts a text completion becomes one assistant
    message (a multi-turn completion with tools comes as its messages already).

    >>> inputs = reward_inputs([{"prompt": "1+2=", "answer": "3"}], ["3", "4"], [[5], [6]],
    ...                        TrainerState(0, 0.0))
    >>> inputs.prompts, inputs.columns
    (['1+2=', '1+2='], {'answer': ['3', '3']})
    """
    if not rows or len(completions) % len(rows):
        raise BadInputError(
            f"reward_inputs(): the completions ({len(completions)}) must be a whole number of "
            f"groups for the {len(rows)} rows"
        )
    group = len(completions) // len(rows)
    expanded = [row for row in rows for _ in range(group)]
    columns = {key: [row[key] for row in expanded] for key in rows[0] if key != "prompt"}
    prompts = [row["prompt"] for row in expanded]
    if is_conversational(prompts[0]) and all(isinstance(c, str) for c in completions):
        completions = [[{"role": "assistant", "content": text}] for text in completions]
    return RewardInputs(
        prompts, list(completions), completion_ids, columns, trainer_state, environments
    )


def is_reward_model(function) -> bool:
    """Whether a reward is a model (scored through its tokenizer), not a function."""
    return isinstance(function, torch.nn.Module)


def reward_name(function, index: int) -> str:
    """The name a reward's metrics go by: a function's ``__name__``, a model's name or path (its
    last part) or class name, else ``reward_INDEX``."""
    if is_reward_model(function):
        path = getattr(getattr(function, "config", None), "_name_or_path", "") or ""
        return path.rstrip("/").split("/")[-1] or type(function).__name__
    return getattr(function, "__name__", f"reward_{index}")


def check_rewards(functions: list, tokenizers: Sequence | None, field: str) -> list:
    """Each reward's tokenizer (None for a function), after checking that every entry of
    ``functions`` (the constructor argument ``field``) is a callable or a one-logit model with a
    tokenizer that pads with the model's pad token. Reward models are put in eval mode."""
    tokenizers_field = field.replace("funcs", "processing_classes")
    tokenizers = [None] * len(functions) if tokenizers is None else list(tokenizers)
    if len(tokenizers) != len(functions):
        raise BadInputError(
            f"GRPOTrainer: {tokenizers_field} must have one entry per reward in {field} "
            f"({len(functions)}); got {len(tokenizers)}"
        )
    for index, (function, tokenizer) in enumerate(zip(functions, tokenizers, strict=True)):
        where = f"GRPOTrainer: {field}[{index}]"
        if isinstance(function, str):
            raise TypeError(
                f"{where} must be a function or a model; got the name {function!r} (models are "
                "not loaded by name: pass AutoModelForSequenceClassification.from_pretrained("
                f"name, num_labels=1) and its tokenizer in {tokenizers_field})"
            )
        if not is_reward_model(function):
            if not callable(function):
                raise TypeError(
                    f"{where} must be a function or a sequence-classification model; got "
                    f"{type(function).__name__}"
                )
            tokenizers[index] = None  # as in TRL, a function's entry is unused
            continue
        if tokenizer is None:
            raise BadInputError(
                f"{where} is a model and needs its tokenizer at {tokenizers_field}[{index}]; "
                "got None"
            )
        config = getattr(function, "config", None)
        labels = getattr(config, "num_labels", 1)
        if labels != 1:
            raise BadInputError(
                f"{where} must score with one logit (config.num_labels = 1, as "
                f"AutoModelForSequenceClassification.from_pretrained(..., num_labels=1) "
                f"makes it); got {labels} (wrap a classifier in a function to pick a class)"
            )
        if tokenizer.pad_token_id is None:
            raise BadInputError(
                f"GRPOTrainer: {tokenizers_field}[{index}] must have a pad token (set "
                "tokenizer.pad_token, e.g. to its eos_token); got none"
            )
        model_pad = getattr(config, "pad_token_id", tokenizer.pad_token_id)
        if model_pad != tokenizer.pad_token_id:  # the model finds each text's end by it
            raise BadInputError(
                f"{where}.config.pad_token_id must be its tokenizer's pad_token_id "
                f"({tokenizer.pad_token_id}); got {model_pad}"
            )
        function.eval()  # no dropout: a completion's score must not depend on chance
    return tokenizers


def keywords_taken(function) -> set[str] | None:
    """The keyword arguments ``function`` takes, or None when it takes any (``**kwargs``) or its
    signature cannot be read.

    >>> sorted(keywords_taken(lambda prompts, completions, answer: None))
    ['answer', 'completions', 'prompts']
    >>> keywords_taken(lambda prompts, completions, **kwargs: None) is None
    True
    """
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {p.name for p in parameters if p.kind in named}


def call_reward_function(function, inputs: RewardInputs):
    """``function``'s rewards, one per completion (TRL's call), or, from an ``async def``
    function, the awaitable of them. ``completion_ids`` and ``trainer_state`` reach a function
    without ``**kwargs`` only when it names them, and so do ``environments`` (TRL's name), given
    with an environment_factory."""
    newer = {"completion_ids": inputs.completion_ids, "trainer_state": inputs.trainer_state}
    if inputs.environments is not None:
        newer["environments"] = inputs.environments
    taken = keywords_taken(function)
    if taken is not None:
        newer = {key: value for key, value in newer.items() if key in taken}
    return function(
        prompts=inputs.prompts, completions=inputs.completions, **inputs.columns, **newer
    )


def reward_model_texts(tokenizer, inputs: RewardInputs) -> list[str]:
    """What a reward model reads: prompt and completion as one text; chat messages as one
    conversation rendered with the reward model's own chat template."""
    if not inputs.conversational:
        return [p + c for p, c in zip(inputs.prompts, inputs.completions, strict=True)]
    return [
        tokenizer.apply_chat_template(list(p) + list(c), tokenize=False)
        for p, c in zip(inputs.prompts, inputs.completions, strict=True)
    ]


@torch.no_grad()
def call_reward_model(model, tokenizer, inputs: RewardInputs) -> list[float]:
    """The reward model's logit[:, 0] for each prompt and completion, one batch, right-padded.
    A chat template writes its own special tokens, so the tokenizer adds none to those texts."""
    texts = reward_model_texts(tokenizer, inputs)
    device = next(model.parameters()).device
    with padding_on(tokenizer, "right"):
        encoded = tokenizer(
            texts,
            return_tensors="pt",
            padding=True,
            add_special_tokens=not inputs.conversational,
        ).to(device)
    return model(**encoded).logits[:, 0].float().tolist()


class RewardFunctionError(RuntimeError):
    """A reward function raised; the message names it, the original error is its cause."""


def failed(name: str, error: BaseException) -> RewardFunctionError:
    return RewardFunctionError(f"reward function {name!r} raised {type(error).__name__}: {error}")


def scores(functions: list, tokenizers: list, names: list[str], inputs: RewardInputs) -> list:
    """Every reward's scores, a list of floats per reward (None → NaN, as TRL: left out of the
    sum). Functions and models run one after another; the calls of ``async def`` functions (or
    functions returning awaitables) are then awaited all at once (:func:`awaited`), so that
    slow verifiers wait together, not in turn."""
    values = []
    for function, tokenizer, name in zip(functions, tokenizers, names, strict=True):
        try:
            if is_reward_model(function):
                values.append(call_reward_model(function, tokenizer, inputs))
            else:
                values.append(call_reward_function(function, inputs))
        except Exception as error:
            raise failed(name, error) from error
    values = awaited(values, names)
    count = len(inputs.completions)
    return [as_scores(value, name, count) for value, name in zip(values, names, strict=True)]


def as_scores(values, name: str, count: int) -> list[float]:
    """A reward's values as ``count`` floats, None → NaN."""
    if len(values) != count:
        raise BadInputError(
            f"reward function {name!r} returned {len(values)} rewards for {count} completions"
        )
    return [math.nan if value is None else float(value) for value in values]


def awaited(values: list, names: list[str]) -> list:
    """``values`` with every awaitable replaced by its result, all awaited concurrently on the
    rewards' event loop (:func:`rewards_loop`); one that raised raises a RewardFunctionError
    naming its function, after all have finished."""
    pending = [index for index, value in enumerate(values) if inspect.isawaitable(value)]
    if not pending:
        return values

    async def gather():
        return await asyncio.gather(*(values[i] for i in pending), return_exceptions=True)

    results = asyncio.run_coroutine_threadsafe(gather(), rewards_loop()).result()
    values = list(values)
    for index, result in zip(pending, results, strict=True):
        if isinstance(result, Exception):
            raise failed(names[index], result) from result
        if isinstance(result, BaseException):  # KeyboardInterrupt, SystemExit: as they are
            raise result
        values[index] = result
    return values


_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def rewards_loop() -> asyncio.AbstractEventLoop:
    """The event loop that awaits async rewards: one per process, running in a daemon thread of
    its own from the first use on. Its own thread, because the caller's may already run a loop
    (Jupyter), which cannot be entered again; one loop for the whole run, because a client that
    an async reward keeps (an HTTP session, say) is bound to the loop it was made in."""
    global _loop
    with _loop_lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            thread = threading.Thread(target=_loop.run_forever, name="rlgrad-rewards", daemon=True)
            thread.start()
    return _loop


# ----- the completion log -----


def completion_records(
    step: int,
    split: str,
    prompts: list[str],
    completions: list[str],
    names: list[str],
    per_function: Tensor,
    rewards: Tensor,
    advantages: Tensor | None = None,
    conversations: list[list[dict]] | None = None,
) -> list[dict]:
    """One record per completion: ``per_function`` ``[B, F]`` (NaN: no reward), ``rewards`` and
    ``advantages`` ``[B]``; ``prompts`` holds one rendered prompt per completion. With tools,
    ``conversations`` holds each completion's messages (the model's turns and the tool messages),
    recorded as ``conversation``.

    >>> completion_records(2, "train", ["1+2="], ["3"], ["correct"], torch.tensor([[1.0]]),
    ...                    torch.tensor([1.0]), torch.tensor([0.5]))
    [{'step': 2, 'split': 'train', 'prompt': '1+2=', 'completion': '3', 'rewards': {'correct': 1.0}, 'reward': 1.0, 'advantage': 0.5}]
    """  # noqa: E501
    records = []
    for index, (prompt, completion) in enumerate(zip(prompts, completions, strict=True)):
        scores = per_function[index].tolist()
        record = {
            "step": step,
            "split": split,
            "prompt": prompt,
            "completion": completion,
            # JSON has no NaN: a reward left out is null
            "rewards": {
                name: None if math.isnan(value) else value
                for name, value in zip(names, scores, strict=True)
            },
            "reward": float(rewards[index]),
        }
        if advantages is not None:
            record["advantage"] = float(advantages[index])
        if conversations is not None:
            record["conversation"] = conversations[index]
        records.append(record)
    return records


def append_records(path: Path, records: list[dict]) -> None:
    """Append ``records`` to the JSON-lines file ``path``, one line each."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")


def markdown_table(records: list[dict]) -> str:
    """The records as a Markdown table (TensorBoard's text tab renders it), cells escaped.

    >>> print(markdown_table([{"prompt": "1+2=", "completion": "3|", "rewards": {"c": 1.0},
    ...                        "reward": 1.0}]))
    | prompt | completion | c | reward |
    | --- | --- | --- | --- |
    | 1+2= | 3\\| | 1.0 | 1.0 |
    """
    if not records:
        return ""
    names = list(records[0]["rewards"])
    extra = ["advantage"] if "advantage" in records[0] else []
    header = ["prompt", "completion", *names, "reward", *extra]

    def cell(value) -> str:
        return str(value).replace("|", "\\|").replace("\n", "<br>")

    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(["---"] * len(header)) + " |"]
    for record in records:
        values = [record["prompt"], record["completion"]]
        values += [record["rewards"][name] for name in names]
        values += [record["reward"]] + [record[key] for key in extra]
        lines.append("| " + " | ".join(cell(value) for value in values) + " |")
    return "\n".join(lines)
