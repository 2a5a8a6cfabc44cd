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
from numba import njit

from singularity.evolution import kernels as K
from singularity.evolution import primitives as P
from singularity.evolution.fitness import N_METRICS, score
from singularity.evolution.program import Program

_ARITY = np.zeros(256, dtype=np.int64)
for _op in P.OPS:
    _ARITY[_op.opcode] = len(_op.args)
_ARITY_L = _ARITY.tolist()
_COMMUTATIVE = {op.opcode for op in P.OPS if op.commutative}
_FOLDED = {P.WIN, P.LAGN}


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
    ids: dict[tuple, int] = {}
    node_op: list[int] = []
    node_arg: list[int] = []
    node_val: list[float] = []
    node_kids: list[tuple[int, ...]] = []
    roots: list[int] = []
    # Node ids: features are 0..F-1 (their buffer rows); computed nodes follow.
    for ti, (code, vals) in enumerate(programs):
        stack: list[int] = []
        cl = code.tolist()
        vl = vals.tolist()
        for i in range(len(cl) - 1, -1, -1):  # prefix read backwards = postfix
            c = cl[i]
            op = c & 0xFF
            if op == P.FEAT:
                stack.append(c >> 8)
                continue
            if op in _FOLDED:
                stack.append(-(c >> 8) - 1)  # marker: a folded window/lag length
                continue
            arg = 0
            if op == P.CONST:
                key: tuple = (op, vl[i])
                kids: tuple[int, ...] = ()
            else:
                k = _ARITY_L[op]
                kids_l = [stack.pop() for _ in range(k)]
                if kids_l and kids_l[-1] < 0:
                    arg = -kids_l.pop() - 1
                kids = tuple(sorted(kids_l)) if op in _COMMUTATIVE else tuple(kids_l)
                key = (op, arg, kids)
            if not share:
                key = (ti, i)
            nid = ids.get(key)
            if nid is None:
                nid = n_features + len(node_op)
                ids[key] = nid
                node_op.append(op)
                node_arg.append(arg)
                node_val.append(vl[i] if op == P.CONST else 0.0)
                node_kids.append(kids)
            stack.append(nid)
        roots.append(stack.pop())
    return _schedule(n_features, node_op, node_arg, node_val, node_kids, roots)


def _schedule(
    nf: int,
    node_op: list[int],
    node_arg: list[int],
    node_val: list[float],
    node_kids: list[tuple[int, ...]],
    roots: list[int],
) -> Plan:
    n_nodes = len(node_op)
    # Uses of each value: once per consuming node, once per tree whose root it is.
    uses = [0] * (nf + n_nodes)
    for kids in node_kids:
        for k in kids:
            uses[k] += 1
    for r in roots:
        uses[r] += 1
    order: list[int] = []  # instruction list: node ids, or -(tree+1) for a BACKTEST
    done = [False] * n_nodes
    for ti, r in enumerate(roots):
        todo = [r]
        while todo:  # iterative post-order over nodes not computed yet
            x = todo[-1]
            if x < nf or done[x - nf]:
                todo.pop()
                continue
            pending = [k for k in node_kids[x - nf] if k >= nf and not done[k - nf]]
            if pending:
                todo.extend(reversed(pending))
                continue
            done[x - nf] = True
            order.append(x)
            todo.pop()
        order.append(-(ti + 1))
    n_ins = len(order)
    ins_op = np.empty(n_ins, dtype=np.int32)
    ins_arg = np.zeros(n_ins, dtype=np.int32)
    ins_val = np.zeros(n_ins, dtype=np.float64)
    ins_a = np.zeros((n_ins, 3), dtype=np.int32)
    ins_out = np.zeros(n_ins, dtype=np.int32)
    row_of = list(range(nf)) + [-1] * n_nodes
    free: list[int] = []
    n_rows = nf
    for j, x in enumerate(order):
        if x < 0:
            ti = -x - 1
            r = roots[ti]
            ins_op[j] = P.BACKTEST
            ins_arg[j] = ti
            ins_a[j, 0] = row_of[r]
            _release(r, nf, uses, row_of, free)
            continue
        i = x - nf
        if free:
            row = free.pop()
        else:
            row = n_rows
            n_rows += 1
        row_of[x] = row
        ins_op[j] = node_op[i]
        ins_arg[j] = node_arg[i]
        ins_val[j] = node_val[i]
        ins_out[j] = row
        for slot, k in enumerate(node_kids[i]):
            ins_a[j, slot] = row_of[k]
        for k in node_kids[i]:
            _release(k, nf, uses, row_of, free)
    return Plan(ins_op, ins_arg, ins_val, ins_a, ins_out, n_rows, len(roots), n_nodes)


def _release(x: int, nf: int, uses: list[int], row_of: list[int], free: list[int]) -> None:
    uses[x] -= 1
    if uses[x] == 0 and x >= nf:
        free.append(row_of[x])


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
) -> tuple[np.ndarray, np.ndarray]:
    """Run the instructions; returns (metrics [n_trees, N_METRICS], outputs [n_trees, n] or
    an empty array unless ``keep_outputs``)."""
    nf, n = features.shape
    buf = np.empty((n_rows, n), dtype=np.float32)
    buf[:nf] = features
    metrics = np.zeros((n_trees, N_METRICS))
    outputs = np.empty((n_trees if keep_outputs else 0, n), dtype=np.float32)
    target = np.empty(n)
    for j in range(ins_op.shape[0]):
        op = ins_op[j]
        if op == P.BACKTEST:
            ti = ins_arg[j]
            row = buf[ins_a[j, 0]]
            if keep_outputs:
                outputs[ti] = row
            score(row, open_, close, target, cost_rate, fill_on_open, long_only,
                  periods_per_year, objective, min_trades, dd_limit, metrics[ti])
        else:
            K.apply(op, ins_arg[j], ins_val[j], buf[ins_a[j, 0]], buf[ins_a[j, 1]],
                    buf[ins_a[j, 2]], buf[ins_out[j]])
    return metrics, outputs
