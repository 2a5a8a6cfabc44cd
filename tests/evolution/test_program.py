"""Token programs: encode/decode/parse round trips, readable form, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from singularity.errors import DataError
from singularity.evolution import primitives as P
from singularity.evolution.program import Codec, InvalidExpressionError, pack, program_key, unpack
from singularity.evolution.variation import VariationParams, random_tree

EXPR = "if_then_else(and_(gt(ts_mean(ret_1, w10), 0.5), true), lag(vol, l3), neg(rsi_14))"


def test_parse_encode_decode_round_trip() -> None:
    c = Codec(["ret_1", "vol", "rsi 14"])
    tree = c.parse(EXPR)
    assert str(tree) == EXPR
    code, vals = c.encode(tree)
    assert (code & 0xFF).tolist() == [
        P.IF, P.AND, P.GT, P.MEAN, P.FEAT, P.WIN, P.CONST, P.CONST, P.LAG, P.FEAT, P.LAGN,
        P.NEG, P.FEAT,
    ]
    assert (code >> 8).tolist() == [0, 0, 0, 0, 0, 10, 0, 1, 0, 1, 3, 0, 2]
    assert vals.tolist() == [0, 0, 0, 0, 0, 0, 0.5, 1.0, 0, 0, 0, 0, 0]
    assert c.to_string((code, vals)) == EXPR
    assert c.infix((code, vals)) == (
        "(if ((ts_mean(ret_1, 10) > 0.5) and true) then lag(vol, 3) else -rsi 14)"
    )


def test_random_trees_round_trip_through_strings() -> None:
    c = Codec([f"f{i}" for i in range(4)])
    for s in range(50):
        prog = random_tree(c, s, VariationParams())
        again = c.encode(c.parse(c.to_string(prog)))
        assert program_key(again) == program_key(prog)


def test_random_tree_is_a_function_of_its_seed() -> None:
    c = Codec(["x", "y"])
    a = random_tree(c, 7, VariationParams())
    b = random_tree(c, 7, VariationParams())
    assert program_key(a) == program_key(b)


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("gt(x, y)", "returns Signal"),
        ("add(x, w10)", "returns Window"),
        ("add(x)", "incomplete"),
        ("add(x, y) z", "trailing"),
        ("add(x, nope)", "unknown name 'nope'"),
        ("", "empty"),
    ],
)
def test_invalid_expressions_fail_with_one_line(expr: str, message: str) -> None:
    with pytest.raises(InvalidExpressionError, match=message):
        Codec(["x", "y"]).parse(expr)


def test_pack_unpack() -> None:
    c = Codec(["x", "y"])
    progs = [c.encode(c.parse(e)) for e in ("x", "add(x, y)", "ts_rank(y, w5)")]
    code, vals, offs = pack(progs)
    assert offs.tolist() == [0, 1, 4, 7]
    for i, p in enumerate(progs):
        assert program_key(unpack(code, vals, offs, i)) == program_key(p)
    assert np.array_equal(pack([])[2], [0])


def test_column_names_become_identifiers() -> None:
    assert P.feature_terminal_names(["rsi 14", "1h_ret", "add", "ARG3"]) == [
        "rsi_14", "f_1h_ret", "f_add", "f_ARG3",
    ]
    with pytest.raises(DataError, match="same name"):
        P.feature_terminal_names(["a b", "a_b"])


def test_token_height_and_crossover_keep_trees_well_typed() -> None:
    import random

    from singularity.evolution.variation import crossover_tokens, token_height

    c = Codec([f"f{i}" for i in range(3)])
    progs = [random_tree(c, s, VariationParams(init_min_depth=1, init_max_depth=7)) for s in range(80)]
    for p in progs:
        assert token_height(p[0]) == c.decode(p).height
    rng = random.Random(0)
    changed = 0
    for i in range(79):
        child = crossover_tokens(progs[i], progs[i + 1], rng)
        tree = c.decode(child)
        assert str(c.parse(str(tree))) == str(tree)  # parse type-checks every node
        changed += program_key(child) != program_key(progs[i])
    assert changed > 60
