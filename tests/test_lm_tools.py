"""GRPO with tools and environments: multi-turn rollouts in which the model calls functions,
reads their results and goes on; the loss, the KL, the entropy and the token counts see only the
model's own tokens.

The model is the demo's tiny GPT-2 over a character tokenizer (tool tags are single tokens); a
logits processor makes its generate() write a script (a tool call, then an answer), so that the
rollouts' layout is known, while the loss's forward passes are the model's own."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
import string

import pytest
import torch

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

from test_lm_data import chat_tokenizer  # noqa: E402
from test_lm_grpo import QUICK, gradients, without_time  # noqa: E402

from rlgrad.errors import BadInputError  # noqa: E402
from rlgrad.lm import GRPOConfig, GRPOTrainer, demo, sampling, tools  # noqa: E402
from rlgrad.lm.config import check  # noqa: E402
from rlgrad.lm.lengths import completion_lengths, length_groups  # noqa: E402
from rlgrad.lm.model import Batch, token_log_probs  # noqa: E402
from rlgrad.lm.sampling import concatenate, take_groups  # noqa: E402

CHARACTERS = demo.DIGITS + string.ascii_letters + "+=:|;{}[]\",_.-()' \n"
TAGS = ["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"]
# the roles' initials, a colon, the content, a bar; the assistant's turn ends with EOS, after its
# tool calls written as Qwen's template writes them; the tools' names in a system line first
TEMPLATE = (
    "{%- if tools %}s:{% for t in tools %}{{ t.function.name }};{% endfor %}|{% endif %}"
    "{%- for m in messages %}"
    "{%- if m.role == 'assistant' %}a:{{ m.content }}"
    "{%- for c in m.tool_calls or [] %}<tool_call>"
    '{"name": "{{ c.function.name }}", "arguments": {{ c.function.arguments | tojson }}}'
    "</tool_call>{% endfor %}<eos>"
    "{%- elif m.role == 'tool' %}t:<tool_response>{{ m.content }}</tool_response>|"
    "{%- else %}{{ m.role[0] }}:{{ m.content }}|{% endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}a:{% endif %}"
)
OPTIONS = dict(max_completion_length=140, num_generations=2, prompts_per_step=4)


def tool_tokenizer(template: str = TEMPLATE):
    """One token per character, the tool tags one token each, and the template."""
    tokenizer = chat_tokenizer(template, CHARACTERS)
    tokenizer.add_tokens(TAGS)
    return tokenizer


def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: The first integer.
        b: The second integer.
    """
    return a + b


def divide(a: int, b: int) -> float:
    """Divide one integer by another.

    Args:
        a: The dividend.
        b: The divisor.
    """
    return a / b


def call(name: str, **arguments) -> str:
    return f"<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>"


# ----- a model that writes a script -----


def script(context: str, free_answer: bool) -> str | None:
    """What the model writes next, by the prompt "u:A+B=" and the tool rounds so far: A = 0 adds
    in two rounds (A + B, then + 0), A = 1 divides by 0 (the tool raises), A = 2 writes a malformed
    call, A = 3 calls a tool that does not exist, others add in one round; then the answer (a free
    token with ``free_answer``: "?" here). None: no script (the model samples)."""
    found = re.search(r"u:(\d)\+(\d)=", context)
    if found is None:
        return None
    a, b = int(found.group(1)), int(found.group(2))
    rounds = context.count("</tool_response>")
    answer = ("?" if free_answer else str(a + b)) + demo.EOS
    first = {
        0: call("add", a=a, b=b),
        1: call("divide", a=a, b=0),
        2: '<tool_call>{"name": add}</tool_call>',
        3: call("subtract", a=a, b=b),
    }.get(a, call("add", a=a, b=b))
    if rounds == 0:
        return first + demo.EOS
    if a == 0 and rounds == 1:
        return "ok " + call("add", a=a + b, b=0) + demo.EOS
    return answer


