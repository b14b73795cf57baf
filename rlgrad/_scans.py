"""The compiled (numba) reverse-time scans behind ``rlgrad._kernels``: GAE and discounted returns.

Imported only when a scan first runs (importing numba costs ~0.5 s). Everything numba compiles
lives in this one file because numba's on-disk cache is keyed on the file that defines a kernel:
an intrinsic kept elsewhere could change without invalidating the cached machine code.

The kernels take the addresses of C-contiguous ``[T, N]`` tensors (``Tensor.data_ptr()``) and
view them as arrays with ``rows``; flags are bool tensors read as ``uint8`` 0/1 and used
arithmetically, so the inner loops have no branch. The last argument, ``like``, is a zero of the
data's NumPy dtype: it selects the compiled version, and γ and λ (Python floats, which numba types
faster than NumPy scalars) are cast to its precision, so float32 stays in single precision. Each
kernel returns whether every output is finite.

**Why GAE is built one cache line at a time.** With the rollout in memory (the usual case: its
buffers were written once, long before GAE reads them) a plain vectorized loop runs at ~1.5× the
memory floor, for two reasons that a loop written in numba cannot address
(``benchmarks/probes/gae_streaming.py`` measured both in C first):

* ordinary stores read every output line from memory before overwriting it; streaming
  (non-temporal) stores skip that read;
* the scan walks time backwards, so each row of each input starts on a new 4 KiB page where the
  hardware prefetcher stops; a prefetch of row t−1 issued while row t is computed hides that.

Both must sit inside the vector loop, one per cache line, which numba exposes only through
``@intrinsic``: ``gae_line`` builds one line of GAE in LLVM IR. x86 gets streaming stores, other
machines the same code with ordinary stores. The discounted-returns scan is a plain numba loop.
"""

from __future__ import annotations

import functools
import platform

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

_OPTIONS = {"cache": True, "boundscheck": False, "fastmath": {"contract"}}

LINE_BYTES = 64
STREAMING = platform.machine().lower() in ("x86_64", "amd64")
_I32 = ir.IntType(32)


def _element_bytes(context, array_type) -> int:
    return context.get_abi_sizeof(context.get_data_type(array_type.dtype))


@intrinsic
def line_elements(typingctx, array):
    """How many elements of ``array``'s dtype fill one 64-byte cache line (a constant)."""

    def codegen(context, builder, signature, args):
        return context.get_constant(types.intp, LINE_BYTES // _element_bytes(context, array))

    return types.intp(array), codegen


@intrinsic
def elements_before_line(typingctx, array, row):
    """Elements of ``array[row]`` (C-contiguous 2-D) before its first cache-line boundary."""

    def codegen(context, builder, signature, args):
        data = context.make_array(array)(context, builder, args[0])
        columns = builder.extract_value(data.shape, 1)
        intp = columns.type
        start = builder.ptrtoint(builder.gep(data.data, [builder.mul(args[1], columns)]), intp)
        line = intp(LINE_BYTES)
        gap = builder.urem(builder.sub(line, builder.urem(start, line)), line)
        return builder.udiv(gap, intp(_element_bytes(context, array)))

    return types.intp(array, row), codegen


@intrinsic
def pointer_to(typingctx, address, like):
    """``address`` (an integer, e.g. ``Tensor.data_ptr()``) as a pointer to ``like``'s type."""
    target = types.CPointer(like)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(target))

    return target(address, like), codegen


@intrinsic
def store_fence(typingctx):
    """Order the streaming stores before anything that follows (they bypass the caches)."""

    def codegen(context, builder, signature, args):
        if STREAMING:
            signature = ir.FunctionType(ir.VoidType(), [])
            sfence = cgutils.get_or_insert_function(
                builder.module, signature, "llvm.x86.sse.sfence"
            )
            builder.call(sfence, [])
        return context.get_dummy_value()

    return types.void(), codegen


def _splat(builder, vector_type, scalar):
    lanes = vector_type.count
    undefined = ir.Constant(vector_type, ir.Undefined)
    single = builder.insert_element(undefined, scalar, _I32(0))
    first_lane = ir.Constant(ir.VectorType(_I32, lanes), [0] * lanes)
    return builder.shuffle_vector(single, undefined, first_lane)


