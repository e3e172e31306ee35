"""xoshiro256** in numba: a per-simulator random stream with explicit state.

numba's own np.random keeps one hidden global state per thread, so two books in one process
would share it and lose determinism; this state is a uint64[4] array owned by its simulator,
seeded from the caller's ``np.random.Generator``.

Exponential draws use the ziggurat method (Marsaglia & Tsang 2000): 256 strips of equal
area cover the density; one 64-bit draw picks a strip and a point in it, and ~99% of draws
land inside the strip's rectangle under the curve and cost a multiply and a compare, no log.
The rest fall back to the exact wedge test or to the memoryless tail, so the draws are exact.
"""

import math

import numpy as np

from trendgym.envs.lob.kernels import inline_kernel

_U64 = np.uint64
_TWO53 = 9007199254740992.0


def seed_state(rng: np.random.Generator) -> np.ndarray:
    """A fresh xoshiro state drawn from `rng` (never all zero)."""
    state = rng.bit_generator.random_raw(4).astype(np.uint64)
    if not state.any():
        state[0] = 0x9E3779B97F4A7C15
    return state


@inline_kernel
def _rotl(x, k):
    return (x << _U64(k)) | (x >> _U64(64 - k))


@inline_kernel
def next_u64_nb(s):
    """Next 64 random bits; advances `s` in place."""
    result = _rotl(s[1] * _U64(5), 7) * _U64(9)
    t = s[1] << _U64(17)
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = _rotl(s[3], 45)
    return result


@inline_kernel
def unit_nb(bits):
    """A float64 uniform on [0, 1) from the top 53 of 64 random bits."""
    # through int64: the 53-bit value converts exactly, and signed conversion is one instruction
    return float(np.int64(bits >> _U64(11))) * (1.0 / _TWO53)


@inline_kernel
def uniform_nb(s):
    """A float64 uniform on [0, 1) from the stream's next 64 bits."""
    return unit_nb(next_u64_nb(s))


def ziggurat_tables(n: int = 256) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """(r, x, k, w) of an `n`-strip ziggurat for exp(-x): x[0] is the base strip's width
    (its rectangle plus the tail beyond r = x[1] has the common area v), x[i+1] < x[i] the
    strip edges up to x[n] = 0; k[i] = 2^53 x[i+1]/x[i] (a draw below it is under the curve)
    and w[i] = x[i] / 2^53 scale a 53-bit draw into strip i."""

    def edges(r: float) -> tuple[list[float] | None, float]:
        v = (r + 1.0) * math.exp(-r)  # r f(r) + tail area
        x = [v / math.exp(-r), r]
        for _ in range(n - 2):
            y = math.exp(-x[-1]) + v / x[-1]
            if y >= 1.0:  # strips too wide: the top is passed early
                return None, v
            x.append(-math.log(y))
        return x, v

    def excess(r: float) -> float:
        x, v = edges(r)
        return math.inf if x is None else math.exp(-x[-1]) + v / x[-1] - 1.0

    lo, hi = 6.0, 9.0  # excess(r) falls from > 0 to < 0 across the root (r ~ 7.697 for 256)
    while hi - lo > 1e-15 * hi:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if excess(mid) > 0 else (lo, mid)
    r = min((lo, hi), key=lambda c: abs(excess(c)))
    x = np.array([*edges(r)[0], 0.0])
    k = np.floor(_TWO53 * x[1:] / x[:-1]).astype(np.int64)
    return r, x, k, x[:-1] / _TWO53


_ZIG_R, _ZIG_X, _ZIG_K, _ZIG_W = ziggurat_tables()
_ZIG_F = np.exp(-_ZIG_X)  # density at each edge; _ZIG_F[256] = 1


@inline_kernel
def exponential_nb(s):
    """A unit-rate exponential draw (ziggurat; exact)."""
    offset = 0.0
    while True:
        bits = next_u64_nb(s)
        i = np.int64(bits & _U64(255))
        m = np.int64(bits >> _U64(11))  # 53 bits, disjoint from the strip's 8
        x = float(m) * _ZIG_W[i]
        if m < _ZIG_K[i]:  # inside the rectangle under the curve
            return offset + x
        if i == 0:  # the tail beyond r: r plus a fresh exponential (memoryless)
            offset += _ZIG_R
        elif _ZIG_F[i] + uniform_nb(s) * (_ZIG_F[i + 1] - _ZIG_F[i]) < np.exp(-x):
            return offset + x  # a wedge point under the curve