class Script(transformers.LogitsProcessor):
    """Leaves one token possible at each step: the script's next one ("?": any digit). The turn
    starts after the last "|a:" (a turn may span several generate calls)."""

    def __init__(self, tokenizer, free_answer: bool):
        self.tokenizer, self.free_answer = tokenizer, free_answer
        self.digits = tokenizer.convert_tokens_to_ids(list(demo.DIGITS))
        self.opening = ids_of(tokenizer, "|a:")

    def __call__(self, input_ids, scores):
        forced = torch.full_like(scores, -math.inf)
        for row, ids in enumerate(input_ids.tolist()):
            ids = [i for i in ids if i != 0]  # no padding
            starts = [k + 3 for k in range(len(ids) - 2) if ids[k : k + 3] == self.opening]
            text = script(self.tokenizer.decode(ids[: starts[-1]]), self.free_answer)
            if text is None:
                forced[row] = scores[row]
                continue
            planned = ids_of(self.tokenizer, text.replace("?", "0"))
            step = len(ids) - starts[-1]
            if step >= len(planned):
                forced[row] = scores[row]
            elif text.replace(demo.EOS, "")[-1:] == "?" and step == len(planned) - 2:
                forced[row, self.digits] = scores[row, self.digits]  # the free answer digit
            else:
                forced[row, planned[step]] = 0.0
        return forced


class ScriptedGPT2(transformers.GPT2LMHeadModel):
    """The demo's GPT-2 whose generate() follows :func:`script`; its forward is the model's."""

    script_tokenizer = None
    free_answer = False

    def generate(self, input_ids=None, **options):
        script = Script(self.script_tokenizer, self.free_answer)
        processors = transformers.LogitsProcessorList([script])
        return super().generate(input_ids=input_ids, logits_processor=processors, **options)


def scripted_model(tokenizer, seed: int = 0, free_answer: bool = False):
    base = demo.build_model(tokenizer, seed, positions=192)
    model = ScriptedGPT2(base.config)
    model.load_state_dict(base.state_dict())
    model.script_tokenizer, model.free_answer = tokenizer, free_answer
    return model.eval()


PAIRS = ((4, 1), (0, 2), (1, 3), (2, 2))


def rows(pairs=PAIRS) -> list[dict]:
    return [
        {"prompt": [{"role": "user", "content": f"{a}+{b}="}], "answer": str(a + b)}
        for a, b in pairs
    ]


def answer_reward(prompts, completions, answer, **columns) -> list[float]:
    """1 when the last assistant message is the answer."""
    return [float(c[-1]["content"] == right) for c, right in zip(completions, answer, strict=True)]


def closeness(completions, answer, **columns) -> list[float]:
    """−|d − answer| / 10 for an answer digit d (the free answers are digits)."""
    return [
        -abs(int(c[-1]["content"] or 0) - int(right)) / 10
        for c, right in zip(completions, answer, strict=True)
    ]


def tool_trainer(
    funcs=(answer_reward,),
    dataset=None,
    free_answer: bool = False,
    arguments: dict | None = None,
    seed: int = 0,
    **changes,
) -> GRPOTrainer:
    tokenizer = tool_tokenizer()
    model = scripted_model(tokenizer, seed, free_answer)
    config = GRPOConfig(**{**QUICK, **OPTIONS, **changes})
    arguments = {"tools": [add, divide], **(arguments or {})}
    return GRPOTrainer(
        model=model,
        reward_funcs=list(funcs),
        args=config,
        train_dataset=dataset or rows(),
        processing_class=tokenizer,
        **arguments,
    )


def ids_of(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False).input_ids


# ----- parsing and calling -----


def test_tool_calls_are_parsed_and_malformed_ones_carry_their_error():
    text = (
        'I add. <tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}</tool_call>'
        '<tool_call>{"name": "add", "arguments": "{\\"a\\": 5}"}</tool_call>'
        '<tool_call>{"arguments": {}}</tool_call><tool_call>{"name": "add", "arguments": 3}'
        "</tool_call><tool_call>{'name'"
    )
    content, calls = tools.parse_tool_calls(text)
    assert content == "I add."
    assert [(c.name, c.arguments, c.error) for c in calls] == [
        ("add", {"a": 1, "b": 2}, None),
        ("add", {"a": 5}, None),  # arguments as a JSON string, as some models write them
        ("", {}, 'a tool call must be {"name": ..., "arguments": {...}}'),
        ("add", {}, "the tool call's arguments must be a JSON object"),
        ("", {}, "the tool call is not valid JSON"),  # unclosed: runs to the end
    ]
    assert tools.parse_tool_calls("no call") == ("no call", [])


