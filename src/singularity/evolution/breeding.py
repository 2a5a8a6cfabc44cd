"""Compiled breeding of the children that need no DEAP tree: reproduction and crossover.

``variation.make_child`` seeds Python's ``random.Random`` with the child's seed and draws
tournaments, the operator and the crossover points from it. Here the same Mersenne Twister
(CPython's seeding of an int, ``init_by_array``, and its ``random()``: 53 bits from two
32-bit outputs) runs in numba, so those children come out of one compiled loop with exactly
the draws, and so exactly the tokens, that ``make_child`` gives. Mutations edit DEAP trees
(typed generators, ephemeral constants): those children are only flagged here and built by
``make_child`` itself, from the same seed.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from singularity.evolution import token_ops as T

_N = 624
_M = 397
_MASK32 = np.uint64(0xFFFFFFFF)

COPY = 0
"""The child is an unchanged copy of individual ``src``."""
NEW = 1
"""The child is a new program (the next one of the returned packed arrays)."""
MUTATE = 2
"""The child is a mutation: build it with ``make_child`` from its seed."""


def _genrand_init() -> np.ndarray:
    """``init_genrand(19650218)``, where every int seeding starts: the same for every seed."""
    mt = np.empty(_N, dtype=np.uint64)
    mt[0] = 19650218
    for i in range(1, _N):
        prev = int(mt[i - 1])
        mt[i] = (1812433253 * (prev ^ (prev >> 30)) + i) & 0xFFFFFFFF
    return mt


_INIT = _genrand_init()


@njit(cache=True, nogil=True)
def _seed_mt(mt: np.ndarray, seed: np.uint64) -> None:
    """CPython's ``random.seed(int)``: init_by_array over the 32-bit words of |seed|."""
    key = np.empty(2, dtype=np.uint64)
    key[0] = seed & _MASK32
    key[1] = seed >> np.uint64(32)
    keylen = 2 if key[1] else 1
    mt[:] = _INIT
    i = 1
    j = 0
    for _ in range(max(_N, keylen)):
        prev = mt[i - 1]
        mt[i] = ((mt[i] ^ ((prev ^ (prev >> np.uint64(30))) * np.uint64(1664525)))
                 + key[j] + np.uint64(j)) & _MASK32
        i += 1
        j += 1
        if i >= _N:
            mt[0] = mt[_N - 1]
            i = 1
        if j >= keylen:
            j = 0
    for _ in range(_N - 1):
        prev = mt[i - 1]
        mt[i] = ((mt[i] ^ ((prev ^ (prev >> np.uint64(30))) * np.uint64(1566083941)))
                 - np.uint64(i)) & _MASK32
        i += 1
        if i >= _N:
            mt[0] = mt[_N - 1]
            i = 1
    mt[0] = np.uint64(0x80000000)


@njit(cache=True, nogil=True)
def _twist_word(mt: np.ndarray, kk: int) -> None:
    """Word ``kk`` of the twist, in place. Done in ascending order (one word as it is first
    needed: a child uses a few dozen of the 624), it reads old words above kk and new
    words below, as the whole-array twist does."""
    y = (mt[kk] & np.uint64(0x80000000)) | (mt[kk + 1 if kk < _N - 1 else 0] & np.uint64(0x7FFFFFFF))
    v = mt[kk + _M if kk < _N - _M else kk + _M - _N] ^ (y >> np.uint64(1))
    if y & np.uint64(1):
        v ^= np.uint64(0x9908B0DF)
    mt[kk] = v


@njit(cache=True, nogil=True)
def _next32(mt: np.ndarray, state: np.ndarray) -> np.uint64:
    """Next 32-bit output; ``state[0]`` is the index into ``mt`` (624: a twist is due)."""
    i = state[0]
    if i >= _N:
        i = 0
    _twist_word(mt, i)
    state[0] = i + 1
    y = mt[i]
    y ^= y >> np.uint64(11)
    y ^= (y << np.uint64(7)) & np.uint64(0x9D2C5680)
    y ^= (y << np.uint64(15)) & np.uint64(0xEFC60000)
    y ^= y >> np.uint64(18)
    return y & _MASK32


@njit(cache=True, nogil=True)
def _random(mt: np.ndarray, state: np.ndarray) -> float:
    """``random.random()``: 53 random bits as a float in [0, 1)."""
    a = _next32(mt, state) >> np.uint64(5)
    b = _next32(mt, state) >> np.uint64(6)
    return (float(a) * 67108864.0 + float(b)) * (1.0 / 9007199254740992.0)


