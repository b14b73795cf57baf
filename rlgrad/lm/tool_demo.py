"""A GRPO task a tiny model can only solve with its tool: two-digit multiplication, by calling
``multiply`` and copying its result. On a CPU, nothing to download.

The prompt is a chat message ``"47*85="`` (both operands from 32 to 99, so every product has four
digits: no model this size computes it, and a guessed answer is right with probability 1/9000).
The model is offered one tool, :func:`multiply`, and must

1. call it with the prompt's numbers:
   ``<tool_call>{"name": "multiply", "arguments": {"a": 47, "b": 85}}</tool_call>`` then EOS;
2. read the tool message ``<tool_response>3995</tool_response>`` and answer ``3995`` then EOS.

Both steps are copies: four digits from the prompt into the call, four from the tool message
into the answer. To keep the model's work to those digits, the tokenizer is one token per
character except for a few coarse tokens (:data:`COARSE_TOKENS`): the JSON scaffolding of the call
(``<tool_call>{"name": "multiply", "arguments": {"a": ``, then ``, "b": ``, then
``}}</tool_call>``), the tool-response tags and the tool's name. A call is then 7 tokens, of which
4 are digits. Operands and products of fixed length put every digit to copy at a fixed distance
from its copy, which a two-layer model learns quickly from rewards.

The supervised warm-up (:func:`warm_up`) teaches the format and the relay, never the call: on
each prompt, a call with two *random* operands (not the prompt's), the tool's true message for
those, and an answer that copies that message. It shows where digits go, where turns end and
that the answer repeats the tool, as an instruction-tuned model already does; which numbers to
call the tool with is left to GRPO. Greedy accuracy after it is about 0 (measured: 0.0 on the
held-out prompts), since the calls are random.

Rewards:

* ``correct``: 1 when the final answer is the product (the task);
* ``digits``: 0.25 × the share of the call's four digits equal to the prompt's, plus 0.25 × the
  share of the answer's digits equal to the tool message's. A partial credit per digit: with a
  reward only for all eight digits right, a group would almost never see a nonzero reward
  (≈ 10⁻⁸ by chance after the warm-up). The answer is compared with the tool's message, not with
  the product, so that copying is rewarded whatever the call was (compared with the product, the
  answer turn collapsed onto a few guessed digits while the calls were still wrong, in tuning).

A KL term to the warm-up model (β = 0.2) keeps the digits of the call exploring: with β = 0.04,
seed 1000's calls collapsed onto one constant call within 100 steps and never recovered.

Why the answer is copied in the warm-up: with ``warm_up(answers="random")`` (four random digits,
the format alone), the tuning seeds 1000 and 1001 reached 0.9 in 400-525 steps, but on seeds 0
and 1 every call was right after 3,000 steps and the accuracy stayed at 0.33 and 0.10. A likely
reason: the reference's answer digits are then uniform, and the KL term prices a sure copy at
β × 4 ln 10 ≈ 1.8 per answer, more than the 1.25 the right answer earns. With the copying
warm-up, the same settings reach 0.9 on all 22 seeds tried (20 held out), in 75-550 steps
(BENCHMARKS.md).

Used by ``rlgrad grpo-demo --tools``.
"""

from __future__ import annotations

import string
import time

import torch

from rlgrad.errors import BadInputError
from rlgrad.lm.demo import EOS, PAD, build_model

OPERANDS = range(32, 100)  # 32 × 32 = 1024: every product has four digits
HELD_OUT = 200  # prompts never trained on; accuracy is measured on them
CALL_OPEN = '<tool_call>{"name": "multiply", "arguments": {"a": '
CALL_MIDDLE = ', "b": '
CALL_CLOSE = "}}</tool_call>"
COARSE_TOKENS = [CALL_OPEN, CALL_MIDDLE, CALL_CLOSE, "<tool_response>", "</tool_response>"]
COARSE_TOKENS += ["multiply"]
# every printable character, so that a tool's error message (a malformed call) has tokens too
CHARACTERS = string.digits + string.ascii_letters + string.punctuation + " "
# the tools' names, then "u:" + the user's message, "a:" + the assistant's turn (its calls as
# Qwen's template writes them) closed by EOS, a tool message between its tags
TEMPLATE = (
    "{%- if tools %}{% for t in tools %}{{ t.function.name }}{% endfor %}|{% endif %}"
    "{%- for m in messages %}"
    "{%- if m.role == 'assistant' %}a:{{ m.content }}"
    "{%- for c in m.tool_calls or [] %}<tool_call>"
    '{"name": "{{ c.function.name }}", "arguments": {{ c.function.arguments | tojson }}}'
    "</tool_call>{% endfor %}<eos>"
    "{%- elif m.role == 'tool' %}<tool_response>{{ m.content }}</tool_response>"
    "{%- else %}u:{{ m.content }}|{% endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}a:{% endif %}"
)
MAX_COMPLETION_LENGTH = 24  # the call (7 tokens), the tool message and "a:" (8), the answer (5)


