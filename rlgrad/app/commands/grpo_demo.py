"""``rlgrad grpo-demo``: GRPO on a tiny GPT-2 learning addition mod 10 (``--tools``: two-digit
multiplication with a ``multiply`` tool)."""

from __future__ import annotations

import argparse

from rlgrad.app.commands.common import require_extra
from rlgrad.errors import BadInputError


def add_grpo_demo(commands) -> None:
    demo = commands.add_parser(
        "grpo-demo",
        help="GRPO on a tiny GPT-2 learning addition mod 10 (CPU, a minute, no download)",
        description="Warm up a tiny GPT-2 on the answer format, then train it with GRPO on "
        "single-digit addition mod 10; prints greedy accuracy on all 100 prompts before and "
        "after. Needs the lm extra (transformers).",
    )
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--steps", type=int, default=None, help="GRPO steps (default: the demo's)")
    demo.add_argument("--lr", type=float, default=None, help="learning rate (0: a control run)")
    demo.add_argument(
        "--lora",
        action="store_true",
        help="train LoRA adapters (r 8 on every linear layer) instead of all weights; needs the "
        "peft extra",
    )
    demo.add_argument(
        "--tools",
        action="store_true",
        help="the tool task instead: two-digit multiplication, which the model solves only by "
        "calling a multiply tool and copying its result; stops at greedy accuracy 0.9 on 200 "
        "held-out prompts, after 3,000 steps (--steps) or after --seconds",
    )
    demo.add_argument(
        "--seconds",
        type=float,
        default=600.0,
        help="with --tools: the most seconds of GRPO (default 600)",
    )
    demo.add_argument("--output-dir", default=None, help="write checkpoints and metrics here")
    demo.add_argument("--no-progress", dest="progress", action="store_false")
    demo.set_defaults(run=run_grpo_demo)


def run_grpo_demo(args: argparse.Namespace) -> int:
    try:
        import transformers
    except ImportError:
        raise BadInputError("grpo-demo needs transformers: pip install 'rlgrad[lm]'") from None
    from rlgrad.lm import demo

    if args.lora:
        require_extra("peft", "peft", "--lora trains adapters with it")
    if args.tools and args.lora:
        raise BadInputError("grpo-demo: --tools trains all weights; got --tools with --lora")
    if args.seconds <= 0:
        raise BadInputError(f"grpo-demo: --seconds must be positive; got {args.seconds}")
    transformers.logging.set_verbosity_error()
    changes = {"output_dir": args.output_dir}
    if args.steps is not None:
        if args.steps <= 0:
            raise BadInputError(
                f"--steps must be a positive number of GRPO steps; got {args.steps}"
            )
        changes["max_steps"] = args.steps
    if args.lr is not None:
        changes["learning_rate"] = args.lr
    if args.tools:
        return run_tool_demo(args, changes)
    result = demo.run(seed=args.seed, progress=args.progress, lora=args.lora, **changes)
    trained = "LoRA adapters" if args.lora else "all weights"
    print(
        f"grpo-demo (seed {args.seed}, {trained}): greedy accuracy "
        f"{result['accuracy_before']:.2f} after the warm-up ({result['warm_up_s']:.1f} s), "
        f"{result['accuracy_after']:.2f} after {len(result['history'])} GRPO steps "
        f"({result['grpo_s']:.1f} s)"
    )
    return 0


def run_tool_demo(args: argparse.Namespace, changes: dict) -> int:
    from rlgrad.lm import tool_demo

    result = tool_demo.run(seed=args.seed, seconds=args.seconds, progress=args.progress, **changes)
    print(
        f"grpo-demo --tools (seed {args.seed}): greedy accuracy on {tool_demo.HELD_OUT} held-out "
        f"prompts {result['accuracy_before']:.2f} after the warm-up "
        f"({result['warm_up_s']:.1f} s), {result['accuracy_after']:.2f} after "
        f"{result['steps']} GRPO steps ({result['grpo_s']:.1f} s); calls with the prompt's "
        f"numbers {result['calls_right_before']:.2f} -> {result['calls_right_after']:.2f}"
    )
    return 0