def _prefetch(builder, pointer):
    byte_pointer = ir.IntType(8).as_pointer()
    signature = ir.FunctionType(ir.VoidType(), [byte_pointer, _I32, _I32, _I32])
    prefetch = cgutils.get_or_insert_function(builder.module, signature, "llvm.prefetch.p0i8")
    # read, moderate temporal locality (L2 and up), data cache
    builder.call(prefetch, [builder.bitcast(pointer, byte_pointer), _I32(0), _I32(2), _I32(1)])


def _gae_line(streaming: bool):
    """``gae_line`` with ordinary or streaming stores: a compile-time choice, because LLVM merges
    the two stores of a runtime branch into one and drops the streaming hint."""
    return intrinsic(functools.partial(_typed_gae_line, streaming))


def _typed_gae_line(
    streaming,
    typingctx,
    rewards,
    values,
    next_values,
    terminated,
    truncated,
    gamma,
    trace,
    later,
    out,
    row,
    column,
):
    """One cache line of GAE: ``out[row, column : column + W]`` with W = ``line_elements(out)``.

    Computes

        A_t = r_t + γ(1 − term_t)V(s_{t+1}) − V(s_t) + γλ(1 − term_t)(1 − trunc_t)·A_{t+1},

    the same expression, in the same order, as ``gae_step`` below. A_{t+1} is
    read from ``later[column:]``, and A_t written there and to ``out``; ``trace`` is γλ. The
    flags are uint8 0/1. ``out[row, column]`` must start a cache line; ``gae_line_streamed``
    writes it with a streaming store (x86). Row ``row − 1`` of every input is prefetched. Returns
    whether all W advantages are finite (``(a − a) == 0`` fails only for NaN and ±inf).
    """
    arguments = (rewards, values, next_values, terminated, truncated, gamma, trace, later, out)
    arguments += (row, column)

    def codegen(context, builder, signature, args):
        inputs = [
            context.make_array(ty)(context, builder, v)
            for ty, v in zip(arguments[:5], args[:5], strict=True)
        ]
        gamma, trace = args[5:7]
        later = context.make_array(arguments[7])(context, builder, args[7])
        out = context.make_array(arguments[8])(context, builder, args[8])
        row, column = args[9:11]
        columns = builder.extract_value(out.shape, 1)
        index = builder.add(builder.mul(row, columns), column)

        scalar = context.get_data_type(rewards.dtype)
        size = _element_bytes(context, rewards)
        lanes = LINE_BYTES // size
        floats, flags = ir.VectorType(scalar, lanes), ir.VectorType(ir.IntType(8), lanes)

        def element(array, at):
            return builder.gep(array.data, [at])

        def line(array, at, vector_type=floats):
            return builder.bitcast(element(array, at), vector_type.as_pointer())

        with builder.if_then(builder.icmp_signed(">", row, row.type(0)), likely=True):
            earlier = builder.sub(index, columns)
            for array in inputs[:3]:
                _prefetch(builder, element(array, earlier))
            # A flag line covers 64 columns: one prefetch per 64 columns is enough.
            starts_flag_line = builder.icmp_unsigned(
                "==", builder.urem(column, column.type(LINE_BYTES)), column.type(0)
            )
            with builder.if_then(starts_flag_line):
                for array in inputs[3:]:
                    _prefetch(builder, element(array, earlier))

        rewards_, values, next_values = (
            builder.load(line(array, index), align=size) for array in inputs[:3]
        )
        terminated, truncated = (
            builder.uitofp(builder.load(line(a, index, flags), align=1), floats) for a in inputs[3:]
        )
        advantages_later = builder.load(line(later, column), align=size)

        # FMA contraction allowed, as in the numba kernels; no reassociation.
        def add(x, y):
            return builder.fadd(x, y, flags=("contract",))

        def sub(x, y):
            return builder.fsub(x, y, flags=("contract",))

        def mul(x, y):
            return builder.fmul(x, y, flags=("contract",))

        one = _splat(builder, floats, ir.Constant(scalar, 1.0))
        alive = sub(one, terminated)
        continues = mul(mul(_splat(builder, floats, trace), alive), sub(one, truncated))
        bootstrap = mul(_splat(builder, floats, gamma), alive)
        delta = sub(add(rewards_, mul(bootstrap, next_values)), values)
        advantages = add(delta, mul(continues, advantages_later))

        builder.store(advantages, line(later, column), align=size)
        store = builder.store(advantages, line(out, index), align=LINE_BYTES)
        if streaming:
            store.set_metadata("nontemporal", builder.module.add_metadata([_I32(1)]))

        finite = builder.fcmp_ordered("==", sub(advantages, advantages), ir.Constant(floats, None))
        every = ir.IntType(lanes)(2**lanes - 1)
        return builder.icmp_unsigned("==", builder.bitcast(finite, ir.IntType(lanes)), every)

    return types.boolean(*arguments), codegen


