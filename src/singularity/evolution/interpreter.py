"""The fast evaluator: a batch of token programs becomes one instruction list over a shared
DAG, run by a single numba call with the backtest fused in.

Planning (Python, per batch): every subtree is hash-consed to a canonical node id (operands of
commutative operators sorted), so identical subtrees across the batch are computed once. Each
unique node gets an instruction; a tree's root is followed by a BACKTEST instruction that
scores it. Rows of one float32 work buffer are recycled as soon as a value has no consumer
left. Feature leaves are rows of the same buffer and are never copied per tree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numba import njit, types
from numba.typed import Dict

from singularity.evolution._numba_cache import refresh_stale_cache

refresh_stale_cache()  # before the first cached function loads (see _numba_cache)

from singularity.evolution import kernels as K  # noqa: E402
from singularity.evolution import primitives as P  # noqa: E402
from singularity.evolution.fitness import (  # noqa: E402
    M_FITNESS,
    N_METRICS,
    WORST,
    positions,
    score_positions,
)
from singularity.evolution.program import Program, pack  # noqa: E402

_ARITY = np.zeros(256, dtype=np.int64)
for _op in P.OPS:
    _ARITY[_op.opcode] = len(_op.args)
_COMMUTATIVE = {op.opcode for op in P.OPS if op.commutative}


@dataclass(frozen=True)
class Plan:
    op: np.ndarray  # int32
    arg: np.ndarray  # int32: window/lag, or the tree index of a BACKTEST
    val: np.ndarray  # float64: constant value
    a: np.ndarray  # int32 (n, 3): operand rows
    out: np.ndarray  # int32: output row
    n_rows: int
    n_trees: int
    n_nodes: int
    """Unique nodes computed (instructions other than BACKTEST)."""


def plan(programs: Sequence[Program], n_features: int, *, share: bool = True) -> Plan:
    """Instruction list for ``programs``; ``share=False`` evaluates every node of every tree
    (the cache-free path the tests compare against)."""
    code, vals, offsets = pack(programs)
    return plan_packed(code, vals, offsets, n_features, share=share)


def plan_packed(
    code: np.ndarray, vals: np.ndarray, offsets: np.ndarray, n_features: int, *, share: bool = True
) -> Plan:
    bits = vals.astype(np.float32).view(np.int32).astype(np.int64)
    n_op, n_arg, n_val, n_kids, n_nodes, roots = _hash_cons(
        code.astype(np.int64), bits, vals.astype(np.float64), offsets.astype(np.int64),
        n_features, share, _ARITY, _COMM,
    )
    op, arg, val, a, out, n_rows = _schedule(
        n_features, n_op[:n_nodes], n_arg[:n_nodes], n_val[:n_nodes], n_kids[:n_nodes], roots
    )
    return Plan(op, arg, val, a, out, int(n_rows), len(roots), int(n_nodes))


POSITIONS_KEPT_BYTES = 64 << 20
"""Memory for the position series a process keeps with their figures (ScoredPositions)."""
_COMM = np.zeros(256, dtype=np.bool_)
for _c in _COMMUTATIVE:
    _COMM[_c] = True
_KEY = types.UniTuple(types.int64, 5)


@njit(cache=True, nogil=True)
def _hash_cons(
    code: np.ndarray,
    bits: np.ndarray,
    vals: np.ndarray,
    offsets: np.ndarray,
    nf: int,
    share: bool,
    arity: np.ndarray,
    commutative: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, np.ndarray]:
    """Unique nodes of all trees (DAG): features are ids 0..nf-1, computed nodes follow.
    Window/lag leaves fold into their operator's argument; commutative operands are sorted."""
    total = code.shape[0]
    n_trees = offsets.shape[0] - 1
    node_op = np.empty(total, dtype=np.int32)
    node_arg = np.zeros(total, dtype=np.int32)
    node_val = np.zeros(total, dtype=np.float64)
    node_kids = np.full((total, 3), -1, dtype=np.int64)
    roots = np.empty(n_trees, dtype=np.int64)
    ids = Dict.empty(key_type=_KEY, value_type=types.int64)
    stack = np.empty(total + 1, dtype=np.int64)
    n_nodes = 0
    for t in range(n_trees):
        sp = 0
        for i in range(offsets[t + 1] - 1, offsets[t] - 1, -1):  # prefix backwards = postfix
            c = code[i]
            op = c & 0xFF
            if op == P.FEAT or op == P.REGF:  # input columns (a regime column is one too)
                stack[sp] = c >> 8
                sp += 1
                continue
            if op == P.WIN or op == P.LAGN:
                stack[sp] = -(c >> 8) - 1  # marker: a folded window/lag length
                sp += 1
                continue
            arg = 0
            k0 = -1
            k1 = -1
            k2 = -1
            if op == P.CONST:
                key = (np.int64(op), bits[i], np.int64(-1), np.int64(-1), np.int64(-1))
            else:
                k = arity[op]
                kids = np.full(3, -1, dtype=np.int64)
                for j in range(k):
                    sp -= 1
                    kids[j] = stack[sp]
                if k > 0 and kids[k - 1] < 0:
                    arg = -kids[k - 1] - 1
                    kids[k - 1] = -1
                    k -= 1
                if commutative[op] and k == 2 and kids[0] > kids[1]:
                    kids[0], kids[1] = kids[1], kids[0]
                k0, k1, k2 = kids[0], kids[1], kids[2]
                key = (np.int64(op) | (np.int64(arg) << 8), k0, k1, k2, np.int64(-1))
            if not share:
                key = (np.int64(-1), np.int64(t), np.int64(i), np.int64(-1), np.int64(-1))
            nid = ids.get(key, -1)
            if nid < 0:
                nid = nf + n_nodes
                ids[key] = nid
                node_op[n_nodes] = op
                node_arg[n_nodes] = arg
                node_val[n_nodes] = vals[i] if op == P.CONST else 0.0
                node_kids[n_nodes, 0] = k0
                node_kids[n_nodes, 1] = k1
                node_kids[n_nodes, 2] = k2
                n_nodes += 1
            stack[sp] = nid
            sp += 1
        roots[t] = stack[sp - 1]
    return node_op, node_arg, node_val, node_kids, n_nodes, roots