def test_a_failing_call_becomes_an_error_message_and_counts_as_failed():
    functions = tools.functions_by_name([add, divide])
    run = [
        tools.call_tool(tools.ToolCall("add", {"a": 2, "b": 3}), functions),
        tools.call_tool(tools.ToolCall("divide", {"a": 1, "b": 0}), functions),
        tools.call_tool(tools.ToolCall("add", {"c": 1}), functions),
        tools.call_tool(tools.ToolCall("subtract", {}), functions),
        tools.call_tool(tools.ToolCall("", {}, "the tool call is not valid JSON"), functions),
    ]
    assert run[0] == ({"role": "tool", "name": "add", "content": "5"}, False)
    errors = [json.loads(message["content"])["error"] for message, _ in run[1:]]
    assert errors[0] == "ZeroDivisionError: division by zero"
    assert errors[1].startswith("TypeError: ") and "'c'" in errors[1]
    assert errors[2] == "unknown tool 'subtract'; the tools are ['add', 'divide']"
    assert errors[3] == "the tool call is not valid JSON"
    assert [failed for _, failed in run] == [False, True, True, True, True]
    assert run[4][0]["name"] == "invalid_tool_call"


def test_the_tool_suffix_is_what_the_template_writes_after_the_models_eos():
    tokenizer = tool_tokenizer()
    assistant = {"role": "assistant", "content": "", "tool_calls": [tools.call_entry("add", {})]}
    messages = [tools.tool_message("add", "5"), tools.tool_message("add", "7")]
    suffix = tools.tool_suffix_ids(tokenizer, assistant, messages)
    written = "t:<tool_response>5</tool_response>|t:<tool_response>7</tool_response>|a:"
    assert suffix == ids_of(tokenizer, written)
    assert len(suffix) == 2 + 3 + 1 + 2 + 3 + 1 + 2  # each tag one token


def test_what_a_template_writes_after_the_eos_belongs_to_the_tool_suffix():
    # Qwen's templates end a turn with "<|im_end|>\n": the model samples through the EOS, so the
    # newline after it is the tool message's to write
    tokenizer = tool_tokenizer(
        TEMPLATE.replace(
            "</tool_call>{% endfor %}<eos>", "</tool_call>{% endfor %}<eos>{{ '\\n' }}"
        )
    )
    assistant = {"role": "assistant", "content": "", "tool_calls": [tools.call_entry("add", {})]}
    suffix = tools.tool_suffix_ids(tokenizer, assistant, [tools.tool_message("add", "5")])
    assert suffix == ids_of(tokenizer, "\nt:<tool_response>5</tool_response>|a:")


def test_a_template_that_rewrites_a_turn_once_a_tool_message_follows_is_refused():
    # the assistant's turn written "a:" when last, "A:" when a message follows: the tokens the
    # model sampled would not be the ones the template puts before the tool message
    template = TEMPLATE.replace(
        "a:{{ m.content }}", "{{ 'a' if loop.last else 'A' }}:{{ m.content }}"
    )
    tokenizer = tool_tokenizer(template)
    assistant = {"role": "assistant", "content": "", "tool_calls": [tools.call_entry("add", {})]}
    with pytest.raises(BadInputError, match="without changing them; with a tool message added"):
        tools.tool_suffix_ids(tokenizer, assistant, [tools.tool_message("add", "5")])


# ----- the rollouts and their masks -----


def assistant(content: str, *calls: tuple[str, dict]) -> dict:
    """An assistant message with its well-formed calls (name, arguments)."""
    message = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = [tools.call_entry(name, arguments) for name, arguments in calls]
    return message


def expected_rollout(tokenizer, a: int, b: int) -> tuple[list[int], list[int], list[dict]]:
    """The completion tokens, the model's mask and the messages of the script for "a+b=",
    built by hand from the texts the model and the template write."""
    pieces, messages = [], []

    def model_turn(text: str, message: dict):
        pieces.append((ids_of(tokenizer, text + demo.EOS), 1))
        messages.append(message)

    def tool_turn(name: str, content: str):
        written = f"t:<tool_response>{content}</tool_response>|a:"
        pieces.append((ids_of(tokenizer, written), 0))
        messages.append({"role": "tool", "name": name, "content": content})

    def error(text: str) -> str:
        return json.dumps({"error": text})

    if a == 1:
        model_turn(call("divide", a=1, b=0), assistant("", ("divide", {"a": 1, "b": 0})))
        tool_turn("divide", error("ZeroDivisionError: division by zero"))
    elif a == 2:
        model_turn('<tool_call>{"name": add}</tool_call>', assistant(""))
        tool_turn("invalid_tool_call", error("the tool call is not valid JSON"))
    elif a == 3:
        model_turn(call("subtract", a=3, b=b), assistant("", ("subtract", {"a": 3, "b": b})))
        tool_turn("subtract", error("unknown tool 'subtract'; the tools are ['add', 'divide']"))
    else:
        model_turn(call("add", a=a, b=b), assistant("", ("add", {"a": a, "b": b})))
        tool_turn("add", str(a + b))
    if a == 0:  # a second round
        model_turn("ok " + call("add", a=b, b=0), assistant("ok", ("add", {"a": b, "b": 0})))
        tool_turn("add", str(b))
    model_turn(str(a + b), assistant(str(a + b)))
    ids = [token for piece, _ in pieces for token in piece]
    mask = [flag for piece, flag in pieces for _ in piece]
    return ids, mask, messages, pieces


