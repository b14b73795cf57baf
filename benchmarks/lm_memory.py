"""Peak memory and step time of GRPO on a small GPT-2: full fine-tuning, LoRA, LoRA + checkpointing.

    python benchmarks/lm_memory.py [--steps 4] [--repeats 2] [--layers 4] [--width 256]
                                   [--prompts 8] [--completion-length 48] [--threads 1]

The model is a GPT-2 of a few million parameters built from a config (the demo's character
tokenizer, fresh weights, nothing downloaded), trained with ``rlgrad.lm.grpo.GRPOTrainer`` on the
demo's addition prompts with β > 0, so full fine-tuning keeps its frozen reference copy and LoRA
switches its adapters off instead. The learning rate is 0, so that completion lengths (the
workload) stay those of the starting model in every variant and step. Each variant runs in a
fresh process (a process's peak RSS only grows), the variants interleaved and their order
rotated each repeat. The table gives, per variant, the medians over repeats of the peak RSS
(``resource.getrusage`` ``ru_maxrss``) and of its growth during training (over the peak before
the first step: Python, torch, the model), and the median step time over all steps (sampling,
scoring and the update). The model state column is counted from the tensors themselves.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

from rlgrad.lm.demo import LORA  # r = 8 on every one of GPT-2's Conv1D projections

VARIANTS = {
    "full fine-tuning": dict(lora=False, gradient_checkpointing=False),
    "LoRA": dict(lora=True, gradient_checkpointing=False),
    "LoRA + gradient checkpointing": dict(lora=True, gradient_checkpointing=True),
}


def build_model(
    tokenizer, layers: int = 4, width: int = 256, completion_length: int = 48, seed: int = 0
):
    """The benchmark's GPT-2: the demo's architecture, larger, with GPT-2's own initialization
    (std 0.02) from ``seed``, no dropout, positions for the demo's 4-token prompts and
    ``completion_length`` new tokens. Also used by ``benchmarks/vs_trl.py --lora``."""
    from rlgrad.lm import demo

    return demo.build_model(
        tokenizer, seed, width, layers, init_std=0.02, positions=8 + completion_length
    )


def peak_rss_mib() -> float:
    """This process's peak resident set size (Linux reports kibibytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def model_state_mib(grpo) -> float:
    """What training keeps besides activations: the weights, their gradients, the optimizer's
    moments and the frozen reference copy (full fine-tuning with β > 0), in MiB."""
    import torch

    tensors = list(grpo.model.parameters())
    tensors += [p.grad for p in grpo.model.parameters() if p.grad is not None]
    tensors += [v for state in grpo.optimizer.state.values() for v in state.values()]
    if grpo.ref_model is not None:
        tensors += list(grpo.ref_model.parameters())
    return sum(t.numel() * t.element_size() for t in tensors if torch.is_tensor(t)) / 2**20


def run_variant(name: str, args: argparse.Namespace) -> dict:
    """Train one variant for ``args.steps`` steps in this process; its memory and times."""
    import torch
    import transformers

    from rlgrad.lm import demo
    from rlgrad.lm.grpo import GRPOConfig, GRPOTrainer

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    variant = VARIANTS[name]
    tokenizer = demo.build_tokenizer()
    model = build_model(tokenizer, args.layers, args.width, args.completion_length)
    parameters = sum(p.numel() for p in model.parameters())
    peft_config = None
    if variant["lora"]:
        from peft import LoraConfig

        peft_config = LoraConfig(**LORA, task_type="CAUSAL_LM")
    config = GRPOConfig(
        max_steps=args.steps,
        prompts_per_step=args.prompts,
        num_generations=8,
        max_completion_length=args.completion_length,
        # every pass and optimizer step runs, but the policy stays put: the variants and steps
        # all sample from one distribution (a trained policy soon stops after a token or two)
        learning_rate=0.0,
        beta=0.04,
        gradient_checkpointing=variant["gradient_checkpointing"],
        logging_steps=0,
    )
    rewards = [demo.correct, demo.format_reward]
    grpo = GRPOTrainer(
        model=model,
        reward_funcs=rewards,
        args=config,
        train_dataset=demo.dataset(),
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    trained = sum(p.numel() for p in grpo.model.parameters() if p.requires_grad)
    before = peak_rss_mib()
    started = time.perf_counter()
    history = grpo.train()
    return {
        "parameters": parameters,
        "trained": trained,
        "peak_rss_mib": peak_rss_mib(),
        "growth_mib": peak_rss_mib() - before,
        "state_mib": model_state_mib(grpo),
        "step_s": [row["step_time"] for row in history],
        "tokens": statistics.mean(row["completions/mean_length"] for row in history),
        "train_s": time.perf_counter() - started,
    }


def in_subprocess(name: str, args: argparse.Namespace) -> dict:
    options = [f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items() if k != "child"]
    command = [sys.executable, __file__, "--child", name, *options]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(results: dict[str, list[dict]]) -> str:
    lines = [
        "| variant | trained parameters | weights, gradients, Adam, reference (MiB) "
        "| peak RSS (MiB) | growth in training (MiB) | step time (s) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, runs in results.items():
        first = runs[0]
        trained = f"{first['trained']:,} of {first['parameters']:,}"
        peak = statistics.median(run["peak_rss_mib"] for run in runs)
        growth = statistics.median(run["growth_mib"] for run in runs)
        step = statistics.median(s for run in runs for s in run["step_s"])
        state = first["state_mib"]
        lines.append(
            f"| {name} | {trained} | {state:.1f} | {peak:.0f} | {growth:.0f} | {step:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=4, help="GRPO steps per run")
    parser.add_argument("--repeats", type=int, default=2, help="runs per variant")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--prompts", type=int, default=8, help="prompts per step (G = 8 each)")
    parser.add_argument("--completion-length", type=int, default=48)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(run_variant(args.child, args)))
        return
    names = list(VARIANTS)
    results: dict[str, list[dict]] = {name: [] for name in names}
    for repeat in range(args.repeats):
        for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
            result = in_subprocess(name, args)
            results[name].append(result)
            print(
                f"repeat {repeat + 1}, {name}: peak {result['peak_rss_mib']:.0f} MiB, "
                f"{statistics.median(result['step_s']):.2f} s a step, "
                f"{result['tokens']:.1f} completion tokens on average",
                file=sys.stderr,
                flush=True,
            )
    print(
        f"GPT-2, {args.layers} layers × {args.width}, {8 * args.prompts} completions of up to "
        f"{args.completion_length} tokens a step, β = 0.04, learning rate 0, {args.steps} steps × "
        f"{args.repeats} runs, {args.threads} thread(s)\n"
    )
    print(table(results))


if __name__ == "__main__":
    main()
