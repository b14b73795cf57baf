"""Reward functions that do not block: ``async def`` rewards are called as TRL calls every reward
(once per batch, with lists) and all the async calls of one scoring round are awaited together,
so that slow verifiers wait at the same time; sync and async mix; an error names its function;
a caller that already runs an event loop (Jupyter) still scores; evaluation goes the same way."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import torch

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

from test_lm_grpo import QUICK  # noqa: E402

from rlgrad.lm import GRPOConfig, GRPOTrainer, data, demo  # noqa: E402
from rlgrad.lm.sampling import reward_scores  # noqa: E402

SLEEP = 0.2  # seconds a verifier takes per completion
# eight completions of two prompts; "3" is right for 1+2=, "7" for 3+4=
ROWS = [{"prompt": "1+2=", "answer": "3"}, {"prompt": "3+4=", "answer": "7"}]
COMPLETIONS = ["3", "4", "3", "", "7", "7", "12", "0"]
IDS = [[5, 1], [6, 1], [5, 1], [1], [9, 1], [9, 1], [3, 4, 1], [2, 1]]
STATE = data.TrainerState(step=0, epoch=0.0)


def score(functions: list) -> torch.Tensor:
    return reward_scores(functions, [None] * len(functions), ROWS, COMPLETIONS, IDS, STATE)


async def verify(completion: str, answer: str) -> float:
    await asyncio.sleep(SLEEP)  # a slow verifier: a sandbox, a remote judge
    return 1.0 if completion == answer else 0.0


async def correct_async(prompts, completions, answer, **kwargs):
    """demo.correct, one verifier call per completion, all at once."""
    return await asyncio.gather(*map(verify, completions, answer))


def one_completion_reward(index: int):
    """An async reward that verifies only completion ``index`` (0 for the others)."""

    async def reward(prompts, completions, answer, **kwargs):
        value = await verify(completions[index], answer[index])
        return [value if i == index else 0.0 for i in range(len(completions))]

    reward.__name__ = f"only_{index}"
    return reward


def test_an_async_reward_equals_its_sync_version_and_its_verifiers_wait_together():
    started = time.perf_counter()
    scores = score([correct_async])
    elapsed = time.perf_counter() - started
    # 1+2=: "3" right twice; 3+4=: "7" right twice
    assert scores[:, 0].tolist() == [1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0]
    torch.testing.assert_close(scores, score([demo.correct]))
    # eight 0.2 s verifications one after another take 1.6 s; together, one sleep
    assert SLEEP <= elapsed < 0.8, elapsed


def test_the_calls_of_eight_async_rewards_are_awaited_together_and_mix_with_sync_ones():
    functions = [one_completion_reward(i) for i in range(8)]
    started = time.perf_counter()
    scores = score([demo.format_reward, *functions, demo.correct])
    elapsed = time.perf_counter() - started
    assert SLEEP <= elapsed < 0.8, elapsed
    right = [1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0]
    assert torch.diagonal(scores[:, 1:9]).tolist() == right  # reward i scored completion i
    assert (scores[:, 1:9].sum(dim=1) == torch.tensor(right)).all()  # and only it
    assert scores[:, 0].tolist() == pytest.approx([0.1, 0.1, 0.1, 0.0, 0.1, 0.1, 0.0, 0.1])
    assert scores[:, 9].tolist() == right


def test_an_async_reward_that_raises_is_named():
    async def flaky(prompts, completions, **kwargs):
        await asyncio.sleep(0)
        raise ConnectionError("the judge is down")

    with pytest.raises(data.RewardFunctionError) as error:
        score([correct_async, flaky])
    assert str(error.value) == "reward function 'flaky' raised ConnectionError: the judge is down"
    assert isinstance(error.value.__cause__, ConnectionError)

    def broken(prompts, completions, **kwargs):  # a sync one is named the same way
        return [1 / 0 for _ in completions]

    with pytest.raises(data.RewardFunctionError, match=r"^reward function 'broken' raised Zero"):
        score([broken])


def test_a_caller_that_runs_an_event_loop_still_scores():
    async def notebook_cell():  # Jupyter runs every cell inside its own running loop
        asyncio.get_running_loop()
        return score([correct_async])

    # the cell's loop runs in a thread of its own: a test run may already have a loop running
    # in the main thread (Playwright's sync API keeps one), and asyncio.run refuses to nest
    result = {}
    cell = threading.Thread(target=lambda: result.update(scores=asyncio.run(notebook_cell())))
    cell.start()
    cell.join()
    scores = result["scores"]
    assert scores[:, 0].tolist() == [1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0]


def trainer(reward, **arguments) -> GRPOTrainer:
    tokenizer = demo.build_tokenizer()
    return GRPOTrainer(
        model=demo.build_model(tokenizer, 0),
        reward_funcs=[reward, demo.format_reward],
        args=GRPOConfig(**{**QUICK, "max_steps": 2, "eval_steps": 2}),
        train_dataset=demo.dataset(),
        eval_dataset=demo.dataset()[:8],
        processing_class=tokenizer,
        **arguments,
    )


async def correct_now(prompts, completions, answer, **kwargs):
    """demo.correct as an async function that does not sleep (a training run stays fast)."""
    await asyncio.sleep(0)
    return demo.correct(prompts, completions, answer)


correct_now.__name__ = "correct"  # its metrics go by the sync function's name


def test_training_and_evaluation_with_async_rewards_equal_the_sync_run():
    def timeless(rows):
        return [{k: v for k, v in r.items() if k not in ("step_time", "eval_time")} for r in rows]

    synced = trainer(demo.correct).train()
    awaited = trainer(correct_now).train()
    assert timeless(awaited) == timeless(synced)
    assert "eval_reward_mean" in awaited[-1]
    # the evaluation's own rewards go through the same path
    synced = trainer(demo.correct, eval_reward_funcs=[demo.correct]).evaluate()
    awaited = trainer(demo.correct, eval_reward_funcs=[correct_now]).evaluate()
    assert awaited["eval_reward_mean"] == synced["eval_reward_mean"]
    assert awaited["eval_rewards/correct/mean"] == synced["eval_rewards/correct/mean"]