def test_the_mask_covers_the_models_tokens_of_a_hand_built_conversation():
    calls = []

    def record(prompts, completions, completion_ids, **columns):
        calls.append((prompts, completions, completion_ids))
        return [0.0] * len(completions)

    grpo = tool_trainer([record])
    grpo.dataset = rows()  # the four prompts, each script once, in a known order
    grpo.order = [3, 2, 1, 0]
    batch, info = grpo.sample()
    ((prompts, completions, completion_ids),) = calls
    tokenizer = grpo.tokenizer
    for index, (a, b) in enumerate(
        [(4, 1), (4, 1), (0, 2), (0, 2), (1, 3), (1, 3), (2, 2), (2, 2)]
    ):
        ids, mask, messages, _ = expected_rollout(tokenizer, a, b)
        n = len(ids)
        assert batch.completion_ids[index, :n].tolist() == ids
        assert batch.completion_mask[index].tolist() == mask + [0.0] * (
            batch.completion_mask.shape[1] - n
        )
        completion_attention = batch.attention_mask[index, batch.prompt_length :]
        assert completion_attention.tolist() == [1] * n + [0] * (len(completion_attention) - n)
        assert completions[index] == messages  # the whole conversation of the completion
        assert completion_ids[index] == ids  # the model's and the tools' tokens
        assert prompts[index] == [{"role": "user", "content": f"{a}+{b}="}]
        prompt = tokenizer.decode(
            batch.input_ids[index, : batch.prompt_length], skip_special_tokens=True
        )
        assert prompt == f"s:add;divide;|u:{a}+{b}=|a:"  # the tools offered
    # calls per rollout: 1, 2, 1, 1 in the groups; failures: divide by 0, the malformed call
    assert info["tools/call_frequency"] == pytest.approx(5 / 4)
    assert info["tools/failed_calls"] == 4
    assert info["tools/failure_frequency"] == pytest.approx(4 / 10)
    assert info["completions/mean_turns"] == pytest.approx((2 + 3 + 2 + 2) / 4)
    model_tokens = [
        sum(expected_rollout(tokenizer, a, b)[1]) for a, b in [(4, 1), (0, 2), (1, 3), (2, 2)]
    ]
    assert info["completions/mean_length"] == pytest.approx(sum(model_tokens) / 4)


# ----- the loss sees the model's tokens only -----


def scripted_batch(grpo: GRPOTrainer, pairs=PAIRS) -> Batch:
    """One sampled step over ``pairs`` in order (G rollouts each), with random advantages and
    old and reference log-probs from perturbed copies of the model (so that the ratio, its
    clipping and the KL all act)."""
    grpo.dataset, grpo.order = rows(pairs), list(range(len(pairs)))[::-1]
    batch, _ = grpo.sample()
    generator = torch.Generator().manual_seed(5)
    batch.advantages = torch.randn(len(batch.advantages), generator=generator)
    batch.old_log_probs = grpo._token_log_probs(perturbed(grpo.model, 0.03, 1), batch)[0].detach()
    batch.ref_log_probs = grpo._token_log_probs(perturbed(grpo.model, 0.1, 2), batch)[0].detach()
    return batch


def perturbed(model, scale: float, seed: int):
    moved = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in moved.parameters():
            parameter += scale * torch.randn(parameter.shape, generator=generator)
    return moved


def turn_by_turn(model, tokenizer, pairs, group: int, temperature: float):
    """For each rollout, the log-probs (differentiable) and entropies of the model's own tokens,
    each model turn scored by a pass over the unpadded prompt and every token before the turn
    (tool messages included), as the hand-built conversation lays them out; no mask involved."""
    rollouts = []
    for a, b in pairs:
        prompt = ids_of(tokenizer, f"s:add;divide;|u:{a}+{b}=|a:")
        for _ in range(group):
            context, log_probs, entropies = list(prompt), [], []
            for piece, by_model in expected_rollout(tokenizer, a, b)[3]:
                if by_model:
                    ids = torch.tensor([context + piece])
                    logits = model(input_ids=ids).logits[0, len(context) - 1 : -1] / temperature
                    logits = logits.float()
                    every = torch.log_softmax(logits, dim=-1)
                    log_probs.append(every.gather(-1, torch.tensor(piece)[:, None])[:, 0])
                    entropies.append(-(every.exp() * every).sum(-1).detach())
                context += piece
            rollouts.append((torch.cat(log_probs), torch.cat(entropies)))
    return rollouts


