"""Trees as token programs: the form that crosses process boundaries and that the interpreter
runs. DEAP trees (and DEAP's ``creator`` classes) never leave the process that made them.

A program is two parallel arrays in DEAP's prefix order, one entry per tree node:
``code`` (int32: ``opcode | arg << 8``; arg = feature index (FEAT, or REGF for a regime
one-hot column), window/lag length, or 1 for a boolean constant) and ``vals`` (float32: the constant's value, else 0). Its ``key`` (bytes) is
its identity for caches and the hall of fame.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
from deap import gp

from singularity.errors import SingularityError
from singularity.evolution import primitives as P

Program = tuple[np.ndarray, np.ndarray]
"""(code int32[n], vals float32[n]) in prefix order."""

_TOKEN = re.compile(r"[ \t\n\r(),]+")


class InvalidExpressionError(SingularityError, ValueError):
    """An expression string that is not a well-typed tree over the given inputs."""


def program_key(prog: Program) -> bytes:
    code, vals = prog
    return code.tobytes() + vals.tobytes()


def opcodes(code: np.ndarray) -> np.ndarray:
    return code & 0xFF


def args(code: np.ndarray) -> np.ndarray:
    return code >> 8


class Codec:
    """Converts between DEAP trees, token programs and expression strings for one primitive
    set (one tuple of input columns)."""

    def __init__(self, columns: Sequence[str]) -> None:
        self.columns = tuple(columns)
        self.pset = P.build_pset(self.columns)
        self.terminal_names = P.feature_terminal_names(self.columns)
        self.const_class: Any = self.pset.mapping[P.CONST_NAME]
        self._encode: dict[str, int] = {}
        self._decode: dict[int, Any] = {}
        for op in P.OPS:
            if op.name in self.pset.mapping:  # in_regime only exists over regime inputs
                self._add(op.name, op.opcode, 0)
        for i, name in enumerate(self.terminal_names):
            # DEAP keeps a renamed argument's original name in ``node.name``.
            leaf = P.REGF if P.is_regime_column(self.columns[i]) else P.FEAT
            code = leaf | i << 8
            self._encode[f"{P.ARG_PREFIX}{i}"] = code
            self._decode[code] = self.pset.mapping[name]
        for w in P.WINDOWS:
            self._add(f"w{w}", P.WIN, w)
        for k in P.LAGS:
            self._add(f"l{k}", P.LAGN, k)
        self._encode[P.CONST_NAME] = P.CONST
        self._encode["true"] = P.CONST | 1 << 8
        self._encode["false"] = P.CONST | 1 << 8
        self._true, self._false = self.pset.mapping["true"], self.pset.mapping["false"]

    def _add(self, name: str, op: int, arg: int) -> None:
        code = op | arg << 8
        self._encode[name] = code
        self._decode[code] = self.pset.mapping[name]

    # -- DEAP tree <-> program -------------------------------------------------------------

    def encode(self, tree: Sequence[Any]) -> Program:
        n = len(tree)
        code = np.empty(n, dtype=np.int32)
        vals = np.zeros(n, dtype=np.float32)
        enc = self._encode
        for i, node in enumerate(tree):
            c = enc[node.name]
            code[i] = c
            if c & 0xFF == P.CONST:
                if c >> 8:
                    vals[i] = 1.0 if node is self._true else 0.0
                else:
                    vals[i] = node.value
        return code, vals

    def decode(self, prog: Program) -> gp.PrimitiveTree:
        code, vals = prog
        nodes: list[Any] = []
        dec = self._decode
        for c, v in zip(code.tolist(), vals.tolist(), strict=True):
            if c & 0xFF == P.CONST:
                if c >> 8:
                    nodes.append(self._true if v else self._false)
                else:
                    nodes.append(self.constant(v))
            else:
                nodes.append(dec[c])
        return gp.PrimitiveTree(nodes)

    def constant(self, value: float) -> Any:
        """An ephemeral-constant node holding ``value`` (without drawing a random one)."""
        node = self.const_class.__new__(self.const_class)
        node.value = round(float(value), 6)
        return node

    # -- strings ---------------------------------------------------------------------------

    def parse(self, expression: str) -> gp.PrimitiveTree:
        """Parse DEAP's prefix form, e.g. ``gt(ts_mean(ret_1, w10), 0.5)``, type-checked."""
        tokens = [t for t in _TOKEN.split(expression.strip()) if t]
        if not tokens:
            raise InvalidExpressionError("empty expression")
        nodes: list[Any] = []
        expected: list[type] = [P.Series]  # stack of types still to fill, next on top
        for tok in tokens:
            if not expected:
                raise InvalidExpressionError(f"trailing tokens after a complete tree: {tok!r}")
            want = expected.pop()
            node = self.pset.mapping.get(tok)
            if node is None:
                try:
                    value = float(tok)
                except ValueError:
                    raise InvalidExpressionError(
                        f"unknown name {tok!r} in expression (inputs: {', '.join(self.terminal_names)})"
                    ) from None
                node = self.constant(value)
            if node.ret is not want:
                raise InvalidExpressionError(
                    f"{tok!r} returns {node.ret.__name__}, but {want.__name__} is needed there"
                )
            nodes.append(node)
            if isinstance(node, gp.Primitive):
                expected.extend(reversed(node.args))
        if expected:
            raise InvalidExpressionError(f"incomplete expression: {expression!r}")
        return gp.PrimitiveTree(nodes)

    def to_string(self, prog: Program) -> str:
        return str(self.decode(prog))

    def infix(self, prog: Program) -> str:
        """Readable form: operators infix, windows as bar counts, inputs by column name."""
        names = {f"{P.ARG_PREFIX}{i}": str(c) for i, c in enumerate(self.columns)}
        stack: list[tuple[Any, list[str]]] = []
        out = ""
        for node in self.decode(prog):
            stack.append((node, []))
            while stack and len(stack[-1][1]) == stack[-1][0].arity:
                nd, parts = stack.pop()
                out = _format(nd, parts, names)
                if stack:
                    stack[-1][1].append(out)
        return out


def _format(node: Any, parts: list[str], names: dict[str, str]) -> str:
    if not isinstance(node, gp.Primitive):
        name = node.name
        if name in names:
            return names[name]
        if name[0] in "wl" and name[1:].isdigit():
            return name[1:]
        if name == P.CONST_NAME:
            return repr(node.value)
        return name
    spec = P.OP_BY_NAME[node.name]
    if spec.infix and len(parts) == 2:
        return f"({parts[0]} {spec.infix} {parts[1]})"
    if spec.opcode == P.IF:
        return f"(if {parts[0]} then {parts[1]} else {parts[2]})"
    if spec.opcode == P.NOT:
        return f"not {parts[0]}"
    if spec.opcode == P.NEG:
        return f"-{parts[0]}"
    return f"{node.name.rstrip('_')}({', '.join(parts)})"


def pack(programs: Sequence[Program]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate programs into (code, vals, offsets) for cheap transport."""
    offsets = np.zeros(len(programs) + 1, dtype=np.int64)
    if programs:
        offsets[1:] = np.cumsum([len(c) for c, _ in programs])
        code = np.concatenate([c for c, _ in programs])
        vals = np.concatenate([v for _, v in programs])
    else:
        code = np.zeros(0, dtype=np.int32)
        vals = np.zeros(0, dtype=np.float32)
    return code, vals, offsets


def unpack(code: np.ndarray, vals: np.ndarray, offsets: np.ndarray, i: int) -> Program:
    a, b = int(offsets[i]), int(offsets[i + 1])
    return code[a:b], vals[a:b]
