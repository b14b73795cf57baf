"""A/B: a trainer's training time under two rlgrad source trees, interleaved, several seeds.

    python benchmarks/train_time_ab.py OTHER_TREE [--algorithm ppo] [--env CartPole-v1]
                                       [--seeds 100-109] [--repeats 1]

Checks that a change to the formula layer (a new GAE kernel, say) leaves training time alone.
``OTHER_TREE`` is a checkout of another commit (``git worktree add /tmp/old REV``); this tree is
the one the script lives in. For each seed, this tree's preset trains once under each tree (its
fields are handed to the other tree's ``Config``, so a preset retuned since does not count), in
fresh subprocesses run from a neutral directory with the tree first on ``PYTHONPATH``, in
alternating order (A, B, then B, A for the next seed). The measure is the run's own training
clock (``train_s``: collection and updates, evaluation excluded); the summary is the median of
the per-seed ratios, with their range. Runs with the same seed produce the same metrics when the
change is numerically exact, which the script checks too.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

THIS_TREE = Path(__file__).resolve().parents[1]
TRAIN = """
import dataclasses, json, sys
try:
    from rlgrad.app.registry import module
except ImportError:  # a tree from before the registry moved to the app layer
    from rlgrad.trainers import module
algorithm, run_dir, fields = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
Config = module(algorithm).Config
known = {f.name for f in dataclasses.fields(Config)}  # an older tree may lack a newer field
config = Config(**{k: v for k, v in fields.items() if k in known})
history = module(algorithm).train(config, run_dir)
rows = [{k: v for k, v in r.items() if k not in ("wall_s", "train_s", "sps")} for r in history.rows]
print(json.dumps({"train_s": history.summary["train_s"], "rows": rows}, default=str))
"""


def preset_fields(algorithm: str, env: str, seed: int) -> str:
    """This tree's preset for (algorithm, env) at ``seed``, as the JSON of its config's fields."""
    from rlgrad.app.presets import preset_config
    from rlgrad.support import configs

    return json.dumps(configs.to_dict(preset_config(algorithm, env, seed=seed)))


def train(tree: Path, algorithm: str, fields: str, work: Path) -> dict:
    run_dir = work / f"{tree.name}-{len(list(work.iterdir()))}"
    done = subprocess.run(
        [sys.executable, "-c", TRAIN, algorithm, str(run_dir), fields],
        cwd=work,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other_tree", type=Path)
    parser.add_argument("--algorithm", default="ppo")
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--seeds", default="100-109")
    parser.add_argument("--repeats", type=int, default=1, help="runs per seed and tree")
    args = parser.parse_args()
    first, _, last = args.seeds.partition("-")
    seeds = range(int(first), int(last or first) + 1)
    trees = {"this": THIS_TREE, "other": args.other_tree.resolve()}
    ratios, identical = [], True
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        for i, seed in enumerate(seeds):
            order = ["this", "other"] if i % 2 == 0 else ["other", "this"]
            times = {name: [] for name in trees}
            fields = preset_fields(args.algorithm, args.env, seed)
            for _ in range(args.repeats):
                for name in order:
                    result = train(trees[name], args.algorithm, fields, work)
                    times[name].append(result["train_s"])
                    rows = result["rows"]
                    if name == order[0]:
                        first_rows = rows
                    elif rows != first_rows:
                        identical = False
            ratio = statistics.median(times["this"]) / statistics.median(times["other"])
            ratios.append(ratio)
            print(
                f"seed {seed}: this {statistics.median(times['this']):.2f} s, other "
                f"{statistics.median(times['other']):.2f} s, this / other = {ratio:.3f}",
                flush=True,
            )
    print(
        f"\n{args.algorithm} {args.env}, seeds {args.seeds}: training time this / other, median "
        f"{statistics.median(ratios):.3f} (range {min(ratios):.3f}–{max(ratios):.3f}); metrics "
        f"{'identical' if identical else 'DIFFER'} between the trees"
    )


if __name__ == "__main__":
    main()