@pytest.mark.parametrize("loss_type", ["dapo", "grpo", "dr_grpo"])
def test_the_loss_of_a_rollout_with_tool_turns_is_the_loss_of_the_models_turns_alone(loss_type):
    # the trainer's update runs on the padded batch (prompt + model and tool tokens) with the
    # model's mask; the reference scores each model turn on its own context and never sees a
    # tool message's token as one to score: the losses, their gradients, the entropy and the
    # KL must agree. Counting tool tokens (in the loss, the KL, the entropy or a denominator),
    # hiding them from attention, or numbering positions differently all break the equality.
    epsilon, beta, temperature, budget = 0.2, 0.1, 0.8, OPTIONS["max_completion_length"]
    grpo = tool_trainer(
        loss_type=loss_type,
        beta=beta,
        temperature=temperature,
        learning_rate=0.0,
        max_grad_norm=None,
        epsilon=epsilon,
    )
    batch = scripted_batch(grpo)
    old_model, ref_model = perturbed(grpo.model, 0.03, 1), perturbed(grpo.model, 0.1, 2)
    reference_model = copy.deepcopy(grpo.model)
    metrics = grpo.update(batch)
    group, tokenizer = grpo.config.num_generations, grpo.tokenizer
    with torch.no_grad():
        olds = turn_by_turn(old_model, tokenizer, PAIRS, group, temperature)
        refs = turn_by_turn(ref_model, tokenizer, PAIRS, group, temperature)
    currents = turn_by_turn(reference_model, tokenizer, PAIRS, group, temperature)
    per_rollout, entropies, kls = [], [], []
    for (log_probs, entropy), (old, _), (ref, _), advantage in zip(
        currents, olds, refs, batch.advantages, strict=True
    ):
        ratio = torch.exp(log_probs - old)
        clipped = torch.clamp(ratio, 1 - epsilon, 1 + epsilon)
        k3 = torch.exp(ref - log_probs) - (ref - log_probs) - 1
        per_rollout.append(-torch.minimum(ratio * advantage, clipped * advantage) + beta * k3)
        entropies.append(entropy)
        kls.append(k3.detach())
    tokens = sum(len(losses) for losses in per_rollout)
    assert tokens < int(batch.attention_mask[:, batch.prompt_length :].sum())  # tools excluded
    if loss_type == "dapo":  # every model token weighs the same
        loss = sum(losses.sum() for losses in per_rollout) / tokens
    elif loss_type == "grpo":  # every completion weighs the same
        loss = sum(losses.mean() for losses in per_rollout) / len(per_rollout)
    else:  # Dr. GRPO: a constant denominator
        loss = sum(losses.sum() for losses in per_rollout) / (len(per_rollout) * budget)
    loss.backward()
    assert metrics["loss"] == pytest.approx(loss.item(), rel=1e-5)
    assert metrics["entropy"] == pytest.approx(torch.cat(entropies).mean().item(), rel=1e-5)
    assert metrics["kl"] == pytest.approx(torch.cat(kls).mean().item(), rel=1e-5)
    expected = gradients(reference_model)
    found = gradients(grpo.model)
    assert found.keys() == expected.keys() and len(found) > 10
    for name, value in expected.items():  # float32 sums in another order: 1e-5 of the largest
        scale = float(value.abs().max())
        torch.testing.assert_close(found[name], value, rtol=1e-4, atol=1e-5 * scale)
    assert metrics["clip_ratio/low_mean"] + metrics["clip_ratio/high_mean"] > 0


@pytest.mark.parametrize("steps", [2, 8])
def test_gradient_accumulation_with_tool_turns_makes_the_update_of_the_whole_batch(steps):
    options = dict(beta=0.1, learning_rate=0.0, max_grad_norm=None)
    whole_trainer = tool_trainer(**options)
    whole = whole_trainer.update(scripted_batch(whole_trainer))
    expected = gradients(whole_trainer.model)
    split_trainer = tool_trainer(**options, gradient_accumulation_steps=steps)
    split = split_trainer.update(scripted_batch(split_trainer))
    found = gradients(split_trainer.model)
    assert found.keys() == expected.keys() and len(found) > 10
    for name, value in expected.items():
        scale = float(value.abs().max())
        torch.testing.assert_close(found[name], value, rtol=1e-4, atol=1e-5 * scale)
    for key in ("loss", "kl", "entropy"):
        assert split[key] == pytest.approx(whole[key], rel=1e-5), key