def multiply(a: int, b: int) -> int:
    """Multiply two integers.

    Args:
        a: The first integer.
        b: The second integer.
    """
    return a * b


def build_tokenizer():
    """One token per character, the :data:`COARSE_TOKENS` one token each, and :data:`TEMPLATE`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocabulary = {PAD: 0, EOS: 1, **{c: i + 2 for i, c in enumerate(CHARACTERS)}}
    core = Tokenizer(models.WordLevel(vocab=vocabulary, unk_token=PAD))
    core.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    core.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token=PAD, eos_token=EOS)
    tokenizer.add_tokens(COARSE_TOKENS)  # not special: decoding keeps them, the parser reads them
    tokenizer.chat_template = TEMPLATE
    tokenizer.padding_side = "left"
    return tokenizer


def row(a: int, b: int) -> dict:
    return {
        "prompt": [{"role": "user", "content": f"{a}*{b}="}],
        "answer": str(a * b),
        "a": a,
        "b": b,
    }


def split() -> tuple[list[dict], list[dict]]:
    """All 4,624 prompts, split once (a fixed seed) into training prompts and :data:`HELD_OUT`
    held-out prompts."""
    pairs = [(a, b) for a in OPERANDS for b in OPERANDS]
    order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(2026)).tolist()
    rows = [row(*pairs[i]) for i in order]
    return rows[HELD_OUT:], rows[:HELD_OUT]


def digit_share(written: str, right: str) -> float:
    """The share of ``right``'s digits that ``written`` has at the same place."""
    return sum(x == y for x, y in zip(written, right, strict=False)) / len(right)


def correct(prompts, completions, answer, **columns) -> list[float]:
    """1 when the completion's last message is the assistant's answer, the product."""
    return [
        float(c[-1]["role"] == "assistant" and c[-1]["content"].strip() == right)
        for c, right in zip(completions, answer, strict=True)
    ]


def digits(prompts, completions, a, b, **columns) -> list[float]:
    """0.25 × the share of the call's digits equal to the prompt's + 0.25 × the share of the
    answer's digits equal to the tool message's (see the module's docstring)."""
    rewards = []
    for messages, first, second in zip(completions, a, b, strict=True):
        reward = 0.0
        calls = messages[0].get("tool_calls", [])
        if calls:
            arguments = calls[0]["function"]["arguments"]
            written = f"{arguments.get('a', '')}{arguments.get('b', '')}"
            reward += 0.25 * digit_share(written, f"{first}{second}")
        if len(messages) == 3 and messages[1]["content"].isdigit():
            reward += 0.25 * digit_share(messages[2]["content"].strip(), messages[1]["content"])
        rewards.append(reward)
    return rewards


def conversation_ids(tokenizer, prompt, a: int, b: int, answer: str) -> tuple[list, list]:
    """The tokens of prompt, a call multiply(a, b), its tool message and ``answer``, and a mask
    that is 1 on the assistant's tokens (the call, the answer, their EOS)."""
    from rlgrad.lm import data, tools

    prompt_ids = tools.encode(tokenizer, data.render_prompt(tokenizer, prompt, schemas()))
    call = f"{CALL_OPEN}{a}{CALL_MIDDLE}{b}{CALL_CLOSE}"
    call_ids = [*tools.encode(tokenizer, call), tokenizer.eos_token_id]
    assistant = tools.assistant_message(call, tools.parse_tool_calls(call)[1])
    suffix = tools.tool_suffix_ids(
        tokenizer, assistant, [tools.tool_message("multiply", str(a * b))]
    )
    answer_ids = [*tools.encode(tokenizer, answer), tokenizer.eos_token_id]
    ids = prompt_ids + call_ids + suffix + answer_ids
    mask = [0] * len(prompt_ids) + [1] * len(call_ids) + [0] * len(suffix) + [1] * len(answer_ids)
    return ids, mask


def warm_up(
    model,
    tokenizer,
    rows,
    steps: int = 100,
    seed: int = 0,
    lr: float = 3e-3,
    answers: str = "copy",
) -> None:
    """Supervised steps on each prompt with a call of random operands (not the prompt's) and
    their product as the tool message, then an answer that copies that message
    (``answers="copy"``) or four random digits (``answers="random"``); see the module's
    docstring."""
    if answers not in ("copy", "random"):
        raise BadInputError(f"warm_up: answers must be 'copy' or 'random'; got {answers!r}")
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        batch = []
        for _ in range(32):
            pick = torch.randint(len(rows), (1,), generator=generator).item()
            a, b = (
                OPERANDS[torch.randint(len(OPERANDS), (1,), generator=generator).item()]
                for _ in "ab"
            )
            # drawn either way, so that both kinds of warm-up see the same calls
            answer = str(torch.randint(1000, 10000, (1,), generator=generator).item())
            if answers == "copy":
                answer = str(a * b)
            batch.append(conversation_ids(tokenizer, rows[pick]["prompt"], a, b, answer))
        ids = torch.tensor([i for i, _ in batch])  # one length: fixed-length operands and answers
        labels = ids.masked_fill(torch.tensor([m for _, m in batch]) == 0, -100)
        loss = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()


