"""Time rlgrad's and TRL's GRPOTrainer with tools on ``grpo-demo --tools``'s task, interleaved.

    python benchmarks/vs_trl_tools.py [--seeds 3] [--first-seed 0] [--target 0.9]
                                      [--max-steps 1500] [--eval-every 25] [--out results.json]

The task is ``rlgrad.lm.tool_demo``'s: a tiny GPT-2 learns to call ``multiply(a, b)`` with the two
numbers of a prompt ``"47*85="`` and to copy the tool's result into its answer. For each seed
this script builds the model, runs the format warm-up once and saves it (``save_pretrained``:
the same starting point for both libraries), then runs rlgrad and TRL, the order alternating
from seed to seed (A, B, B, A, ...), each in a fresh subprocess with one torch thread
(``--worker LIBRARY SEED CHECKPOINT``, printing one JSON line).

Both get the demo's hyperparameters: 8 prompts × 8 rollouts per step, at most 24 completion
tokens (the model's and the tool's), one round of tool calls, temperature 1, ε = 0.2, a plain k3
KL to the warm-up model with β = 0.2 (TRL's ``use_bias_correction_kl`` off), one iteration per
batch, token-mean loss (TRL's ``dapo``), group scaling, gradient clipping at 1, the same rewards
(``correct`` and ``digits``) and the same optimizer type and schedule (rlgrad's AdamW and warm-up,
handed to TRL through ``optimizers=``). TRL runs in float32 without gradient checkpointing and
without vLLM. The model has 64 positions instead of the demo's 48 (see :data:`POSITIONS`).
TRL needs a parser for the model's tool calls: it knows the response formats of a list of
released chat templates and refuses others, so the demo's tokenizer gets a
``response_template`` (transformers' response parsing) that describes its template:
the turn after the last ``a:``, calls between ``<tool_call>`` and ``</tool_call>`` as JSON, the
text up to EOS as content.

The clock counts training only: every ``eval_every`` steps, with the clock paused, greedy
accuracy on the demo's 200 held-out prompts (rlgrad's rollout function, the same for both), and
the run stops at the first accuracy ≥ target. Reported per library: seconds and steps to the
target (+inf when never reached) and the median seconds per step (after the first 5).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vs_trl  # (the clock lives there)

LIBRARIES = ("rlgrad", "trl")
# TRL generates each turn after a tool message with the whole max_completion_length as its budget
# and cuts the completion afterwards, so its contexts reach 13 (prompt) + 15 (call and tool
# message) + 24 positions; the demo's model has 48, which TRL runs past (an IndexError in the
# position embedding). Both libraries get the same model with 64.
POSITIONS = 64
# what a response parser needs to read the demo template's assistant turn (TRL parses with it)
RESPONSE_TEMPLATE = {
    "defaults": {"role": "assistant"},
    "start_anchor": "a:",
    "fields": {
        "tool_calls": {
            "open": "<tool_call>",
            "close_pattern": r"</tool_call>",
            "repeats": True,
            "content": "json",
            "transform": {"type": "function", "function": "{content}"},
        },
        "content": {"close_pattern": r"<eos>", "content": "text"},
    },
}


def tool_clock(target: float, eval_every: int, held_out: list[dict]) -> vs_trl.Clock:
    """vs_trl's clock (training and per-step seconds, evaluations left out), held to the tool
    task's greedy accuracy on the held-out prompts."""
    from rlgrad.lm import tool_demo

    def accuracy(model, tokenizer) -> float:
        return tool_demo.greedy_accuracy(model, tokenizer, held_out)["accuracy"]

    return vs_trl.Clock(target, eval_every, accuracy)


def shared_config(seed: int, args):
    from rlgrad.lm import tool_demo

    return tool_demo.demo_config(seed=seed, max_steps=args.max_steps)


def trl_config(ours):
    """TRL's GRPOConfig with the hyperparameters of rlgrad's ``ours``."""
    from trl import GRPOConfig

    return GRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="vs_trl_tools_"),  # nothing is written there
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        use_vllm=False,
        seed=ours.seed,
        max_steps=ours.max_steps,
        per_device_train_batch_size=ours.prompts_per_step * ours.num_generations,
        gradient_accumulation_steps=1,
        num_generations=ours.num_generations,
        max_completion_length=ours.max_completion_length,
        max_tool_calling_iterations=ours.max_tool_calling_iterations,
        temperature=ours.temperature,
        top_p=ours.top_p,
        top_k=0,
        learning_rate=ours.learning_rate,
        max_grad_norm=ours.max_grad_norm,
        beta=ours.beta,
        use_bias_correction_kl=False,
        epsilon=ours.epsilon,
        num_iterations=ours.num_iterations,
        loss_type="dapo",
        scale_rewards=ours.scale_rewards,
        eval_strategy="no",
        logging_steps=10**9,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
    )


def load(checkpoint: str):
    from transformers import GPT2LMHeadModel

    from rlgrad.lm import tool_demo

    return GPT2LMHeadModel.from_pretrained(checkpoint), tool_demo.build_tokenizer()