def test_passes_grouped_by_length_give_the_log_probs_of_one_padded_pass():
    grpo = tool_trainer()
    pairs = ((4, 1), (5, 1), (6, 1), (0, 2))  # one round of calls, one round, one round, two
    batch = scripted_batch(grpo, pairs)
    lengths = completion_lengths(batch.completion_mask)
    # after the last model token (an EOS) nothing follows: the lengths are the rollouts' own
    assert lengths.tolist() == [
        len(expected_rollout(grpo.tokenizer, a, b)[0]) for a, b in pairs for _ in range(2)
    ]
    assert len(length_groups(lengths, batch.prompt_length, 4)) > 1
    grouped, _ = token_log_probs(grpo.model, batch, grpo.forward)
    padded, _ = token_log_probs(grpo.model, batch, dataclasses.replace(grpo.forward, max_groups=1))
    mask = batch.completion_mask.bool()
    torch.testing.assert_close(grouped[mask], padded[mask], rtol=1e-5, atol=1e-6)


def test_max_tool_calling_iterations_caps_the_rounds_of_calls():
    tokenizer = tool_tokenizer()
    for cap, turns, calls in ((0, [1, 1], [0, 0]), (1, [2, 2], [1, 1]), (None, [2, 3], [1, 2])):
        grpo = tool_trainer(max_tool_calling_iterations=cap)
        generation, completions, _, rollouts, _ = grpo._roll_out(rows([(4, 1), (0, 2)]), 1)
        assert [r.turns for r in rollouts] == turns, cap
        assert [r.tool_calls for r in rollouts] == calls, cap
        assert not generation.truncated.any()  # a cap is no truncation
        if cap == 1:  # the second call of "0+2" stays unanswered
            assert completions[1][-1] == assistant("ok", ("add", {"a": 2, "b": 0}))
        _, mask, _, _ = expected_rollout(tokenizer, 4, 1)
        if cap == 0:
            first_turn = len(ids_of(tokenizer, call("add", a=4, b=1) + demo.EOS))
            assert generation.completion_mask[0].sum() == first_turn
        else:
            assert generation.completion_mask[0, : len(mask)].tolist() == mask


def test_the_budget_counts_tool_tokens_and_a_tool_message_that_does_not_fit_is_left_out():
    tokenizer = tool_tokenizer()
    first = len(ids_of(tokenizer, call("add", a=4, b=1) + demo.EOS))
    suffix = len(ids_of(tokenizer, "t:<tool_response>5</tool_response>|a:"))
    # no room for a model token after the tool message: it is left out, the rollout truncated
    grpo = tool_trainer(max_completion_length=first + suffix)
    generation, completions, ids, rollouts, _ = grpo._roll_out(rows([(4, 1)]), 1)
    assert ids[0] == ids_of(tokenizer, call("add", a=4, b=1) + demo.EOS)
    assert rollouts[0].tool_calls == 1 and len(completions[0]) == 1
    assert generation.truncated.tolist() == [True]
    # room for one: the answer is cut after "5", before its EOS
    grpo = tool_trainer(max_completion_length=first + suffix + 1)
    generation, completions, ids, rollouts, _ = grpo._roll_out(rows([(4, 1)]), 1)
    assert len(ids[0]) == first + suffix + 1 and ids[0][-1] == ids_of(tokenizer, "5")[0]
    assert generation.completion_mask[0].tolist() == [1] * first + [0] * suffix + [1]
    assert generation.truncated.tolist() == [True] and completions[0][-1]["content"] == "5"


# ----- environments -----


class Adder:
    """An environment: an episode's additions, and the answer of its row."""

    made = 0

    def __init__(self):
        Adder.made += 1
        self.answer, self.sums = None, []

    def reset(self, prompt, answer, **columns) -> str:
        self.answer, self.sums = answer, []
        return " go"

    def add(self, a: int, b: int) -> int:
        """Add two integers.

        Args:
            a: The first integer.
            b: The second integer.
        """
        self.sums.append(a + b)
        return a + b