@njit(cache=True, nogil=True)
def _schedule(
    nf: int,
    node_op: np.ndarray,
    node_arg: np.ndarray,
    node_val: np.ndarray,
    node_kids: np.ndarray,
    roots: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Instructions in tree order (post-order per tree, each unique node once, a BACKTEST after
    each root) with buffer rows recycled once a value has no consumer left."""
    n_nodes = node_op.shape[0]
    n_trees = roots.shape[0]
    uses = np.zeros(nf + n_nodes, dtype=np.int64)
    for i in range(n_nodes):
        for s in range(3):
            if node_kids[i, s] >= 0:
                uses[node_kids[i, s]] += 1
    for t in range(n_trees):
        uses[roots[t]] += 1
    n_ins = n_nodes + n_trees
    ins_op = np.empty(n_ins, dtype=np.int32)
    ins_arg = np.zeros(n_ins, dtype=np.int32)
    ins_val = np.zeros(n_ins, dtype=np.float64)
    ins_a = np.zeros((n_ins, 3), dtype=np.int32)
    ins_out = np.zeros(n_ins, dtype=np.int32)
    row_of = np.full(nf + n_nodes, -1, dtype=np.int64)
    for f in range(nf):
        row_of[f] = f
    done = np.zeros(n_nodes, dtype=np.bool_)
    free = np.empty(n_nodes + 1, dtype=np.int64)
    n_free = 0
    n_rows = nf
    todo = np.empty(3 * n_nodes + 1, dtype=np.int64)  # a path, <= 3 pending kids per level
    j = 0
    for t in range(n_trees):
        top = 0
        todo[0] = roots[t]
        top = 1
        while top > 0:  # iterative post-order over nodes not computed yet
            x = todo[top - 1]
            if x < nf or done[x - nf]:
                top -= 1
                continue
            pushed = False
            for s in range(2, -1, -1):
                kid = node_kids[x - nf, s]
                if kid >= nf and not done[kid - nf]:
                    todo[top] = kid
                    top += 1
                    pushed = True
            if pushed:
                continue
            top -= 1
            i = x - nf
            done[i] = True
            if n_free > 0:
                n_free -= 1
                row = free[n_free]
            else:
                row = n_rows
                n_rows += 1
            row_of[x] = row
            ins_op[j] = node_op[i]
            ins_arg[j] = node_arg[i]
            ins_val[j] = node_val[i]
            ins_out[j] = row
            for s in range(3):
                kid = node_kids[i, s]
                if kid >= 0:
                    ins_a[j, s] = row_of[kid]
            for s in range(3):
                kid = node_kids[i, s]
                if kid >= 0:
                    uses[kid] -= 1
                    if uses[kid] == 0 and kid >= nf:
                        free[n_free] = row_of[kid]
                        n_free += 1
            j += 1
        r = roots[t]
        ins_op[j] = P.BACKTEST
        ins_arg[j] = t
        ins_a[j, 0] = row_of[r]
        uses[r] -= 1
        if uses[r] == 0 and r >= nf:
            free[n_free] = row_of[r]
            n_free += 1
        j += 1
    return ins_op, ins_arg, ins_val, ins_a, ins_out, n_rows


class ScoredPositions:
    """Position series already scored on one market and scoring setup, with their figures
    (``run_plan`` reads and extends it): at most ``POSITIONS_KEPT_BYTES`` of positions; when
    a batch might not fit, the store starts afresh."""

    def __init__(self, n_bars: int, entries: int | None = None) -> None:
        nw = (n_bars + 31) // 32  # 2 bits a bar, in 64-bit words
        most = max(1, POSITIONS_KEPT_BYTES // (8 * nw))
        cap = most if entries is None else max(1, min(entries, most))
        self.kept = np.empty((cap, nw), dtype=np.uint64)
        self.metrics = np.empty((cap, N_METRICS))
        self.next = np.empty(cap, dtype=np.int64)
        self.count = np.zeros(1, dtype=np.int64)
        self.heads = Dict.empty(key_type=types.uint64, value_type=types.int64)

    def room_for(self, trees: int) -> None:
        """Start afresh unless ``trees`` more fit (a batch can always be deduplicated)."""
        if self.count[0] + trees > self.kept.shape[0] and self.count[0] > 0:
            self.count[0] = 0
            self.heads = Dict.empty(key_type=types.uint64, value_type=types.int64)


@njit(cache=True, nogil=True)
def run_plan(
    features: np.ndarray,
    open_: np.ndarray,
    close: np.ndarray,
    ins_op: np.ndarray,
    ins_arg: np.ndarray,
    ins_val: np.ndarray,
    ins_a: np.ndarray,
    ins_out: np.ndarray,
    n_rows: int,
    n_trees: int,
    cost_rate: float,
    fill_on_open: bool,
    long_only: bool,
    periods_per_year: float,
    objective: int,
    min_trades: int,
    dd_limit: float,
    keep_outputs: bool,
    short_rate: float,
    kept: np.ndarray,
    kept_metrics: np.ndarray,
    kept_next: np.ndarray,
    heads: Dict,  # type: ignore[type-arg]
    n_kept: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Run the instructions; returns (metrics [n_trees, N_METRICS], outputs [n_trees, n] or
    an empty array unless ``keep_outputs``). ``kept``..``n_kept``: a ``ScoredPositions``
    store (read and extended)."""
    nf, n = features.shape
    buf = np.empty((n_rows, n), dtype=np.float32)
    buf[:nf] = features
    metrics = np.zeros((n_trees, N_METRICS))
    outputs = np.empty((n_trees if keep_outputs else 0, n), dtype=np.float32)
    r = np.empty(n)  # per-bar returns of the tree being scored (reused)
    nw = kept.shape[1]
    w8 = np.zeros(32 * nw, dtype=np.int8)  # positions, one per bar (>= n)
    w = np.zeros(nw, dtype=np.uint64)  # the same, 2 bits a bar (-1, 0, 1 -> 3, 0, 1)
    cap = kept.shape[0]
    for j in range(ins_op.shape[0]):
        op = ins_op[j]
        if op == P.BACKTEST:
            ti = ins_arg[j]
            row = buf[ins_a[j, 0]]
            if keep_outputs:
                outputs[ti] = row
            m = metrics[ti]
            # Trees that differ often ask for the same positions (a sign-preserving
            # wrapper, another route to one signal) and the figures depend on the output
            # only through them (score_positions): positions scored before, in this batch or
            # an earlier one on the same data, are looked up (2 bits a bar, hashed as 64-bit
            # words, compared in full on a hash match: exact).
            if not positions(row, long_only, w8):
                m[:] = 0.0
                m[M_FITNESS] = WORST
                continue
            h = np.uint64(14695981039346656037)
            for k in range(nw):
                v = np.uint64(0)
                for b in range(32):
                    v |= np.uint64(w8[32 * k + b] & 3) << np.uint64(2 * b)
                w[k] = v
                h = (h ^ v) * np.uint64(1099511628211)
            e = heads[h] if h in heads else np.int64(-1)
            while e >= 0:
                same = True
                for k in range(nw):
                    if kept[e, k] != w[k]:
                        same = False
                        break
                if same:
                    break
                e = kept_next[e]
            if e >= 0:
                m[:] = kept_metrics[e]
                continue
            score_positions(w8, n, open_, close, r, cost_rate, fill_on_open, periods_per_year,
                            objective, min_trades, dd_limit, m, short_rate)
            k = n_kept[0]
            if k < cap:
                kept[k] = w
                kept_metrics[k] = m
                kept_next[k] = heads[h] if h in heads else np.int64(-1)
                heads[h] = k
                n_kept[0] = k + 1
        else:
            K.apply(op, ins_arg[j], ins_val[j], buf[ins_a[j, 0]], buf[ins_a[j, 1]],
                    buf[ins_a[j, 2]], buf[ins_out[j]])
    return metrics, outputs
