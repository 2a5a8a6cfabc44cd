"""The typed ``in_regime`` primitive: regime one-hot columns are ``Regime`` leaves that only
``in_regime`` reads; the fast interpreter equals the reference on trees that use it, and
variation keeps every child well typed."""

from __future__ import annotations

import random

import numpy as np
import pytest

from singularity.evolution import primitives as P
from singularity.evolution import reference as ref
from singularity.evolution.evaluator import EvalConfig, evaluate_programs
from singularity.evolution.program import Codec, InvalidExpressionError, opcodes
from singularity.evolution.variation import VariationParams, make_child, random_tree

N = 200
COLS = ["f0", "f1", "regime_0", "regime_1", "regime_p_0"]
CFG = EvalConfig(cost_rate=0.0015, periods_per_year=8760.0, min_trades=5)


@pytest.fixture(scope="module")
def market() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    f = rng.normal(0, 1, (2, N)).cumsum(axis=1)
    regime = (np.arange(N) // 40) % 3  # 0, 1, 2 (unclassified: neither column set)
    one_hot = np.stack([(regime == 0), (regime == 1)]).astype(float)
    one_hot[:, :10] = np.nan  # warm-up
    p0 = rng.random(N)
    feats = np.vstack([f, one_hot, p0]).astype(np.float32)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, N)))
    return {"features": feats, "open": np.r_[close[0], close[:-1]], "close": close}


def test_regime_columns_are_regime_leaves_read_by_in_regime() -> None:
    c = Codec(COLS)
    tree = c.parse("if_then_else(in_regime(regime_1), f0, neg(regime_p_0))")
    code, _ = c.encode(tree)
    assert opcodes(code).tolist() == [P.IF, P.INREG, P.REGF, P.FEAT, P.NEG, P.FEAT]
    assert (code >> 8).tolist()[2] == 3  # the column index of regime_1
    assert c.to_string(c.encode(tree)) == "if_then_else(in_regime(regime_1), f0, neg(regime_p_0))"
    assert c.infix(c.encode(tree)) == "(if in_regime(regime_1) then f0 else -regime_p_0)"
    with pytest.raises(InvalidExpressionError, match="returns Regime"):
        c.parse("add(regime_1, f0)")  # a regime column is not a number
    with pytest.raises(InvalidExpressionError, match="returns Series"):
        c.parse("if_then_else(in_regime(f0), f0, f1)")


def test_without_regime_columns_there_is_no_in_regime() -> None:
    c = Codec(["f0", "f1"])
    assert "in_regime" not in c.pset.mapping
    with pytest.raises(InvalidExpressionError, match="unknown name 'in_regime'"):
        c.parse("if_then_else(in_regime(f0), f0, f1)")


def test_in_regime_values(market) -> None:
    c = Codec(COLS)
    prog = c.encode(c.parse("if_then_else(in_regime(regime_1), f0, neg(f0))"))
    _, out, _ = evaluate_programs(market, CFG, [prog], keep_outputs=True)
    f0 = market["features"][0]
    in1 = (np.arange(N) // 40) % 3 == 1
    in1[:10] = False  # NaN (warm-up) is not in the regime
    assert np.array_equal(out[0], np.where(in1, f0, -f0))


def test_interpreter_equals_reference_with_in_regime(market) -> None:
    c = Codec(COLS)
    params = VariationParams(init_min_depth=1, init_max_depth=6, max_height=12, max_size=80)
    progs = [random_tree(c, s, params) for s in range(200)]
    fit = np.zeros(len(progs))
    state = random.getstate()
    children = []
    for s in range(200):
        child, _ = make_child(c, progs.__getitem__, lambda i: c.decode(progs[i]), fit, 0, 200,
                              20_000 + s, params)
        if child is not None:
            children.append(child)
    random.setstate(state)
    progs += children
    using = [p for p in progs if (opcodes(p[0]) == P.INREG).any()]
    assert len(using) >= 5
    for p in progs:  # every child is well typed: its string parses back to the same program
        again = c.encode(c.parse(c.to_string(p)))
        assert np.array_equal(again[0], p[0]) and np.array_equal(again[1], p[1])
    _, outs, _ = evaluate_programs(market, CFG, progs, keep_outputs=True)
    feats = {n: market["features"][i] for i, n in enumerate(COLS)}
    for i, p in enumerate(progs):
        want = ref.evaluate_tree(c.decode(p), feats, N)
        assert np.array_equal(outs[i], want, equal_nan=True), c.to_string(p)