def test_an_environment_per_rollout_offers_its_methods_and_reaches_the_rewards():
    seen = []

    def additions(completions, environments, answer, **columns) -> list[float]:
        seen.append((environments, answer, [list(e.sums) for e in environments]))
        return [float(len(environment.sums)) for environment in environments]

    Adder.made = 0
    grpo = tool_trainer([additions], arguments={"tools": [divide], "environment_factory": Adder})
    assert Adder.made == 1  # one made to read its tools
    grpo.dataset, grpo.order = rows(), [3, 2, 1, 0]
    batch, info = grpo.sample()
    environments, answers, sums = seen[0]
    assert len({id(e) for e in environments}) == 8 and Adder.made == 8  # one per rollout
    assert [e.answer for e in environments] == answers == ["5", "5", "2", "2", "4", "4", "4", "4"]
    # "0+2" adds twice; "1+3" divides (a plain tool), "2+2" writes a malformed call
    assert sums == [[5], [5], [2, 2], [2, 2], [], [], [], []]
    assert info["rewards/additions/mean"] == pytest.approx((1 + 2) / 4)
    prompt = grpo.tokenizer.decode(
        batch.input_ids[0, : batch.prompt_length], skip_special_tokens=True
    )
    assert prompt == "s:divide;add;|u:4+1= go|a:"  # reset's string ends the user's message
    assert grpo._completion_log(grpo._sample_round(rows()), torch.zeros(8))[0]["prompt"] == prompt
    grpo.dataset, grpo.order = rows(), [3, 2, 1, 0]
    grpo.sample()
    assert Adder.made == 8 and seen[1][0] == environments  # the pool is reset, not remade


# ----- runs: logs, resume, LoRA -----


