"""``rlgrad grpo-demo --tools``: two-digit multiplication that a tiny GPT-2 solves only by calling
its ``multiply`` tool and copying the result (rlgrad.lm.tool_demo)."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

from rlgrad.app.cli import main  # noqa: E402
from rlgrad.lm import sampling, tool_demo  # noqa: E402


def rollouts_after_warm_up(rows, seed: int = 0):
    torch.set_num_threads(1)
    tokenizer = tool_demo.build_tokenizer()
    model = tool_demo.build_model(tokenizer, seed, positions=48)
    tool_demo.warm_up(model, tokenizer, tool_demo.split()[0], seed=seed)
    return model, tokenizer


def test_a_call_is_seven_tokens_of_which_four_are_the_digits_the_model_chooses():
    tokenizer = tool_demo.build_tokenizer()
    prompt = [{"role": "user", "content": "47*85="}]
    ids, mask = tool_demo.conversation_ids(tokenizer, prompt, 40, 50, "1234")
    tokens = tokenizer.convert_ids_to_tokens(ids)
    # "multiply", "|", "u", ":", "4", "7", "*", "8", "5", "=", "|", "a", ":" (13 prompt tokens)
    assert tokens[:13] == ["multiply", "|", "u", ":", "4", "7", "*", "8", "5", "=", "|", "a", ":"]
    call = [tool_demo.CALL_OPEN, "4", "0", tool_demo.CALL_MIDDLE, "5", "0", tool_demo.CALL_CLOSE]
    assert tokens[13:21] == [*call, "<eos>"]
    # the tool's message is the product of the call's operands, 40 × 50 = 2000, then "a:"
    tool = ["<tool_response>", "2", "0", "0", "0", "</tool_response>", "a", ":"]
    assert tokens[21:29] == tool
    assert tokens[29:] == ["1", "2", "3", "4", "<eos>"]
    # the warm-up's loss sees the call with its EOS (7 + 1) and the answer with its EOS (4 + 1)
    assert mask == [0] * 13 + [1] * 8 + [0] * 8 + [1] * 5


def test_rewards_by_hand():
    def completion(a, b, answer):
        call = {"type": "function", "function": {"name": "multiply", "arguments": {"a": a, "b": b}}}
        return [
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "name": "multiply", "content": str(a * b)},
            {"role": "assistant", "content": answer},
        ]

    completions = [
        completion(47, 85, "3995"),  # right call, the tool's answer copied: the task
        completion(47, 80, "3799"),  # 3 of 4 call digits; answer 2 of 47·80 = 3760's 4 digits
        completion(47, 80, "3760"),  # the tool's (wrong) answer copied: no task reward
        [{"role": "assistant", "content": "3995"}],  # the product without the tool: right
    ]
    a, b, answer = [47] * 4, [85] * 4, ["3995"] * 4
    assert tool_demo.correct(None, completions, answer) == [1.0, 0.0, 0.0, 1.0]
    # 0.25 × call digits right / 4 + 0.25 × answer digits equal to the tool's / 4
    expected = [0.25 + 0.25, 0.25 * 3 / 4 + 0.25 * 2 / 4, 0.25 * 3 / 4 + 0.25, 0.0]
    assert tool_demo.digits(None, completions, a, b) == pytest.approx(expected, abs=1e-12)


def test_the_held_out_prompts_are_never_trained_on_and_every_product_has_four_digits():
    train_rows, held_out = tool_demo.split()
    assert len(held_out) == tool_demo.HELD_OUT == 200
    assert len(train_rows) + len(held_out) == 68 * 68
    prompts = {row["prompt"][0]["content"] for row in train_rows}
    assert not prompts & {row["prompt"][0]["content"] for row in held_out}
    assert {len(row["answer"]) for row in train_rows + held_out} == {4}


def test_the_warm_up_teaches_the_format_not_the_task():
    # the warm-up's calls have random operands and its answers random digits: after it, greedy
    # rollouts call the tool in the right form on every held-out prompt, get its result as the
    # tool message, and answer with four digits, but neither the call nor the answer is right
    _, held_out = tool_demo.split()
    model, tokenizer = rollouts_after_warm_up(held_out)
    _, rollouts = sampling.generate_with_tools(
        model,
        tokenizer,
        [row["prompt"] for row in held_out],
        [{"multiply": tool_demo.multiply}] * len(held_out),
        tool_demo.schemas(),
        max_new_tokens=tool_demo.MAX_COMPLETION_LENGTH,
        max_iterations=1,
        greedy=True,
    )
    for rollout in rollouts:
        assert rollout.tool_calls == 1 and rollout.failed_calls == 0
        call, tool, answer = rollout.messages
        arguments = call["tool_calls"][0]["function"]["arguments"]
        assert tool["content"] == str(arguments["a"] * arguments["b"])  # the tool's own answer
        assert len(answer["content"]) == 4 and answer["content"].isdigit()
    measured = tool_demo.greedy_accuracy(model, tokenizer, held_out)
    # measured on seed 0: 0.0 and 0.0 (a guessed product is right with probability 1/9000)
    assert measured["accuracy"] <= 0.2
    assert measured["calls_right"] <= 0.2


@pytest.mark.parametrize(
    "argv, message",
    [
        (["grpo-demo", "--tools", "--seconds", "0"], "--seconds must be positive; got 0.0"),
    ],
)
def test_bad_input_to_the_tool_demo_is_one_line(argv, message, capsys):
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err and "\n" not in err


def test_the_cli_runs_the_tool_demo(capsys):
    # two GRPO steps at most (a second's budget): the command's wiring, not the learning
    assert main(["grpo-demo", "--tools", "--seconds", "0.01", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "grpo-demo --tools (seed 0)" in out
    assert "0.00 after the format warm-up" in out


@pytest.mark.slow
def test_grpo_raises_the_tool_demos_digit_reward():
    # held-out seed 0 (the settings were chosen on seeds 1000 and 1001). The demo's goal, 0.9
    # accuracy, is not met on held-out seeds (BENCHMARKS.md: seed 0 gets every call right but
    # only 0.33 of the answers after 3,000 steps), and 3,000 steps take 7 minutes here; 400 steps
    # (about 60 s) show the learning: the per-digit reward (at most 0.5) averaged 0.105 over the
    # first 50 steps and 0.173 over steps 351-400 when measured (1.66x; 1.47x at 300 steps, 2.06x
    # at 600; the learning-rate schedule is constant, so a shorter run is the longer one's start)
    learned = tool_demo.run(seed=0, max_steps=400)
    digits = [row["rewards/digits/mean"] for row in learned["history"]]
    first, last = sum(digits[:50]) / 50, sum(digits[-50:]) / 50
    assert learned["accuracy_before"] <= 0.2
    assert last >= 1.4 * first, (first, last)
