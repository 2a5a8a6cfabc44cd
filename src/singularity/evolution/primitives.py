"""The strongly typed primitive set: what a strategy tree may be built from.

Types: ``Series`` (float series: feature columns, arithmetic, time-series operators),
``Signal`` (boolean series: comparisons, crosses, logic), ``Window``/``Lag`` (integer bar
counts, always leaves, folded into their operator when compiled), ``Regime`` (a regime
one-hot input column ``regime_K``, read only through ``in_regime``, so the search can evolve
rules such as ``if_then_else(in_regime(regime_2), A, B)``). The root is a ``Series`` whose
sign is the target position.

Every primitive has an opcode: trees are compiled to token programs (``program.py``) and
interpreted over arrays (``interpreter.py``); ``gp.compile`` is never used. The Python
functions registered with DEAP are the straightforward reference implementations
(``reference.py``), so the set documents its own semantics.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from deap import gp

from singularity.errors import DataError
from singularity.evolution import reference as ref


class Series:
    """Float series (type tag for DEAP)."""


class Signal:
    """Boolean series stored as 0.0/1.0 (type tag for DEAP)."""


class Window:
    """Trailing window length in bars, >= 2 (type tag for DEAP)."""


class Lag:
    """Look-back in bars, >= 1 (type tag for DEAP)."""


class Regime:
    """A regime one-hot input column (type tag for DEAP); a leaf, read by ``in_regime``."""


WINDOWS = (3, 5, 10, 20, 50)
LAGS = (1, 2, 3, 5, 10)

# Opcodes. FEAT/CONST/WIN/LAGN are leaves (WIN/LAGN fold into their operator's argument).
FEAT, CONST, WIN = 0, 1, 2
ADD, SUB, MUL, DIV, MIN, MAX = 3, 4, 5, 6, 7, 8
NEG, ABS, SIGN = 9, 10, 11
LAG, DIFF, MEAN, STD, TMIN, TMAX, ZSCORE, RANK, EMA = 12, 13, 14, 15, 16, 17, 18, 19, 20
GT, LT, XABOVE, XBELOW = 21, 22, 23, 24
AND, OR, NOT = 25, 26, 27
IF = 28
LAGN = 29
INREG = 30
REGF = 31
"""Leaf: a regime one-hot input column (arg = its column index), typed ``Regime``."""
N_OPS = 32
BACKTEST = 255
"""Interpreter instruction: score a finished tree (not a tree node)."""


@dataclass(frozen=True)
class OpSpec:
    name: str
    opcode: int
    args: tuple[type, ...]
    ret: type
    func: Any
    commutative: bool = False
    infix: str | None = None


OPS: tuple[OpSpec, ...] = (
    OpSpec("add", ADD, (Series, Series), Series, ref.add, True, "+"),
    OpSpec("sub", SUB, (Series, Series), Series, ref.sub, False, "-"),
    OpSpec("mul", MUL, (Series, Series), Series, ref.mul, True, "*"),
    OpSpec("div", DIV, (Series, Series), Series, ref.div, False, "/"),
    OpSpec("min", MIN, (Series, Series), Series, ref.minimum, True),
    OpSpec("max", MAX, (Series, Series), Series, ref.maximum, True),
    OpSpec("neg", NEG, (Series,), Series, ref.neg),
    OpSpec("abs", ABS, (Series,), Series, ref.absolute),
    OpSpec("sign", SIGN, (Series,), Series, ref.sign),
    OpSpec("lag", LAG, (Series, Lag), Series, ref.lag),
    OpSpec("diff", DIFF, (Series, Lag), Series, ref.diff),
    OpSpec("ts_mean", MEAN, (Series, Window), Series, ref.ts_mean),
    OpSpec("ts_std", STD, (Series, Window), Series, ref.ts_std),
    OpSpec("ts_min", TMIN, (Series, Window), Series, ref.ts_min),
    OpSpec("ts_max", TMAX, (Series, Window), Series, ref.ts_max),
    OpSpec("ts_zscore", ZSCORE, (Series, Window), Series, ref.ts_zscore),
    OpSpec("ts_rank", RANK, (Series, Window), Series, ref.ts_rank),
    OpSpec("ema", EMA, (Series, Window), Series, ref.ema),
    OpSpec("gt", GT, (Series, Series), Signal, ref.gt, False, ">"),
    OpSpec("lt", LT, (Series, Series), Signal, ref.lt, False, "<"),
    OpSpec("cross_above", XABOVE, (Series, Series), Signal, ref.cross_above),
    OpSpec("cross_below", XBELOW, (Series, Series), Signal, ref.cross_below),
    OpSpec("and_", AND, (Signal, Signal), Signal, ref.logical_and, True, "and"),
    OpSpec("or_", OR, (Signal, Signal), Signal, ref.logical_or, True, "or"),
    OpSpec("not_", NOT, (Signal,), Signal, ref.logical_not),
    OpSpec("if_then_else", IF, (Signal, Series, Series), Series, ref.if_then_else),
    OpSpec("in_regime", INREG, (Regime,), Signal, ref.in_regime),
)
REGIME_COLUMN = re.compile(r"^regime_\d+$")
"""Input columns typed ``Regime`` (the regime family's one-hot columns)."""


def is_regime_column(column: str) -> bool:
    return bool(REGIME_COLUMN.match(str(column)))
OP_BY_NAME = {op.name: op for op in OPS}
OP_BY_CODE = {op.opcode: op for op in OPS}
CONST_NAME = "const"
_IDENT = re.compile(r"[^0-9a-zA-Z_]")
ARG_PREFIX = "ARG"
"""DEAP's internal argument names (ARG0, ARG1, ...), renamed to the column names."""
_ARG = re.compile(ARG_PREFIX + r"\d+")
_RESERVED = {op.name for op in OPS} | {CONST_NAME, "true", "false"}


def random_constant() -> float:
    """DEAP's ephemeral constant generator (module level: picklable); our own generators draw
    the same distribution from a seeded private generator. Two decimals keep expressions
    readable and their strings exact."""
    return round(random.uniform(-2.0, 2.0), 2)


def feature_terminal_names(columns: Sequence[str]) -> list[str]:
    """Identifier-safe, unique terminal names for input columns (stable: same columns, same
    names), so an expression string can be re-run on new data with the same columns."""
    names: list[str] = []
    for c in columns:
        n = _IDENT.sub("_", str(c))
        if not n or n[0].isdigit() or n in _RESERVED or _ARG.fullmatch(n):
            n = f"f_{n}"
        if n in names:
            raise DataError(f"input columns {c!r} and another map to the same name {n!r}")
        names.append(n)
    return names


def build_pset(columns: Sequence[str]) -> gp.PrimitiveSetTyped:
    """The typed primitive set over ``columns`` (feature inputs, in order)."""
    if not columns:
        raise DataError("genetic programming needs at least one input column")
    names = feature_terminal_names(columns)
    types = [Regime if is_regime_column(c) else Series for c in columns]
    if Series not in types:
        raise DataError("genetic programming needs at least one input column besides regimes")
    pset = gp.PrimitiveSetTyped("strategy", types, Series, prefix=ARG_PREFIX)
    pset.renameArguments(**{f"{ARG_PREFIX}{i}": n for i, n in enumerate(names)})
    for op in OPS:
        if op.opcode == INREG and Regime not in types:
            continue  # no regime inputs: a Regime argument could never be filled
        pset.addPrimitive(op.func, list(op.args), op.ret, name=op.name)
    for w in WINDOWS:
        pset.addTerminal(w, Window, name=f"w{w}")
    for k in LAGS:
        pset.addTerminal(k, Lag, name=f"l{k}")
    pset.addTerminal(True, Signal, name="true")
    pset.addTerminal(False, Signal, name="false")
    pset.addEphemeralConstant(CONST_NAME, random_constant, Series)
    return pset