def run_rlgrad(checkpoint: str, seed: int, args) -> dict:
    from rlgrad.lm import tool_demo
    from rlgrad.lm.grpo import GRPOTrainer

    model, tokenizer = load(checkpoint)
    train_rows, held_out = tool_demo.split()
    clock = tool_clock(args.target, args.eval_every, held_out)

    class Timing:
        def on_step_end(self, train_args, state, control, **kwargs):
            if clock.step_done(state.global_step, model, tokenizer):
                control.should_training_stop = True

    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[tool_demo.correct, tool_demo.digits],
        args=shared_config(seed, args),
        train_dataset=train_rows,
        processing_class=tokenizer,
        tools=[tool_demo.multiply],
        callbacks=[Timing()],
    )
    clock.start()
    history = trainer.train()
    calls = [row["tools/call_frequency"] for row in history]
    return {**clock.result(), "call_frequency": statistics.mean(calls)}


def run_trl(checkpoint: str, seed: int, args) -> dict:
    import datasets
    from transformers import TrainerCallback
    from trl import GRPOTrainer

    from rlgrad.lm import tool_demo
    from rlgrad.lm.grpo import make_optimizer

    model, tokenizer = load(checkpoint)
    tokenizer.response_template = RESPONSE_TEMPLATE
    train_rows, held_out = tool_demo.split()
    clock = tool_clock(args.target, args.eval_every, held_out)

    calls: list[float] = []

    class Timing(TrainerCallback):
        def on_train_begin(self, train_args, state, control, **kwargs):
            clock.start()

        def on_step_end(self, train_args, state, control, **kwargs):
            # TRL's per-step metrics (its own, private), read before a log clears them
            calls.append(trainer._metrics["train"]["tools/call_frequency"][-1])
            if clock.step_done(state.global_step, model, tokenizer):
                control.should_training_stop = True

    ours = shared_config(seed, args)
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[tool_demo.correct, tool_demo.digits],
        args=trl_config(ours),
        train_dataset=datasets.Dataset.from_list(train_rows),
        processing_class=tokenizer,
        tools=[tool_demo.multiply],
        callbacks=[Timing()],
        optimizers=make_optimizer(model, ours),
    )
    trainer.train()
    return {**clock.result(), "call_frequency": statistics.mean(calls)}


def warm_checkpoint(seed: int, directory: Path) -> dict:
    from rlgrad.lm import tool_demo

    torch.set_num_threads(1)
    tokenizer = tool_demo.build_tokenizer()
    model = tool_demo.build_model(tokenizer, seed, positions=POSITIONS)
    train_rows, held_out = tool_demo.split()
    tool_demo.warm_up(model, tokenizer, train_rows, seed=seed)
    model.save_pretrained(directory)
    return tool_demo.greedy_accuracy(model, tokenizer, held_out)


def spawn(library: str, seed: int, checkpoint: Path, args) -> dict:
    command = [sys.executable, __file__, "--worker", library, str(seed), str(checkpoint)]
    command += ["--target", str(args.target), "--max-steps", str(args.max_steps)]
    command += ["--eval-every", str(args.eval_every)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:], "wall_s": 0.0}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {**result, "wall_s": time.perf_counter() - started}


def worker(library: str, seed: int, checkpoint: str, args) -> None:
    torch.set_num_threads(1)
    import transformers

    transformers.logging.set_verbosity_error()
    run = run_rlgrad if library == "rlgrad" else run_trl
    print(json.dumps(run(checkpoint, seed, args)))


def seconds(result: dict) -> float:
    return math.inf if result.get("solved_s") is None else result["solved_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--target", type=float, default=0.9)
    parser.add_argument("--max-steps", type=int, default=1500)
    parser.add_argument("--eval-every", type=int, default=25)
    parser.add_argument("--out", default=None)
    parser.add_argument("--worker", nargs=3, metavar=("LIBRARY", "SEED", "CHECKPOINT"))
    args = parser.parse_args()
    if args.worker:
        library, seed, checkpoint = args.worker
        worker(library, int(seed), checkpoint, args)
        return
    import transformers
    import trl

    results = {
        "versions": {
            "trl": trl.__version__,
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "seeds": {},
    }
    for index, seed in enumerate(range(args.first_seed, args.first_seed + args.seeds)):
        with tempfile.TemporaryDirectory() as directory:
            warm = warm_checkpoint(seed, Path(directory))
            order = LIBRARIES if index % 2 == 0 else LIBRARIES[::-1]
            runs = {}
            for library in order:
                load = os.getloadavg()[0]
                runs[library] = {**spawn(library, seed, Path(directory), args), "load": load}
        results["seeds"][seed] = {"warm_up": warm, "order": list(order), **runs}
        line = [f"seed {seed}:"]
        for library in LIBRARIES:
            run = runs[library]
            if "error" in run:
                line.append(f"{library} failed: {run['error']}")
                continue
            line.append(
                f"{library} {seconds(run):.1f} s / {run['solved_step']} steps to "
                f"{args.target}, {1000 * run['step_s_median']:.1f} ms/step, "
                f"{run['call_frequency']:.2f} calls/rollout (load {run['load']:.1f})"
            )
        print(" | ".join(line), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
