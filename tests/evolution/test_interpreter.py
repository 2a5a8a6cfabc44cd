"""The fast evaluator equals the straightforward reference, value for value; the subtree cache
changes nothing but the work done."""

from __future__ import annotations

import random

import numpy as np
import pytest

from singularity.evolution import reference as ref
from singularity.evolution.evaluator import EvalConfig, evaluate_programs
from singularity.evolution.fitness import M_FITNESS, M_TRADES, M_VALID, N_METRICS, WORST, score
from singularity.evolution.interpreter import plan
from singularity.evolution.program import Codec
from singularity.evolution.variation import VariationParams, make_child, random_tree

N = 240
COLS = ["f0", "f1", "f2", "f3"]
CFG = EvalConfig(cost_rate=0.0015, periods_per_year=8760.0, min_trades=5)


@pytest.fixture(scope="module")
def market() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    feats = rng.normal(0, 1, (len(COLS), N)).cumsum(axis=1).astype(np.float32)
    feats[1, :9] = np.nan  # warm-up gaps, as real features have
    feats[2, 120] = np.nan
    feats[3] = np.round(feats[3])  # ties for ranks and comparisons
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, N)))
    return {"features": feats, "open": np.r_[close[0], close[:-1]], "close": close}


@pytest.fixture(scope="module")
def programs() -> list:
    """Random trees of every depth, plus crossover/mutation children that share subtrees."""
    c = Codec(COLS)
    params = VariationParams(init_min_depth=1, init_max_depth=6, max_height=12, max_size=80)
    progs = [random_tree(c, s, params) for s in range(150)]
    fit = np.zeros(len(progs))
    state = random.getstate()
    for s in range(150):
        child, _src = make_child(
            c, progs.__getitem__, lambda i: c.decode(progs[i]), fit, 0, 150, 10_000 + s, params
        )
        if child is not None:
            progs.append(child)
    random.setstate(state)
    return progs


def _reference(market: dict[str, np.ndarray], progs: list) -> tuple[np.ndarray, np.ndarray]:
    c = Codec(COLS)
    feats = {n: market["features"][i] for i, n in enumerate(COLS)}
    outs = np.stack([ref.evaluate_tree(c.decode(p), feats, N) for p in progs])
    metrics = np.zeros((len(progs), N_METRICS))
    target = np.empty(N)
    for i, out in enumerate(outs):
        score(out, market["open"], market["close"], target, CFG.cost_rate, True, False,
              CFG.periods_per_year, 0, CFG.min_trades, CFG.max_drawdown, metrics[i])
    return outs, metrics


def test_interpreter_equals_reference_on_random_trees(market, programs) -> None:
    metrics, outs, _nodes = evaluate_programs(market, CFG, programs, keep_outputs=True)
    ref_outs, ref_metrics = _reference(market, programs)
    assert len(programs) > 250
    for i in range(len(programs)):
        assert np.array_equal(outs[i], ref_outs[i], equal_nan=True), Codec(COLS).to_string(programs[i])
    assert np.array_equal(metrics, ref_metrics)
    assert np.isfinite(metrics).all()


def test_subtree_cache_changes_only_the_work(market, programs) -> None:
    shared = evaluate_programs(market, CFG, programs, keep_outputs=True)
    alone = evaluate_programs(
        market, EvalConfig(**{**CFG.__dict__, "share_subtrees": False}), programs, keep_outputs=True
    )
    assert np.array_equal(shared[0], alone[0])
    assert np.array_equal(shared[1], alone[1], equal_nan=True)
    total_nodes = sum(len(c) for c, _ in programs)
    assert shared[2] < alone[2] <= total_nodes  # identical subtrees computed once


