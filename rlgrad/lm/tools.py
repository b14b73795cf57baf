"""Tools and environments in GRPO's rollouts: a completion may call functions, see their results
and go on, over several turns, and only the model's own tokens reach the loss.

* **Tools** are plain Python functions with type hints and a Google-style docstring;
  :func:`tool_schemas` turns them into the JSON schemas a chat template offers the model
  (``apply_chat_template(tools=...)``, as transformers builds them).
* **Tool calls** are written as most chat templates (Qwen2.5/3, Hermes) write them:
  ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` in the assistant's text.
  :func:`parse_tool_calls` finds them; :func:`call_tool` runs one and turns its result, or the
  error of a malformed call or of a tool that raised, into a tool message the model then reads
  (the run goes on; the failure is counted).
* **The tokens of a tool message** are :func:`tool_suffix_ids`: what the chat template writes
  after the model's turn (which ends with EOS) for the tool messages, up to the opening of the
  next assistant turn. The model's sampled tokens are never re-tokenized.
* **A rollout** (:class:`Rollout`) collects the completion's tokens, the model's turns and the
  tool messages between them; its ``model_mask`` is 1 on the model's own tokens and 0 on the tool
  messages' tokens, so that the policy loss, the KL, the entropy and the token counts that
  normalise the loss see only what the model wrote. :func:`padded_rollouts` makes the ``[B, L]``
  tensors of a batch.
* **Environments** (TRL's ``environment_factory``): a class whose instance holds one episode's
  state; its public methods other than ``reset`` are the tools (:func:`environment_tools`), and
  ``reset(**row)`` starts an episode for a dataset row. A string returned by ``reset`` is added
  to the prompt's last message, as in TRL.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import re
from collections.abc import Callable

import torch
from torch import Tensor

from rlgrad.errors import BadInputError

TOOL_CALL = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.DOTALL)
"""One tool call in an assistant's text: its JSON between the tags (an unclosed tag runs to the
end of the turn, and its JSON is then most likely malformed)."""


# ----- the tools offered -----


def tool_schemas(functions: list[Callable]) -> list[dict]:
    """The JSON schema of each tool, as ``apply_chat_template(tools=...)`` writes it, built by
    transformers from the type hints and the Google-style docstring (an ``Args:`` line for every
    argument); a function it cannot describe is refused, by name."""
    from transformers.utils import get_json_schema

    schemas = []
    for function in functions:
        name = getattr(function, "__name__", repr(function))
        try:
            schemas.append(get_json_schema(function))
        except Exception as error:  # transformers' own parsing errors name no tool
            raise BadInputError(
                f"GRPOTrainer: tool {name!r} must have type hints and a Google-style docstring "
                f"with an Args: line for each argument; got: {error}"
            ) from None
    return schemas


def environment_tools(environment) -> list[Callable]:
    """The tools of an environment instance: its public methods other than ``reset`` (and
    ``get_reward``, which TRL reserves for the environment's own reward)."""
    return [
        method
        for name, method in inspect.getmembers(environment, predicate=inspect.ismethod)
        if not name.startswith("_") and name not in ("reset", "get_reward")
    ]


def check_environment(environment, factory) -> None:
    """Raise unless ``environment`` (what ``factory()`` made) has a callable ``reset``."""
    if not callable(getattr(environment, "reset", None)):
        raise BadInputError(
            f"GRPOTrainer: environment_factory must make objects with a reset(**row) method; "
            f"{getattr(factory, '__name__', factory)!r} made a {type(environment).__name__} "
            "without one"
        )


def functions_by_name(functions: list[Callable]) -> dict[str, Callable]:
    """The tools by name; two tools of one name are refused (the model could not tell them
    apart)."""
    named: dict[str, Callable] = {}
    for function in functions:
        if function.__name__ in named:
            raise BadInputError(
                f"GRPOTrainer: every tool must have its own name; got two named "
                f"{function.__name__!r} (tools= and the environment's methods together)"
            )
        named[function.__name__] = function
    return named


def check_chat_template(tokenizer, schemas: list[dict]) -> None:
    """Raise unless the tokenizer's chat template writes the tools, an assistant's tool call and
    a tool message: without them the model never sees its tools or their results."""
    name = schemas[0]["function"]["name"]
    messages = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "", "tool_calls": [call_entry(name, {})]},
        {"role": "tool", "name": name, "content": "tool-result-7"},
    ]
    try:
        text = tokenizer.apply_chat_template(messages, tools=schemas, tokenize=False)
    except Exception as error:
        text = f"(rendering failed: {error})"
    if text.count(name) < 2 or "tool-result-7" not in text:
        raise BadInputError(
            "GRPOTrainer: tools need a chat template that writes the tools, the assistant's "
            "tool_calls and the 'tool' role's messages; the tokenizer's template wrote "
            f"{text[:120]!r}"
        )