def schemas() -> list[dict]:
    """The JSON schema of :func:`multiply`, as the chat template is given it."""
    from rlgrad.lm import tools

    return tools.tool_schemas([multiply])


@torch.no_grad()
def greedy_accuracy(model, tokenizer, rows) -> dict:
    """Greedy rollouts with the tool on ``rows``: the share answered right (``accuracy``) and
    the share whose call had the prompt's operands (``calls_right``)."""
    from rlgrad.lm import sampling

    model.eval()
    _, rollouts = sampling.generate_with_tools(
        model,
        tokenizer,
        [r["prompt"] for r in rows],
        [{"multiply": multiply}] * len(rows),
        schemas(),
        max_new_tokens=MAX_COMPLETION_LENGTH,
        max_iterations=1,
        greedy=True,
    )
    messages = [rollout.messages for rollout in rollouts]
    answers = correct(None, messages, [r["answer"] for r in rows])
    calls_right = [
        float(
            bool(m[0].get("tool_calls"))
            and m[0]["tool_calls"][0]["function"]["arguments"] == {"a": r["a"], "b": r["b"]}
        )
        for m, r in zip(messages, rows, strict=True)
    ]
    return {"accuracy": sum(answers) / len(rows), "calls_right": sum(calls_right) / len(rows)}


def demo_config(**changes):
    from rlgrad.lm.config import GRPOConfig

    fields = dict(
        max_steps=3000,
        prompts_per_step=8,
        num_generations=8,
        max_completion_length=MAX_COMPLETION_LENGTH,
        max_tool_calling_iterations=1,
        learning_rate=2e-3,
        warmup_steps=5,
        max_grad_norm=1.0,
        beta=0.2,
        logging_steps=0,
        task="multiplication-with-a-tool",
    )
    fields.update(changes)
    return GRPOConfig(**fields)


class StopAt:
    """Stops training at the first evaluation whose greedy accuracy reaches ``target``, or after
    the first step past ``seconds`` of training; records the evaluations."""

    def __init__(self, target: float, seconds: float):
        self.target, self.seconds = target, seconds
        self.started = time.perf_counter()
        self.evaluations: list[tuple[int, float, float]] = []  # (step, seconds, accuracy)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        accuracy = metrics["eval_reward_mean"]
        self.evaluations.append((state.global_step, time.perf_counter() - self.started, accuracy))
        if accuracy >= self.target:
            control.should_training_stop = True

    def on_step_end(self, args, state, control, **kwargs):
        if time.perf_counter() - self.started > self.seconds:
            control.should_training_stop = True


def run(
    seed: int = 0,
    warm_up_steps: int = 100,
    warm_up_answers: str = "copy",
    target: float = 0.9,
    seconds: float = 600.0,
    eval_steps: int = 25,
    progress: bool = False,
    callbacks: tuple = (),
    **changes,
) -> dict:
    """Warm up, then GRPO until the greedy accuracy on the held-out prompts reaches ``target``
    (checked every ``eval_steps`` steps) or ``seconds`` of GRPO have passed."""
    from rlgrad.lm.grpo import GRPOTrainer

    torch.set_num_threads(1)
    train_rows, held_out = split()
    started = time.perf_counter()
    tokenizer = build_tokenizer()
    model = build_model(tokenizer, seed, positions=48)
    warm_up(model, tokenizer, train_rows, warm_up_steps, seed, answers=warm_up_answers)
    warm_s = time.perf_counter() - started
    before = greedy_accuracy(model, tokenizer, held_out)
    stop = StopAt(target, seconds)
    config = demo_config(
        seed=seed, logging_steps=1 if progress else 0, eval_steps=eval_steps, **changes
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[correct, digits],
        args=config,
        train_dataset=train_rows,
        eval_dataset=held_out,
        eval_reward_funcs=[correct],
        processing_class=tokenizer,
        tools=[multiply],
        callbacks=[stop, *callbacks],
    )
    stop.started = time.perf_counter()
    history = trainer.train()
    grpo_s = time.perf_counter() - stop.started
    after = greedy_accuracy(model, tokenizer, held_out)
    return {
        "accuracy_before": before["accuracy"],
        "calls_right_before": before["calls_right"],
        "accuracy_after": after["accuracy"],
        "calls_right_after": after["calls_right"],
        "steps": len(history),
        "warm_up_s": warm_s,
        "grpo_s": grpo_s,
        "evaluations": stop.evaluations,
        "history": history,
    }