def test_a_run_with_tools_logs_the_whole_conversation_and_resumes_exactly(tmp_path):
    options = dict(free_answer=True, max_steps=4, beta=0.05, num_iterations=2, funcs=[closeness])
    whole = tool_trainer(
        **options, save_steps=2, output_dir=str(tmp_path / "whole"), log_completions=True
    )
    before = {k: v.clone() for k, v in whole.model.state_dict().items()}
    history = whole.train()
    for key in ("tools/call_frequency", "tools/failure_frequency", "completions/mean_turns"):
        assert all(math.isfinite(row[key]) for row in history), key
    assert any(row["reward_std"] > 0 for row in history)  # the free answers differ
    unchanged = [n for n, p in whole.model.named_parameters() if torch.equal(before[n], p)]
    assert not unchanged, unchanged
    lines = (tmp_path / "whole" / "completions.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 4 * 8
    record = records[0]
    assert record["conversation"][1]["role"] == "tool"
    assert record["completion"].startswith('<tool_call>{"name": ')
    assert "<tool_response>" in record["completion"]  # the tool's message, between the turns
    resumed = tool_trainer(**options, output_dir=str(tmp_path / "resumed"), seed=1)
    again = resumed.train(resume_from_checkpoint=tmp_path / "whole" / "checkpoint-2")
    assert without_time(again) == without_time(history)


@pytest.mark.filterwarnings("ignore:.is_gradient_checkpointing. is deprecated")
def test_lora_with_tool_turns_trains_the_adapters_only():
    peft = pytest.importorskip("peft")
    lora = dict(r=4, lora_alpha=8, target_modules=["c_attn", "c_fc"], fan_in_fan_out=True)
    grpo = tool_trainer(
        [closeness],
        free_answer=True,
        max_steps=2,
        beta=0.1,
        arguments={"peft_config": peft.LoraConfig(**lora, task_type="CAUSAL_LM")},
    )
    before = {n: p.detach().clone() for n, p in grpo.model.named_parameters()}
    history = grpo.train()
    assert all(math.isfinite(row["loss"]) and row["kl"] >= 0 for row in history)
    for name, parameter in grpo.model.named_parameters():
        moved = not torch.equal(before[name], parameter.detach())
        assert moved == ("lora_" in name), name


# ----- refused input -----


def plain_rows() -> list[dict]:
    return [{"prompt": "4+1=", "answer": "5"}]


def no_docstring(a: int) -> int:
    return a


class NoReset:
    def add(self, a: int) -> int:
        """Add nothing.

        Args:
            a: A number.
        """
        return a


class BadReset(Adder):
    def reset(self, **row) -> int:
        return 3


@pytest.mark.parametrize(
    "change, error, message",
    [
        (dict(dataset=plain_rows()), BadInputError, "need chat-message prompts (tool results "),
        (dict(arguments={"tools": [no_docstring]}), BadInputError, "tool 'no_docstring' must"),
        (dict(arguments={"tools": [3]}), TypeError, "tools[0] must be a function; got int"),
        (
            dict(arguments={"tools": [add], "environment_factory": Adder}),
            BadInputError,
            "every tool must have its own name; got two named 'add'",
        ),
        (
            dict(arguments={"environment_factory": NoReset}),
            BadInputError,
            "environment_factory must make objects with a reset(**row) method; 'NoReset' made",
        ),
        (dict(arguments={"environment_factory": 7}), TypeError, "must be a class or a function"),
        (
            dict(template="{% for m in messages %}{{ m['content'] }}|{% endfor %}"),
            BadInputError,
            "tools need a chat template that writes the tools, the assistant's tool_calls",
        ),
    ],
)
def test_bad_tools_are_refused_by_name(change, error, message):
    template = change.pop("template", TEMPLATE)
    arguments = {"tools": [add, divide], **change.pop("arguments", {})}
    tokenizer = tool_tokenizer(template)
    with pytest.raises(error) as raised:
        GRPOTrainer(
            model=scripted_model(tokenizer),
            reward_funcs=[answer_reward],
            args=GRPOConfig(**{**QUICK, **OPTIONS}),
            train_dataset=change.pop("dataset", rows()),
            processing_class=tokenizer,
            **arguments,
        )
    assert message in str(raised.value)
    assert str(raised.value).startswith("GRPOTrainer: ")


def test_a_reset_that_returns_neither_none_nor_a_string_is_refused():
    grpo = tool_trainer(arguments={"tools": [], "environment_factory": BadReset})
    with pytest.raises(TypeError, match=r"BadReset.reset\(\) must return None or a string"):
        grpo.sample()


@pytest.mark.parametrize("value", [-1, 1.5, True])
def test_bad_max_tool_calling_iterations_is_refused(value):
    with pytest.raises(BadInputError, match="max_tool_calling_iterations must be none or an"):
        check(GRPOConfig(max_tool_calling_iterations=value))


def test_evaluation_and_dynamic_sampling_run_the_tool_turns_too():
    grpo = tool_trainer(arguments={"eval_dataset": rows()})
    metrics = grpo.evaluate()  # greedy, one rollout per prompt: the scripts as written
    model_tokens = [sum(expected_rollout(grpo.tokenizer, a, b)[1]) for a, b in PAIRS]
    assert metrics["eval_completions/mean_length"] == pytest.approx(sum(model_tokens) / 4)
    assert metrics["eval_rewards/answer_reward/mean"] == 1.0  # every script ends with the sum
    # dynamic sampling keeps some groups of a round and joins rounds: the rollouts follow
    grpo = tool_trainer()
    sampled = grpo._sample_round(rows())
    kept = take_groups(sampled, torch.tensor([False, True, False, True]))  # "0+2" and "2+2"
    joined = concatenate([kept, sampled], grpo.tokenizer.pad_token_id)
    for part, pairs in ((kept, [(0, 2), (2, 2)]), (joined, [(0, 2), (2, 2), *PAIRS])):
        for index, rollout in enumerate(part.rollouts):
            a, b = pairs[index // 2]
            assert rollout.ids == expected_rollout(grpo.tokenizer, a, b)[0]
            assert part.completion_ids[index, : len(rollout.ids)].tolist() == rollout.ids


def test_no_row_generates_past_its_own_budget_when_turns_of_uneven_budgets_go_together(
    monkeypatch,
):
    # after the first turn, "1+3=" reads a long error message and "0+2=" a short result: their
    # second turns have different budgets left, and "0+2=" writes a long one (a second call).
    # Each generate call runs to the smallest budget left, so no row ever reaches past its
    # prompt + max_completion_length positions, and a turn cut by that goes on in the next call
    calls, continue_ids = [], sampling.continue_ids

    def spy(model, tokenizer, input_ids, attention, *, max_new_tokens, **options):
        calls.append((attention.sum(dim=1).tolist(), max_new_tokens))
        return continue_ids(
            model, tokenizer, input_ids, attention, max_new_tokens=max_new_tokens, **options
        )

    monkeypatch.setattr(sampling, "continue_ids", spy)
    grpo = tool_trainer()
    _, _, _, rollouts, _ = grpo._roll_out(rows([(0, 2), (1, 3)]), 1)
    prompt = len(ids_of(grpo.tokenizer, "s:add;divide;|u:0+2=|a:"))  # "1+3=" the same length
    limit = prompt + OPTIONS["max_completion_length"]
    assert len(calls) == 4  # a first turn, a second in two calls, a third
    assert calls[1][1] < calls[2][1]  # "1+3=" had the smaller budget
    for lengths, new_tokens in calls:
        assert all(n + new_tokens <= limit for n in lengths), (lengths, new_tokens)
    assert [r.ids for r in rollouts] == [
        expected_rollout(grpo.tokenizer, 0, 2)[0],
        expected_rollout(grpo.tokenizer, 1, 3)[0],
    ]
