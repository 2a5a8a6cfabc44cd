"""Algebraic simplification of strategy expressions (the GP's prefix strings).

``simplify`` folds constants and removes identities; the result computes the same positions
wherever the inputs are finite (warm-up NaNs aside). ``to_infix`` renders a tree readably.
Trees are tuples ``(name, child, ...)``; leaves are strings (inputs, ``w20``, ``l5``,
``true``/``false``) or floats.
"""

from __future__ import annotations

import math
import re
from typing import Any

Node = str | float | tuple[Any, ...]
_TOKEN = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*|-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|[(),])")
DIV_EPS = 1e-9
_INFIX = {"add": "+", "sub": "-", "mul": "*", "div": "/", "gt": ">", "lt": "<", "and_": "and", "or_": "or"}
_COMMUTATIVE = {"add", "mul", "min", "max", "and_", "or_"}


def parse(expression: str) -> Node:
    tokens = _TOKEN.findall(expression)
    if "".join(tokens) != re.sub(r"\s+", "", expression):
        raise ValueError(f"cannot parse expression {expression!r}")
    pos = 0

    def node() -> Node:
        nonlocal pos
        tok = tokens[pos]
        pos += 1
        if re.fullmatch(r"-?\d.*", tok):
            return float(tok)
        if pos < len(tokens) and tokens[pos] == "(":
            pos += 1
            kids = [node()]
            while tokens[pos] == ",":
                pos += 1
                kids.append(node())
            if tokens[pos] != ")":
                raise ValueError(f"expected ')' in {expression!r}")
            pos += 1
            return (tok, *kids)
        return tok

    try:
        tree = node()
    except IndexError:
        raise ValueError(f"incomplete expression {expression!r}") from None
    if pos != len(tokens):
        raise ValueError(f"trailing tokens in {expression!r}")
    return tree


def _const(n: Node) -> bool:
    return isinstance(n, float)


def _bool(n: Node) -> bool | None:
    return {"true": True, "false": False}.get(n) if isinstance(n, str) else None


def _fold(op: str, a: float, b: float | None = None) -> float | None:
    ops: dict[str, Any] = {
        "add": lambda: a + b, "sub": lambda: a - b, "mul": lambda: a * b,
        "div": lambda: 1.0 if abs(b) < DIV_EPS else a / b,
        "min": lambda: min(a, b), "max": lambda: max(a, b),
        "neg": lambda: -a, "abs": lambda: abs(a), "sign": lambda: float((a > 0) - (a < 0)),
    }
    if op not in ops:
        return None
    v = float(ops[op]())
    return round(v, 10) if math.isfinite(v) else None


def simplify(n: Node) -> Node:
    if not isinstance(n, tuple):
        return n
    op, *kids = n
    k = [simplify(c) for c in kids]
    if op in _COMMUTATIVE and len(k) == 2 and repr(k[1]) < repr(k[0]):
        k = [k[1], k[0]]  # canonical order so identical subtrees compare equal
    a = k[0]
    b = k[1] if len(k) > 1 else None
    if all(_const(c) for c in k) and (v := _fold(op, *k)) is not None:
        return v
    # Identities on Series.
    if op == "add" and b is not None:
        if a == 0.0:
            return b
        if b == 0.0:
            return a
    if op == "sub":
        if a == b:
            return 0.0
        if b == 0.0:
            return a
        if a == 0.0:
            return simplify(("neg", b))
    if op == "mul":
        if a == 0.0 or b == 0.0:
            return 0.0  # finite inputs: x * 0 is 0
        if a == 1.0:
            return b
        if b == 1.0:
            return a
        if a == -1.0:
            return simplify(("neg", b))
    if op == "div":
        if a == b:
            return 1.0  # protected division: x/x is 1, and so is 0/0
        if b == 1.0:
            return a
    if op in ("min", "max", "and_", "or_") and a == b:
        return a
    if op == "neg" and isinstance(a, tuple) and a[0] == "neg":
        return a[1]
    if op in ("abs", "sign") and isinstance(a, tuple) and a[0] == op:
        return a
    if op == "abs" and isinstance(a, tuple) and a[0] == "neg":
        return ("abs", a[1])
    if op in ("lag", "ts_mean", "ts_min", "ts_max", "ema") and _const(a):
        return a  # a constant stays constant (after the operator's warm-up)
    if op in ("diff", "ts_std") and _const(a):
        return 0.0
    # Signals.
    if op in ("gt", "lt"):
        if a == b:
            return "false"
        if _const(a) and _const(b):
            return "true" if (a > b if op == "gt" else a < b) else "false"
    if op in ("cross_above", "cross_below") and (a == b or (_const(a) and _const(b))):
        return "false"
    if op == "not_":
        if _bool(a) is not None:
            return "false" if _bool(a) else "true"
        if isinstance(a, tuple) and a[0] == "not_":
            return a[1]
    if op == "and_":
        if _bool(a) is False or _bool(b) is False:
            return "false"
        if _bool(a) is True:
            return b
        if _bool(b) is True:
            return a
    if op == "or_":
        if _bool(a) is True or _bool(b) is True:
            return "true"
        if _bool(a) is False:
            return b
        if _bool(b) is False:
            return a
    if op == "if_then_else":
        c, x, y = k
        if _bool(c) is True or x == y:
            return x
        if _bool(c) is False:
            return y
    return (op, *k)


def to_infix(n: Node, names: dict[str, str] | None = None) -> str:
    names = names or {}
    if isinstance(n, float):
        return f"{n:g}"
    if isinstance(n, str):
        if n in names:
            return names[n]
        if n[0] in "wl" and n[1:].isdigit():
            return n[1:]
        return n
    op, *kids = n
    parts = [to_infix(c, names) for c in kids]
    if op in _INFIX and len(parts) == 2:
        return f"({parts[0]} {_INFIX[op]} {parts[1]})"
    if op == "if_then_else":
        return f"(if {parts[0]} then {parts[1]} else {parts[2]})"
    if op == "not_":
        return f"not {parts[0]}"
    if op == "neg":
        return f"-{parts[0]}"
    return f"{op.rstrip('_')}({', '.join(parts)})"


def to_prefix(n: Node) -> str:
    if isinstance(n, float):
        return repr(n)
    if isinstance(n, str):
        return n
    op, *kids = n
    return f"{op}({', '.join(to_prefix(c) for c in kids)})"


def inputs_used(n: Node, known: set[str]) -> list[str]:
    """Input names in the tree, in first-appearance order."""
    out: list[str] = []

    def walk(x: Node) -> None:
        if isinstance(x, tuple):
            for c in x[1:]:
                walk(c)
        elif isinstance(x, str) and x in known and x not in out:
            out.append(x)

    walk(n)
    return out


def size(n: Node) -> int:
    return 1 + sum(size(c) for c in n[1:]) if isinstance(n, tuple) else 1
