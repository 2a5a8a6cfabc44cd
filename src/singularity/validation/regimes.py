"""Performance per market regime: the regime of each bar from the regime family's one-hot
input columns (``regime_K``), and a strategy's bars, Sharpe and share of the PnL in each.
The gauntlet tabulates the holdout with it; the HTML report shows the same table."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from singularity.backtest.kernel import sharpe_from_returns

_ONE_HOT = re.compile(r"^regime_(\d+)$")
UNCLASSIFIED = -1


def regime_ids(inputs: pd.DataFrame) -> np.ndarray | None:
    """Regime id per row (-1 where no one-hot column is set); None without regime columns."""
    cols = [(int(m.group(1)), c) for c in inputs.columns if (m := _ONE_HOT.match(str(c)))]
    if not cols:
        return None
    cols.sort()
    hot = inputs[[c for _, c in cols]].to_numpy(dtype=np.float64) > 0.5
    ids = np.array([k for k, _ in cols])
    return np.where(hot.any(axis=1), ids[hot.argmax(axis=1)], UNCLASSIFIED)


def regime_performance(returns: np.ndarray, regimes: np.ndarray, ppy: float) -> list[dict[str, Any]]:
    """One row per regime present (unclassified last): bars, share of the bars, annualised
    Sharpe of the net returns on those bars, PnL (sum of the net per-bar returns there) and
    its share of the total PnL (None when the total is zero)."""
    r = np.asarray(returns, dtype=np.float64)
    reg = np.asarray(regimes)
    total = float(r.sum())
    keys = sorted(int(k) for k in np.unique(reg) if k >= 0)
    if (reg < 0).any():
        keys.append(UNCLASSIFIED)
    rows = []
    for k in keys:
        m = reg == k
        pnl = float(r[m].sum())
        rows.append({
            "regime": "unclassified" if k == UNCLASSIFIED else k,
            "bars": int(m.sum()),
            "bar_share": round(float(m.mean()), 4),
            "sharpe": round(float(sharpe_from_returns(np.ascontiguousarray(r[m]), ppy)), 4),
            "pnl": round(pnl, 6),
            "pnl_share": round(pnl / total, 4) if total != 0 else None,
        })
    return rows
