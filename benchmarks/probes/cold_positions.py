"""Probe: does a call's time from memory depend on its slot in a sequence of cold calls?

    python benchmarks/probes/cold_positions.py [--repeats 40] [--slots 4]

Why ``benchmarks/gae.py`` rotates its contenders. Each repeat has the benchmark's shape: a block
of warm slots (the call right after an untimed call of itself), then a block of cold slots (right
after a cache eviction: a 256 MiB write as in ``benchmarks/gae.py``, or a 30 ms sleep). Every slot
times the same ``rlgrad.gae`` call on ``[1024, 1024]``; the median of each cold slot is printed,
and ``--no-warm`` drops the warm block. A fixed contender order is fair only if they are flat.
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import time

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from gae import GAMMA, LAM, evict_caches, make_case

import rlgrad

EVICTIONS = {"256 MiB write": evict_caches, "30 ms sleep": lambda: time.sleep(0.03)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--no-warm", action="store_true", help="cold slots only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    case = make_case(1024, 1024)

    def call() -> None:
        rlgrad.gae(*case, GAMMA, LAM)

    call()  # compile or load the kernel outside the timing
    samples = {(eviction, slot): [] for eviction in EVICTIONS for slot in range(args.slots)}
    for _ in range(args.repeats):
        for eviction, evict in EVICTIONS.items():
            for _ in range(0 if args.no_warm else args.slots):
                call()  # the warm block's untimed call and its timed one
                call()
            for slot in range(args.slots):
                evict()
                start = time.perf_counter()
                call()
                samples[eviction, slot].append(time.perf_counter() - start)
    block = "cold slots only" if args.no_warm else "cold slots after a warm block"
    print(f"rlgrad.gae on [1024, 1024] float32, {block}, median ms over {args.repeats} repeats")
    for eviction in EVICTIONS:
        medians = (statistics.median(samples[eviction, s]) * 1e3 for s in range(args.slots))
        print(f"{eviction:>14}: " + "  ".join(f"{m:.3f}" for m in medians))


if __name__ == "__main__":
    main()
