"""``rlgrad grpo-demo --tools``: two-digit multiplication that a tiny GPT-2 solves only by calling
its ``multiply`` tool and copying the result (rlgrad.lm.tool_demo)."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

from rlgrad.app.cli import main  # noqa: E402
from rlgrad.errors import BadInputError  # noqa: E402
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


def test_the_warm_up_teaches_the_format_and_the_relay_not_the_call():
    # the warm-up's calls have random operands and its answers copy the tool's message: after
    # it, greedy rollouts call the tool in the right form on every held-out prompt, get its
    # result as the tool message and answer with four digits, mostly the tool's, but the calls
    # do not have the prompt's numbers, so the answers are not the products
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
    relayed = 0
    for rollout in rollouts:
        assert rollout.tool_calls == 1 and rollout.failed_calls == 0
        call, tool, answer = rollout.messages
        arguments = call["tool_calls"][0]["function"]["arguments"]
        assert tool["content"] == str(arguments["a"] * arguments["b"])  # the tool's own answer
        assert len(answer["content"]) == 4 and answer["content"].isdigit()
        relayed += answer["content"] == tool["content"]
    # measured: 200 of 200 answers repeat the tool's message on seed 0 (196 and 200 on seeds 1, 2)
    assert relayed >= 180
    measured = tool_demo.greedy_accuracy(model, tokenizer, held_out)
    # measured on seed 0: 0.0 and 0.0 (a guessed product is right with probability 1/9000)
    assert measured["accuracy"] <= 0.2
    assert measured["calls_right"] <= 0.2


def test_the_warm_up_refuses_an_unknown_kind_of_answer():
    with pytest.raises(
        BadInputError, match="warm_up: answers must be 'copy' or 'random'; got 'tool'"
    ):
        tool_demo.warm_up(None, None, [], answers="tool")


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
    assert "0.00 after the warm-up" in out


@pytest.mark.slow
def test_grpo_teaches_the_tool_demo_to_call_with_the_prompts_numbers():
    # held-out seed 3 (the settings were chosen on seeds 1000 and 1001; seeds 0 and 1 showed the
    # old warm-up's failure): measured, greedy accuracy 0.0 after the warm-up and 1.0 at the
    # evaluation of step 125 (15 s of GRPO); BENCHMARKS.md has 20 seeds
    learned = tool_demo.run(seed=3, max_steps=600)
    assert learned["accuracy_before"] <= 0.2
    assert learned["calls_right_before"] <= 0.2
    assert learned["accuracy_after"] >= 0.9
    assert learned["calls_right_after"] >= 0.9
    assert learned["steps"] < 600  # stopped at the target, not at the step budget
