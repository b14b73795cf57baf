"""``rlgrad grpo-demo``: GRPO on a tiny GPT-2 learning addition mod 10."""

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
    result = demo.run(seed=args.seed, progress=args.progress, lora=args.lora, **changes)
    trained = "LoRA adapters" if args.lora else "all weights"
    print(
        f"grpo-demo (seed {args.seed}, {trained}): greedy accuracy "
        f"{result['accuracy_before']:.2f} after the warm-up ({result['warm_up_s']:.1f} s), "
        f"{result['accuracy_after']:.2f} after {len(result['history'])} GRPO steps "
        f"({result['grpo_s']:.1f} s)"
    )
    return 0