gae_line = _gae_line(streaming=False)
gae_line_streamed = _gae_line(streaming=STREAMING)


# The kernels.

_FLAG = np.uint8(0)  # the element type of the flags, for rows()


@numba.njit(**_OPTIONS)
def rows(address, steps, batch, like):
    """The C-contiguous ``[steps, batch]`` array of ``like``'s type at ``address``."""
    return numba.carray(pointer_to(address, like), (steps, batch))


@numba.njit(**_OPTIONS)
def gae_step(rewards, values, next_values, terminated, truncated, gamma, trace, later, out, t, b):
    """One element of GAE, for the columns before and after the whole cache lines of a row."""
    one = rewards.dtype.type(1.0)
    alive = one - terminated[t, b]
    continues = trace * alive * (one - truncated[t, b])
    advantage = (
        rewards[t, b] + gamma * alive * next_values[t, b] - values[t, b] + continues * later[b]
    )
    later[b] = advantage
    out[t, b] = advantage
    return (advantage - advantage) == rewards.dtype.type(0.0)


@numba.njit(**_OPTIONS)
def gae_scan(
    rewards_at, values_at, next_values_at, terminated_at, truncated_at, out_at,
    steps, batch, gamma_float, lam_float, stream, like,
):  # fmt: skip
    rewards = rows(rewards_at, steps, batch, like)
    values = rows(values_at, steps, batch, like)
    next_values = rows(next_values_at, steps, batch, like)
    terminated = rows(terminated_at, steps, batch, _FLAG)
    truncated = rows(truncated_at, steps, batch, _FLAG)
    out = rows(out_at, steps, batch, like)
    gamma = rewards.dtype.type(gamma_float)
    trace = gamma * rewards.dtype.type(lam_float)
    width = line_elements(out)
    # A_{t+1} for the row being computed; a private row stays in L1 while `out` streams.
    later = np.zeros(batch, dtype=rewards.dtype)  # A_T = 0: the last step is A = δ
    inputs = (rewards, values, next_values, terminated, truncated, gamma, trace, later, out)
    finite = True
    for t in range(steps - 1, -1, -1):
        first_line = min(elements_before_line(out, t), batch)
        for b in range(first_line):
            finite &= gae_step(*inputs, t, b)
        b = first_line
        while b + width <= batch:
            if stream:
                finite &= gae_line_streamed(*inputs, t, b)
            else:
                finite &= gae_line(*inputs, t, b)
            b += width
        while b < batch:
            finite &= gae_step(*inputs, t, b)
            b += 1
    store_fence()
    return finite


@numba.njit(**_OPTIONS)
def return_row(rewards, terminated, truncated, bootstrap, gamma, later, here):
    one = rewards.dtype.type(1.0)
    zero = rewards.dtype.type(0.0)
    finite = True
    for b in range(rewards.shape[0]):
        cut = truncated[b]
        future = cut * bootstrap[b] + (one - cut) * later[b]
        value = rewards[b] + gamma * (one - terminated[b]) * future
        here[b] = value
        finite &= (value - value) == zero
    return finite


@numba.njit(**_OPTIONS)
def return_scan(
    rewards_at, bootstrap_at, terminated_at, truncated_at, out_at, steps, batch, gamma_float, like
):
    rewards = rows(rewards_at, steps, batch, like)
    bootstrap = rows(bootstrap_at, steps, batch, like)
    terminated = rows(terminated_at, steps, batch, _FLAG)
    truncated = rows(truncated_at, steps, batch, _FLAG)
    out = rows(out_at, steps, batch, like)
    gamma = rewards.dtype.type(gamma_float)
    finite = True
    for t in range(steps - 1, -1, -1):
        # After the last step the rollout is cut: the future is the bootstrap itself.
        later = bootstrap[t] if t == steps - 1 else out[t + 1]
        finite &= return_row(
            rewards[t], terminated[t], truncated[t], bootstrap[t], gamma, later, out[t]
        )
    return finite
