"""Reports from the ledger: round-trip trades from fills (the backtest's trade list) and the
paper-versus-backtest shortfall."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from singularity.backtest.runner import TRADE_COLUMNS


def trades_from_fills(fills: Sequence[dict[str, Any]], *, last_close: float | None = None,
                      last_time: pd.Timestamp | None = None) -> pd.DataFrame:
    """Round trips from ``ledger --json`` fill rows, with the backtest kernel's rules: a trade
    runs from leaving flat (or a side flip) to flat (or a flip), fees split by size; a trade
    still open is marked at ``last_close``. Columns as ``backtest.run``'s trades."""
    rows: list[dict[str, Any]] = []
    shares = 0.0
    side = 0
    acc: dict[str, Any] = {}
    for f in fills:
        p = f["payload"]
        d, price, fee = float(p["quantity"]), float(p["price"]), float(p["fee"])
        when = pd.Timestamp(f["time"])
        old, shares = shares, shares + d
        flip_or_flat = old != 0.0 and (shares == 0.0 or (shares > 0.0) != (old > 0.0))
        close_qty = abs(old) if flip_or_flat else (abs(d) if old != 0.0 and abs(shares) < abs(old) else 0.0)
        open_qty = abs(d) - close_qty
        if close_qty > 0.0:
            part = fee * close_qty / abs(d)
            acc["exit_qty"] += close_qty
            acc["exit_val"] += close_qty * price
            acc["fees"] += part
            acc["flows"] += side * close_qty * price - part
            if flip_or_flat:
                rows.append(_trade(acc, side, when, acc["exit_val"] / acc["exit_qty"], acc["flows"], False))
                side = 0
        if open_qty > 0.0:
            part = fee * open_qty / abs(d)
            if side == 0:
                side = 1 if shares > 0.0 else -1
                acc = {"entry_time": when, "entry_qty": 0.0, "entry_val": 0.0, "exit_qty": 0.0,
                       "exit_val": 0.0, "flows": 0.0, "fees": 0.0}
            acc["entry_qty"] += open_qty
            acc["entry_val"] += open_qty * price
            acc["fees"] += part
            acc["flows"] -= side * open_qty * price + part
    if side != 0 and last_close is not None:
        rem = abs(shares)
        exit_price = (acc["exit_val"] + rem * last_close) / (acc["exit_qty"] + rem)
        rows.append(_trade(acc, side, last_time, exit_price, acc["flows"] + shares * last_close, True))
    frame = pd.DataFrame(rows, columns=[c for c in TRADE_COLUMNS if c not in ("entry_bar", "exit_bar")])
    return frame


def _trade(acc: dict[str, Any], side: int, exit_time: Any, exit_price: float, pnl: float,
           is_open: bool) -> dict[str, Any]:
    size, entry_price = acc["entry_qty"], acc["entry_val"] / acc["entry_qty"]
    notional = size * entry_price
    return {"entry_time": acc["entry_time"], "exit_time": exit_time, "side": side, "size": size,
            "entry_price": entry_price, "exit_price": exit_price, "pnl": pnl,
            "return": pnl / notional if notional > 0 else 0.0, "fees": acc["fees"], "funding": 0.0,
            "is_open": is_open}


def shortfall(fills: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Per fill: the price paid against what the backtest would have used (``backtest_price``,
    the next candle's open plus slippage), in basis points; positive = worse than the backtest."""
    rows = []
    for f in fills:
        p = f["payload"]
        ref = p.get("backtest_price")
        if ref is None:
            continue
        side = 1.0 if p["quantity"] > 0 else -1.0
        rows.append({"time": f["time"], "symbol": f["symbol"], "client_order_id": p.get("client_order_id"),
                     "price": p["price"], "backtest_price": ref,
                     "shortfall_bps": side * (p["price"] - ref) / ref * 1e4})
    return pd.DataFrame(rows, columns=["time", "symbol", "client_order_id", "price", "backtest_price",
                                       "shortfall_bps"])
