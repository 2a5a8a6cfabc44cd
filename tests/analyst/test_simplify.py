from __future__ import annotations

import pytest

from singularity.analyst.simplify import inputs_used, parse, simplify, size, to_infix, to_prefix


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("add(rsi, 0.0)", "rsi"),
        ("sub(rsi, rsi)", "0.0"),
        ("mul(add(0.5, 0.25), 4.0)", "3.0"),
        ("div(natr, natr)", "1.0"),
        ("div(rsi, 0.0)", "div(rsi, 0.0)"),
        ("div(2.0, 0.0)", "1.0"),  # protected division of constants
        ("neg(neg(rsi))", "rsi"),
        ("abs(neg(rsi))", "abs(rsi)"),
        ("max(rsi, rsi)", "rsi"),
        ("if_then_else(gt(rsi, rsi), macd, roc)", "roc"),
        ("if_then_else(gt(rsi, 0.5), macd, macd)", "macd"),
        ("if_then_else(and_(true, gt(rsi, 0.5)), macd, roc)", "if_then_else(gt(rsi, 0.5), macd, roc)"),
        ("if_then_else(or_(lt(1.0, 2.0), gt(rsi, 0.5)), macd, roc)", "macd"),
        ("ts_mean(0.5, w20)", "0.5"),
        ("diff(0.5, l3)", "0.0"),
        ("not_(not_(gt(rsi, 0.3)))", "gt(rsi, 0.3)"),
        ("add(rsi, macd)", "add(macd, rsi)"),
        ("sub(ts_zscore(rsi, w20), ts_zscore(rsi, w20))", "0.0"),
    ],
)
def test_simplify(expr: str, expected: str) -> None:
    assert to_prefix(simplify(parse(expr))) == expected


def test_infix_and_inputs() -> None:
    tree = parse("if_then_else(gt(ts_zscore(rsi_14, w20), 1.5), neg(macd_hist), l_ret)")
    assert to_infix(tree) == "(if (ts_zscore(rsi_14, 20) > 1.5) then -macd_hist else l_ret)"
    assert to_infix(tree, {"rsi_14": "RSI(14)"}).startswith("(if (ts_zscore(RSI(14), 20)")
    assert inputs_used(tree, {"rsi_14", "macd_hist", "l_ret", "unused"}) == ["rsi_14", "macd_hist", "l_ret"]
    assert size(tree) == 9


def test_parse_errors() -> None:
    with pytest.raises(ValueError):
        parse("add(rsi, ")
    with pytest.raises(ValueError):
        parse("add(rsi, macd) extra")
