"""Evaluation of token programs on shared data, in workers or in-process.

The market data (inputs as a float32 matrix, open and close prices) reaches each worker once,
as a ``SharedArrays`` handle; tasks carry only token programs, seeds and fitness arrays. A
worker keeps a bounded cache of program -> metrics, so an expression met again in a later
generation costs nothing; caches change speed, never results (evaluation is deterministic).
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from deap import gp

from singularity.errors import DataError
from singularity.evolution import token_ops as T
from singularity.evolution.breeding import COPY, MUTATE, NEW, breed_tokens
from singularity.evolution.fitness import N_METRICS, OBJECTIVES
from singularity.evolution.interpreter import Plan, ScoredPositions, plan, plan_packed, run_plan
from singularity.evolution.packed import Packed, ProgramTable, gather, gather2
from singularity.evolution.program import Codec, Program, pack, unpack
from singularity.evolution.variation import (
    VariationParams,
    make_child,
    random_tree,
)
from singularity.runtime.pool import SharedArrays

_CACHE_MAX = 200_000
_CODECS: dict[tuple[str, ...], Codec] = {}
_METRICS_CACHE: dict[str, ProgramTable] = {}
"""Per scope (data and scoring settings): every program evaluated, with its metrics row."""
_POSITIONS: dict[str, ScoredPositions] = {}
"""The position series scored in this process, for the last scope only (bounded memory)."""


@dataclass(frozen=True)
class EvalConfig:
    """How a position series is scored (plain data: crosses process boundaries)."""

    cost_rate: float
    periods_per_year: float
    fill_on_open: bool = True
    long_only: bool = False
    objective: str = "sharpe"
    min_trades: int = 10
    max_drawdown: float = 0.5
    share_subtrees: bool = True
    short_rate: float = 0.0
    """Borrow/funding charge per bar on short notional (0 when long-only)."""

    def fingerprint(self) -> str:
        return repr(self)


def codec_for(columns: Sequence[str]) -> Codec:
    """One Codec (and DEAP primitive set) per process and input set."""
    key = tuple(columns)
    c = _CODECS.get(key)
    if c is None:
        c = _CODECS[key] = Codec(key)
    return c


def market_arrays(inputs: pd.DataFrame, candles: pd.DataFrame) -> dict[str, np.ndarray]:
    """The arrays every evaluation reads: inputs (float32, features x bars), open, close."""
    if len(inputs) != len(candles) or not inputs.index.equals(candles.index):
        raise DataError(
            f"GP inputs ({len(inputs)} rows) and candles ({len(candles)} rows) must share one index"
        )
    if len(candles) < 3:
        raise DataError(f"GP needs at least 3 bars, got {len(candles)}")
    feats = inputs.to_numpy(dtype=np.float64).T
    with np.errstate(over="ignore"):
        feats32 = feats.astype(np.float32)
    feats32[~np.isfinite(feats32)] = np.nan  # inf (or float32 overflow) = not available
    return {
        "features": np.ascontiguousarray(feats32),
        "open": candles["open"].to_numpy(dtype=np.float64),
        "close": candles["close"].to_numpy(dtype=np.float64),
    }


def evaluate_programs(
    data: dict[str, np.ndarray],
    cfg: EvalConfig,
    programs: Sequence[Program],
    *,
    keep_outputs: bool = False,
) -> tuple[np.ndarray, np.ndarray, int]:
    """(metrics [n, N_METRICS], tree outputs [n, bars] if asked, unique nodes computed)."""
    if not programs:
        return np.zeros((0, N_METRICS)), np.zeros((0, 0), np.float32), 0
    p = plan(programs, data["features"].shape[0], share=cfg.share_subtrees)
    seen = ScoredPositions(data["features"].shape[1], p.n_trees)
    metrics, outputs = _run(data, cfg, p, seen, keep_outputs=keep_outputs)
    return metrics, outputs, p.n_nodes


def _run(
    data: dict[str, np.ndarray], cfg: EvalConfig, p: Plan, seen: ScoredPositions, *,
    keep_outputs: bool,
) -> tuple[np.ndarray, np.ndarray]:
    seen.room_for(p.n_trees)
    return run_plan(  # type: ignore[no-any-return]
        data["features"], data["open"], data["close"], p.op, p.arg, p.val, p.a, p.out,
        p.n_rows, p.n_trees, cfg.cost_rate, cfg.fill_on_open, cfg.long_only,
        cfg.periods_per_year, OBJECTIVES[cfg.objective], cfg.min_trades, cfg.max_drawdown,
        keep_outputs, cfg.short_rate, seen.kept, seen.metrics, seen.next, seen.heads,
        seen.count,
    )


def _positions_for(scope: str, n_bars: int) -> ScoredPositions:
    seen = _POSITIONS.get(scope)
    if seen is None:
        _POSITIONS.clear()  # one scope at a time: a new market or setup starts afresh
        seen = _POSITIONS[scope] = ScoredPositions(n_bars)
    return seen


def cached_metrics_packed(
    data_key: str, data: dict[str, np.ndarray], cfg: EvalConfig, packed: Packed
) -> tuple[np.ndarray, int, int]:
    """Metrics for the packed programs via the per-process cache: (metrics, computed, nodes).
    Programs met before cost a lookup; the others are evaluated once each (first-met order),
    in one batch."""
    scope = data_key + cfg.fingerprint()
    if sum(t.n for t in _METRICS_CACHE.values()) > _CACHE_MAX:
        _METRICS_CACHE.clear()
    table = _METRICS_CACHE.get(scope)
    if table is None:
        table = _METRICS_CACHE[scope] = ProgramTable(N_METRICS)
    start = table.n
    ids = table.ids(packed, add=True)
    fresh = ids >= start
    if not fresh.any():
        return table.values[ids], 0, 0
    try:
        # The first child of each new entry, in first-met order (ids are given in order).
        firsts = np.flatnonzero(fresh)[np.unique(ids[fresh], return_index=True)[1]]
        code, vals, offs = gather(packed, firsts)
        p = plan_packed(code, vals, offs, data["features"].shape[0], share=cfg.share_subtrees)
        seen = _positions_for(scope, data["features"].shape[1])
        metrics, _ = _run(data, cfg, p, seen, keep_outputs=False)
    except BaseException:
        del _METRICS_CACHE[scope]  # its new entries have no figures: never serve them
        _POSITIONS.clear()  # nor positions whose figures may not be written
        raise
    table.values[start : table.n] = metrics
    return table.values[ids], len(firsts), p.n_nodes


@dataclass(frozen=True)
class BreedTask:
    """Build and score the children for ``seeds`` (a slice of one generation).

    With no population (generation 0) each seed grows a random tree. Otherwise child i picks
    its parents by tournament among individuals ``lo[i] <= j < hi[i]`` (its island).
    """

    data: SharedArrays
    columns: tuple[str, ...]
    cfg: EvalConfig
    params: VariationParams
    seeds: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    population: SharedArrays | None = None
    """The previous generation, shared once per generation (not pickled into every task):
    arrays ``code``, ``vals``, ``offsets`` (packed programs) and ``fitness`` (selection)."""


@dataclass(frozen=True)
class BreedResult:
    children: tuple[np.ndarray, np.ndarray, np.ndarray]
    """Packed programs of the new children, in order."""
    copy_of: np.ndarray
    """Per child: -1 if new (next program in ``children``), else the copied individual."""
    metrics: np.ndarray
    """Per new child (rows aligned with ``children``)."""
    computed: int
    nodes: int
    sizes: int
    """Total tree size of the new children."""


def breed(task: BreedTask) -> BreedResult:
    """Worker entry point (module level: picklable by reference)."""
    codec = codec_for(task.columns)
    data = task.data.load()
    copy_of = np.full(len(task.seeds), -1, dtype=np.int64)
    if task.population is None:
        children = pack([random_tree(codec, int(s), task.params) for s in task.seeds])
    else:
        children = _breed_children(codec, task, copy_of)
    metrics, computed, nodes = cached_metrics_packed(task.data.key, data, task.cfg, children)
    return BreedResult(
        children=children, copy_of=copy_of, metrics=metrics, computed=computed, nodes=nodes,
        sizes=int(children[2][-1]),
    )


def breed_pickled(blob: bytes) -> bytes:
    """``breed`` on a task pickled by the standard (C) pickler, its result pickled likewise.
    The pool would pickle each task with cloudpickle, whose per-object Python hooks cost the
    parent about half a millisecond a task, on the serial path between generations (and
    there are two tasks per worker)."""
    return pickle.dumps(breed(pickle.loads(blob)), protocol=pickle.HIGHEST_PROTOCOL)


def _breed_children(codec: Codec, task: BreedTask, copy_of: np.ndarray) -> Packed:
    """The new children of ``task`` packed in seed order; ``copy_of`` is filled for the
    others. Reproduction and crossover come out of one compiled loop (the same draws as
    make_child); mutations, which edit DEAP trees, are built by make_child from their seeds."""
    assert task.population is not None
    # Plain ndarray views of the mapped files: np.memmap slices carry Python overhead.
    shared = {k: np.asarray(v) for k, v in task.population.load().items()}
    code, vals, offs = shared["code"], shared["vals"], shared["offsets"]
    prm = task.params
    kind, src, c_code, c_vals, c_offs = breed_tokens(
        code, vals, offs, shared["fitness"], task.seeds, task.lo, task.hi,
        prm.crossover_prob, prm.mutation_prob, prm.tournament_size, prm.max_height,
        prm.max_size, T.ARITY, T.RET,
    )
    copy_of[kind == COPY] = src[kind == COPY]
    is_new = kind == NEW
    mutants: list[Program] = []
    mutate = np.flatnonzero(kind == MUTATE)
    if mutate.size:
        fit = shared["fitness"].tolist()  # tournaments index it per draw: Python floats
        memo: dict[int, list] = {}  # type: ignore[type-arg]

        def program(i: int) -> Program:
            return unpack(code, vals, offs, i)

        def tree(i: int) -> gp.PrimitiveTree:
            nodes = memo.get(i)
            if nodes is None:
                nodes = memo[i] = list(codec.decode(program(i)))
            return gp.PrimitiveTree(nodes)  # a fresh list: operators edit it in place

        seeds, lo, hi = task.seeds.tolist(), task.lo.tolist(), task.hi.tolist()
        for j in mutate.tolist():
            child, src_j = make_child(codec, program, tree, fit, lo[j], hi[j], seeds[j], prm)
            if child is not None and src_j < 0:
                mutants.append(child)
                is_new[j] = True
            else:
                copy_of[j] = src_j
    # Children in seed order: compiled ones (ids 0..) and mutants (ids after them).
    n_compiled = len(c_offs) - 1
    which = np.where(kind[is_new] == NEW, 0, 1)
    idx = np.empty(int(is_new.sum()), dtype=np.int64)
    idx[which == 0] = np.arange(n_compiled)
    idx[which == 1] = n_compiled + np.arange(len(mutants))
    return gather2((c_code, c_vals, c_offs), pack(mutants), idx)


def split_seeds(n: int, parts: int) -> list[slice]:
    size = max(1, math.ceil(n / max(parts, 1)))
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]
