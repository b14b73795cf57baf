"""Probe: where streaming stores start to pay for ``rlgrad.gae``, counting the caller's next read.

    python benchmarks/probes/gae_stores.py [--repeats 40]

Streaming (non-temporal) stores skip reading each output line before overwriting it, but they
leave the output in memory rather than in cache, so whoever reads the advantages next pays for
it. ``rlgrad._kernels.STREAM_BYTES`` decides from which output size ``gae`` streams. This probe
times ``gae`` with streaming forced on and off, alone and followed by ``advantages + values``
(what PPO computes next), for several float32 sizes in the cache states of
``benchmarks/gae.py``, interleaved, with the order rotated each repeat. It only means something on
x86, where the streaming stores exist.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from gae import GAMMA, LAM, PREPARE, make_case, rotated_medians

import rlgrad
from rlgrad import _kernels

SIZES = [(128, 256), (256, 256), (512, 256), (2048, 64), (256, 1024), (1024, 1024)]


def contender(case, stream_bytes: int, then_read: bool):
    def run() -> None:
        _kernels.STREAM_BYTES = stream_bytes
        advantages = rlgrad.gae(*case, GAMMA, LAM)
        if then_read:
            advantages.add(case[1])

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(1)
    default = _kernels.STREAM_BYTES
    print(f"median ms over {args.repeats} repeats; STREAM_BYTES today = {default} bytes")
    print(
        f"{'case [T, B]':>14} {'KiB out':>8} {'caches':>7} {'cached':>8} {'cached+read':>12} "
        f"{'streamed':>9} {'streamed+read':>14}"
    )
    for steps, batch in SIZES:
        case = make_case(steps, batch)
        contenders = {
            (stores, read): contender(case, stream_bytes, read)
            for stores, stream_bytes in (("cached", 2**62), ("streamed", 0))
            for read in (False, True)
        }
        medians = rotated_medians(contenders, args.repeats)
        for state in PREPARE:
            times = " ".join(
                f"{medians[state, name] * 1e3:{width}.3f}"
                for name, width in zip(contenders, (8, 12, 9, 14), strict=True)
            )
            print(f"{f'[{steps}, {batch}]':>14} {steps * batch * 4 // 1024:8d} {state:>7} {times}")
    _kernels.STREAM_BYTES = default


if __name__ == "__main__":
    main()
