"""Numba versions of the token-program operations that breeding runs for every child
(typed one-point crossover, height): the same draws give the same child as the Python
versions they replace, without a dozen small numpy calls per child."""

from __future__ import annotations

import numpy as np
from numba import njit

from singularity.evolution import primitives as P

ARITY = np.zeros(256, dtype=np.int64)
RET = np.zeros(256, dtype=np.int64)  # type id of each opcode's result: 0 Series, 1 Signal, 2 Window, 3 Lag,
_TYPE_ID = {P.Series: 0, P.Signal: 1, P.Window: 2, P.Lag: 3, P.Regime: 4}  # 4 Regime (last: the
# type-id order of crossover draws is unchanged for programs without regime inputs)
for _op in P.OPS:
    ARITY[_op.opcode] = len(_op.args)
    RET[_op.opcode] = _TYPE_ID[_op.ret]
RET[P.WIN] = 2
RET[P.LAGN] = 3
RET[P.REGF] = 4
N_TYPES = 5


@njit(cache=True, nogil=True)
def subtree_end(code: np.ndarray, i: int, arity: np.ndarray) -> int:
    """End (exclusive) of the subtree starting at token i; -1 if the program is truncated."""
    need = 1
    n = code.shape[0]
    while need:
        if i >= n:
            return -1
        need += arity[code[i] & 0xFF] - 1
        i += 1
    return i


@njit(cache=True, nogil=True)
def token_height(code: np.ndarray, arity: np.ndarray) -> int:
    """Height of a prefix token program (a lone leaf is 0), as DEAP's ``height``."""
    h = 0
    slots = np.empty(code.shape[0] + 1, dtype=np.int64)  # children still expected per open node
    top = 0
    for j in range(code.shape[0]):
        if top > h:
            h = top
        if top > 0:
            slots[top - 1] -= 1
        a = arity[code[j] & 0xFF]
        if a:
            slots[top] = a
            top += 1
        while top > 0 and slots[top - 1] == 0:
            top -= 1
    return h


@njit(cache=True, nogil=True)
def _token_type(c: int, ret: np.ndarray) -> int:
    op = c & 0xFF
    return ret[op] + (1 if (op == P.CONST and (c >> 8) == 1) else 0)  # true/false: Signals


@njit(cache=True, nogil=True)
def crossover_points(
    c1: np.ndarray, c2: np.ndarray, r_type: float, r1: float, r2: float, ret: np.ndarray
) -> tuple[int, int]:
    """Crossover points (i1, i2) for uniform draws in [0, 1): a type among those both
    programs have below the root (in type-id order), then a node of that type in each.
    (-1, -1) when the programs share no type."""
    n1 = c1.shape[0]
    n2 = c2.shape[0]
    cnt1 = np.zeros(N_TYPES, dtype=np.int64)
    cnt2 = np.zeros(N_TYPES, dtype=np.int64)
    for j in range(1, n1):
        cnt1[_token_type(c1[j], ret)] += 1
    for j in range(1, n2):
        cnt2[_token_type(c2[j], ret)] += 1
    common = np.empty(N_TYPES, dtype=np.int64)
    n_common = 0
    for t in range(N_TYPES):
        if cnt1[t] > 0 and cnt2[t] > 0:
            common[n_common] = t
            n_common += 1
    if n_common == 0:
        return -1, -1
    t = common[int(r_type * n_common)]
    k1 = int(r1 * cnt1[t])
    k2 = int(r2 * cnt2[t])
    i1 = -1
    for j in range(1, n1):
        if _token_type(c1[j], ret) == t:
            if k1 == 0:
                i1 = j
                break
            k1 -= 1
    i2 = -1
    for j in range(1, n2):
        if _token_type(c2[j], ret) == t:
            if k2 == 0:
                i2 = j
                break
            k2 -= 1
    return i1, i2
