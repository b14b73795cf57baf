"""Probe: the GAE scan from memory, hand-vectorized in C, against rlgrad.gae and the floor.

    python benchmarks/probes/gae_streaming.py [--repeats 40]

Not part of rlgrad and not run by the tests: it needs gcc and an AVX-512 CPU. It answers one
question about issue 2's cold case: is the gap between ``rlgrad.gae`` and the memory floor the
kernel's technique (ordinary stores, backward walk over 4 KiB rows) or the machine? It builds the
three C kernels of ``gae_streaming.c`` with ``gcc -O3 -march=native``, checks them against
``rlgrad.gae``, and times everything on ``[1024, 1024]`` float32 in the cache states of
``benchmarks/gae.py``, interleaved, with the order rotated each repeat. Every contender allocates
its output, as ``rlgrad.gae`` does. The answer, the technique, is now in ``rlgrad/_scans.py``;
the probe stays as the reference the numba kernel is measured against.
"""

from __future__ import annotations

import argparse
import ctypes
import pathlib
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from gae import GAMMA, LAM, PREPARE, make_case, rotated_medians

import rlgrad

SOURCE = pathlib.Path(__file__).with_suffix(".c")


def build(folder: str) -> ctypes.CDLL:
    library = pathlib.Path(folder) / "gae_streaming.so"
    command = ["gcc", "-O3", "-march=native", "-shared", "-fPIC", str(SOURCE), "-o", str(library)]
    subprocess.run(command, check=True)
    lib = ctypes.CDLL(str(library))
    arrays = [ctypes.c_void_p] * 5
    scalars = [ctypes.c_float, ctypes.c_float, ctypes.c_void_p, ctypes.c_long, ctypes.c_long]
    lib.gae_plain.argtypes = arrays + scalars
    lib.gae_stream.argtypes = lib.gae_stream_pf.argtypes = arrays + scalars + [ctypes.c_void_p]
    return lib


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args()
    cpuinfo = pathlib.Path("/proc/cpuinfo")
    avx512 = cpuinfo.exists() and "avx512f" in cpuinfo.read_text()
    if shutil.which("gcc") is None or not avx512:
        sys.exit("this probe needs gcc and an AVX-512 CPU")
    torch.set_num_threads(1)
    steps, batch = 1024, 1024
    case = make_case(steps, batch)
    pointers = [x.data_ptr() for x in case]
    trace = float(np.float32(GAMMA) * np.float32(LAM))  # the kernel's γλ, rounded as numba does
    later = torch.empty(batch)

    with tempfile.TemporaryDirectory() as folder:
        lib = build(folder)

        def c_kernel(name: str):
            def run() -> torch.Tensor:
                out = torch.empty(steps, batch)
                extra = [later.data_ptr()] if name != "gae_plain" else []
                getattr(lib, name)(*pointers, GAMMA, trace, out.data_ptr(), steps, batch, *extra)
                return out

            return run

        contenders = {
            "floor": lambda: torch.addcmul(case[0], case[1], case[2]),
            "rlgrad.gae": lambda: rlgrad.gae(*case, GAMMA, LAM),
            "C plain": c_kernel("gae_plain"),
            "C stream": c_kernel("gae_stream"),
            "C stream+prefetch": c_kernel("gae_stream_pf"),
        }
        expected = rlgrad.gae(*case, GAMMA, LAM)
        for name in list(contenders)[2:]:
            torch.testing.assert_close(contenders[name](), expected, rtol=1e-5, atol=1e-5)

        medians = rotated_medians(contenders, args.repeats)

    print(f"[{steps}, {batch}] float32, median ms over {args.repeats} repeats")
    print(f"{'':>18} " + " ".join(f"{state:>8}" for state in PREPARE))
    for name in contenders:
        times = (medians[state, name] * 1e3 for state in PREPARE)
        print(f"{name:>18} " + " ".join(f"{t:8.3f}" for t in times))


if __name__ == "__main__":
    main()