def test_nested_duplicate_operands_match_the_reference(market) -> None:
    c = Codec(COLS)
    exprs = [
        "mul(sub(ts_mean(f0, w5), ts_mean(f0, w5)), add(ts_std(f1, w3), ts_std(f1, w3)))",
        "if_then_else(gt(ema(f2, w3), ema(f2, w3)), ema(f2, w3), div(ema(f2, w3), f3))",
        "max(ts_rank(max(f0, f0), w10), ts_rank(max(f0, f0), w10))",
    ]
    progs = [c.encode(c.parse(e)) for e in exprs]
    _, outs, _ = evaluate_programs(market, CFG, progs, keep_outputs=True)
    ref_outs, _ = _reference(market, progs)
    assert np.array_equal(outs, ref_outs, equal_nan=True)


def test_identical_subtrees_get_one_instruction() -> None:
    c = Codec(["x", "y"])
    progs = [c.encode(c.parse(e)) for e in (
        "add(ts_mean(x, w5), y)", "mul(y, ts_mean(x, w5))", "add(y, ts_mean(x, w5))",
    )]
    p = plan(progs, 2)
    # ts_mean(x,5) once; add(a,y) == add(y,a) (commutative) once; mul once; 3 backtests.
    assert p.n_nodes == 3
    assert sorted(p.op.tolist()).count(255) == 3


def test_primitive_values_on_a_tiny_series() -> None:
    x = np.array([1, 3, 2, 2, np.nan, 5, 4], dtype=np.float32)
    y = np.array([2, 2, 2, 2, 2, 2, 2], dtype=np.float32)
    c = Codec(["x", "y"])
    data = {"features": np.stack([x, y]), "open": np.ones(7), "close": np.ones(7)}

    def out(expr: str) -> list[float]:
        _, o, _ = evaluate_programs(data, CFG, [c.encode(c.parse(expr))], keep_outputs=True)
        return [round(float(v), 6) if v == v else None for v in o[0]]

    assert out("ts_mean(x, w3)") == [None, None, 2.0, 2.333333, None, None, None]
    assert out("ts_rank(x, w3)") == [None, None, 0.5, 0.25, None, None, None]
    assert out("ts_max(x, w3)") == [None, None, 3.0, 3.0, None, None, None]
    assert out("lag(x, l2)") == [None, None, 1.0, 3.0, 2.0, 2.0, None]
    assert out("diff(x, l1)") == [None, 2.0, -1.0, 0.0, None, None, -1.0]
    assert out("if_then_else(cross_above(x, y), x, neg(y))") == [-2, 3, -2, -2, -2, -2, -2]  # NaN before bar 5: no cross
    assert out("div(x, sub(y, y))") == [1, 1, 1, 1, None, 1, 1]  # protected division
    assert out("ema(x, w3)") == [1.0, 2.0, 2.0, 2.0, None, 3.5, 3.75]


def test_invalid_trees_get_the_worst_finite_fitness(market) -> None:
    c = Codec(COLS)
    progs = [c.encode(c.parse(e)) for e in ("0.5", "lag(f0, l10)", "div(f1, f1)", "f0")]
    m, _, _ = evaluate_programs(market, CFG, progs)
    assert m[0, M_FITNESS] == WORST and m[0, M_VALID] == 0  # constant
    assert m[2, M_FITNESS] == WORST  # 1.0 where defined, NaN in warm-up: constant
    assert m[1, M_VALID] == 1 and m[3, M_VALID] == 1
    assert np.isfinite(m).all() and (m[[1, 3], M_FITNESS] > WORST).all()
    assert m[3, M_TRADES] >= 1


def test_every_tree_is_causal(market, programs) -> None:
    """Outputs on data cut at bar t equal the full-data outputs up to t."""
    _, full, _ = evaluate_programs(market, CFG, programs, keep_outputs=True)
    for cut in (37, 150):
        short = {k: v[..., :cut] for k, v in market.items()}
        _, part, _ = evaluate_programs(short, CFG, programs, keep_outputs=True)
        assert np.array_equal(part, full[:, :cut], equal_nan=True)