# ----- tool calls -----


@dataclasses.dataclass
class ToolCall:
    """One call the model wrote: a name and its arguments, or the reason it cannot be run."""

    name: str
    arguments: dict
    error: str | None = None  # set when the call is malformed


def call_entry(name: str, arguments: dict) -> dict:
    """A call as chat messages hold it (``tool_calls`` of an assistant message, OpenAI's form)."""
    return {"type": "function", "function": {"name": name, "arguments": arguments}}


def parse_tool_calls(text: str) -> tuple[str, list[ToolCall]]:
    """The text outside the tool calls, stripped, and the calls in order. A call must be a JSON
    object with a string ``name`` and an object ``arguments`` (a JSON string of one is read too);
    anything else is a call with an error, which the model is told about.

    >>> content, calls = parse_tool_calls('ok <tool_call>{"name": "add", "arguments": {"a": 1}}'
    ...                                    '</tool_call><tool_call>{"name": </tool_call>')
    >>> content, calls[0], calls[1].error
    ('ok', ToolCall(name='add', arguments={'a': 1}, error=None), 'the tool call is not valid JSON')
    """
    calls = [read_call(match.group(1)) for match in TOOL_CALL.finditer(text)]
    return TOOL_CALL.sub("", text).strip(), calls


def read_call(body: str) -> ToolCall:
    """The call written as the JSON ``body`` (see :func:`parse_tool_calls`)."""
    try:
        call = json.loads(body)
    except json.JSONDecodeError:
        return ToolCall("", {}, "the tool call is not valid JSON")
    if not isinstance(call, dict) or not isinstance(call.get("name"), str):
        return ToolCall("", {}, 'a tool call must be {"name": ..., "arguments": {...}}')
    arguments = call.get("arguments", {})
    if isinstance(arguments, str):
        with contextlib.suppress(json.JSONDecodeError):  # not JSON: refused just below
            arguments = json.loads(arguments)
    if not isinstance(arguments, dict):
        return ToolCall(call["name"], {}, "the tool call's arguments must be a JSON object")
    return ToolCall(call["name"], arguments)


def assistant_message(text: str, calls: list[ToolCall]) -> dict:
    """The assistant's turn as a chat message: the text outside its calls and, when it made
    well-formed calls, their ``tool_calls`` (a turn without calls keeps its text unchanged)."""
    if not calls:
        return {"role": "assistant", "content": text}
    content, _ = parse_tool_calls(text)
    good = [call_entry(call.name, call.arguments) for call in calls if call.error is None]
    return {"role": "assistant", "content": content, **({"tool_calls": good} if good else {})}


def call_tool(call: ToolCall, functions: dict[str, Callable]) -> tuple[dict, bool]:
    """Run one call; the tool message with its result (``str(result)``) and whether it failed.
    A malformed call, an unknown tool, arguments the tool does not take and an exception the tool
    raises all become ``{"error": ...}``: the model reads what went wrong and the run goes on."""
    name = call.name or "invalid_tool_call"
    if call.error is not None:
        return tool_message(name, json.dumps({"error": call.error})), True
    if call.name not in functions:
        error = f"unknown tool {call.name!r}; the tools are {sorted(functions)}"
        return tool_message(name, json.dumps({"error": error})), True
    try:
        result = functions[call.name](**call.arguments)
    except Exception as error:  # a tool's failure is the model's to read, not the run's end
        return tool_message(name, json.dumps({"error": f"{type(error).__name__}: {error}"})), True
    return tool_message(name, str(result)), False


def tool_message(name: str, content: str) -> dict:
    """A tool's result as a chat message (TRL's form)."""
    return {"role": "tool", "name": name, "content": content}