@njit(cache=True, nogil=True)
def random_sequence(seed: int, n: int) -> np.ndarray:
    """The first ``n`` draws of ``random.Random(seed).random()`` (tests compare them)."""
    mt = np.empty(_N, dtype=np.uint64)
    state = np.full(1, _N, dtype=np.int64)
    _seed_mt(mt, np.uint64(seed))
    out = np.empty(n)
    for k in range(n):
        out[k] = _random(mt, state)
    return out


@njit(cache=True, nogil=True)
def _tournament(
    mt: np.ndarray, state: np.ndarray, fitness: np.ndarray, lo: int, hi: int, k: int
) -> int:
    best = -1
    span = hi - lo
    for _ in range(k):
        i = lo + int(_random(mt, state) * span)
        if best < 0 or fitness[i] > fitness[best] or (fitness[i] == fitness[best] and i < best):
            best = i
    return best


@njit(cache=True, nogil=True)
def _copy(
    out_code: np.ndarray, out_vals: np.ndarray, p: int,
    code: np.ndarray, vals: np.ndarray, a: int, b: int,
) -> int:
    """Tokens [a, b) of (code, vals) written at ``p`` of the outputs; returns the end."""
    for k in range(a, b):
        out_code[p] = code[k]
        out_vals[p] = vals[k]
        p += 1
    return p


@njit(cache=True, nogil=True)
def breed_tokens(
    code: np.ndarray,
    vals: np.ndarray,
    offs: np.ndarray,
    fitness: np.ndarray,
    seeds: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    crossover_prob: float,
    mutation_prob: float,
    tournament_size: int,
    max_height: int,
    max_size: int,
    arity: np.ndarray,
    ret: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per child: (kind, src) with kind COPY/NEW/MUTATE (src: the copied individual), and
    the NEW children's programs packed (code, vals, offsets) in order."""
    n = seeds.shape[0]
    kind = np.empty(n, dtype=np.int64)
    src = np.full(n, -1, dtype=np.int64)
    longest = 0
    for i in range(offs.shape[0] - 1):
        longest = max(longest, offs[i + 1] - offs[i])
    cap = n * 2 * longest + 1
    out_code = np.empty(cap, dtype=code.dtype)
    out_vals = np.empty(cap, dtype=vals.dtype)
    out_offs = np.zeros(n + 1, dtype=np.int64)
    n_new = 0
    mt = np.empty(_N, dtype=np.uint64)
    state = np.empty(1, dtype=np.int64)
    for j in range(n):
        _seed_mt(mt, np.uint64(seeds[j]))
        state[0] = _N
        p1 = _tournament(mt, state, fitness, lo[j], hi[j], tournament_size)
        r = _random(mt, state)
        if r < crossover_prob:
            p2 = _tournament(mt, state, fitness, lo[j], hi[j], tournament_size)
            a1, b1 = offs[p1], offs[p1 + 1]
            a2, b2 = offs[p2], offs[p2 + 1]
            c1 = code[a1:b1]
            c2 = code[a2:b2]
            start = out_offs[n_new]
            size = b1 - a1
            i1 = -1
            i2 = -1
            if b1 - a1 >= 2 and b2 - a2 >= 2:
                r_type = _random(mt, state)
                r1 = _random(mt, state)
                r2 = _random(mt, state)
                i1, i2 = T.crossover_points(c1, c2, r_type, r1, r2, ret)
            if i1 < 0:  # no crossover possible: the child is p1's program
                _copy(out_code, out_vals, start, code, vals, a1, b1)
            else:
                e1 = T.subtree_end(c1, i1, arity)
                e2 = T.subtree_end(c2, i2, arity)
                p = _copy(out_code, out_vals, start, code, vals, a1, a1 + i1)
                p = _copy(out_code, out_vals, p, code, vals, a2 + i2, a2 + e2)
                p = _copy(out_code, out_vals, p, code, vals, a1 + e1, b1)
                size = p - start
            child = out_code[start : start + size]
            too_high = size > max_height + 1 and T.token_height(child, arity) > max_height
            if too_high or size > max_size:
                kind[j] = COPY  # DEAP's staticLimit: keep the parent
                src[j] = p1
            else:
                kind[j] = NEW
                out_offs[n_new + 1] = start + size
                n_new += 1
        elif r < crossover_prob + mutation_prob:
            kind[j] = MUTATE
        else:
            kind[j] = COPY
            src[j] = p1
    end = out_offs[n_new]
    return kind, src, out_code[:end].copy(), out_vals[:end].copy(), out_offs[: n_new + 1].copy()
