"""xoshiro256** in numba: a per-simulator random stream with explicit state.

numba's own np.random keeps one hidden global state per thread, so two books in one process
would share it and lose determinism; this state is a uint64[4] array owned by its simulator,
seeded from the caller's ``np.random.Generator``.
"""

import numpy as np

from trendgym.envs.lob.kernels import inline_kernel

_U64 = np.uint64


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
def uniform_nb(s):
    """A float64 uniform on [0, 1) from the top 53 bits."""
    return float(next_u64_nb(s) >> _U64(11)) * (1.0 / 9007199254740992.0)


@inline_kernel
def exponential_nb(s):
    """A unit-rate exponential draw."""
    return -np.log(1.0 - uniform_nb(s))