def tool_suffix_ids(tokenizer, assistant: dict, tool_messages: list[dict]) -> list[int]:
    """The tokens the chat template writes for ``tool_messages`` after the model's turn, through
    the opening of the next assistant turn.

    With a stand-in conversation C = [a one-word user message, ``assistant``]:
    suffix = template(C + tool messages, add_generation_prompt) − template(C) cut after its
    last EOS (the model's turn ends with the EOS it sampled; what a template writes after it, a
    newline say, belongs to the suffix). The stand-in keeps earlier turns out, which some
    templates render differently once a turn follows them."""
    conversation = [{"role": "user", "content": "q"}, assistant]
    prefix = encode(tokenizer, tokenizer.apply_chat_template(conversation, tokenize=False))
    eos = [index for index, token in enumerate(prefix) if token == tokenizer.eos_token_id]
    if eos:
        prefix = prefix[: eos[-1] + 1]
    text = tokenizer.apply_chat_template(
        conversation + tool_messages, tokenize=False, add_generation_prompt=True
    )
    full = encode(tokenizer, text)
    if full[: len(prefix)] != prefix:
        raise BadInputError(
            "GRPOTrainer: the chat template must write a conversation's tool messages after its "
            "earlier turns without changing them; with a tool message added, the tokens before "
            f"it changed: {tokenizer.decode(prefix)[-60:]!r} became "
            f"{tokenizer.decode(full[: len(prefix)])[-60:]!r}"
        )
    return full[len(prefix) :]


def encode(tokenizer, text: str) -> list[int]:
    """A chat template's text as tokens (it writes its own special tokens, none are added)."""
    return tokenizer(text, add_special_tokens=False).input_ids


# ----- one rollout -----


@dataclasses.dataclass
class Rollout:
    """One completion of several turns: the model's, then tool messages, then the model's, ...

    ``ids`` are the completion's tokens, ``model_mask`` is 1 on those the model sampled and 0 on
    those of tool messages; ``messages`` are the completion as chat messages (what reward
    functions and the completion log get)."""

    functions: dict[str, Callable]  # this rollout's tools by name (an environment's are its own)
    prompt: str = ""  # the prompt's text as the model continued it (tools and reset's text in)
    ids: list[int] = dataclasses.field(default_factory=list)
    model_mask: list[int] = dataclasses.field(default_factory=list)
    messages: list[dict] = dataclasses.field(default_factory=list)
    pending: list[ToolCall] = dataclasses.field(default_factory=list)  # the last turn's calls
    tool_calls: int = 0
    failed_calls: int = 0
    turns: int = 0  # the model's turns
    truncated: bool = False  # the completion budget ran out before the model's last turn ended

    def add_model_turn(self, ids: list[int], text: str, ended: bool) -> None:
        """The model's turn: its tokens (through EOS when ``ended``) and its decoded text."""
        self.pending = parse_tool_calls(text)[1] if ended else []
        self.ids += ids
        self.model_mask += [1] * len(ids)
        self.messages.append(assistant_message(text, self.pending))
        self.turns += 1
        self.truncated = not ended

    def call_tools(self) -> list[dict]:
        """Run the last turn's calls; their tool messages (counted, failures too)."""
        results = [call_tool(call, self.functions) for call in self.pending]
        self.pending = []
        self.tool_calls += len(results)
        self.failed_calls += sum(failed for _, failed in results)
        return [message for message, _ in results]

    def add_tool_turn(self, messages: list[dict], ids: list[int]) -> None:
        """The tool messages and their tokens, which the loss does not see."""
        self.ids += ids
        self.model_mask += [0] * len(ids)
        self.messages += messages


def padded_rollouts(rollouts: list[Rollout], pad_token_id: int, device) -> tuple[Tensor, ...]:
    """``[B, L]`` tensors of B rollouts, right-padded to the longest, L ≥ 1: the completion
    tokens, their attention mask (1 on every token, the model's and the tools') and the model's
    mask (1 on the model's own tokens: the completion mask of the loss)."""
    length = max(1, max(len(rollout.ids) for rollout in rollouts))

    def padded(row: list[int], value: int) -> list[int]:
        return row + [value] * (length - len(row))

    ids = torch.tensor([padded(r.ids, pad_token_id) for r in rollouts], device=device)
    attention = torch.tensor([padded([1] * len(r.ids), 0) for r in rollouts], device=device)
    mask = torch.tensor([padded(r.model_mask, 0) for r in rollouts], device=device)
    return ids, attention, mask.float()


def tool_metrics(rollouts: list[Rollout]) -> dict:
    """A step's tool use, for its log: calls per rollout (TRL's tools/call_frequency), the share
    of calls that failed (tools/failure_frequency), the failed calls, the model's turns per
    rollout."""
    calls = sum(rollout.tool_calls for rollout in rollouts)
    failed = sum(rollout.failed_calls for rollout in rollouts)
    return {
        "tools/call_frequency": calls / len(rollouts),
        "tools/failure_frequency": failed / calls if calls else 0.0,
        "tools/failed_calls": failed,
        "completions/mean_turns": sum(rollout.turns for rollout in rollouts) / len(rollouts),
    }
