"""Risk limits between a strategy's target and the venue: caps clip the target, the daily loss
limit and the maximum drawdown flatten and pause the symbol. Pure functions on a ``Book``;
every trigger becomes a ``risk`` event with its reason."""

from __future__ import annotations

import math
from typing import Any

from singularity.engine.projection import Book
from singularity.engine.settings import RiskSettings


def check(book: Book, raw_target: float, *, candle_day: str, close: float,
          limits: RiskSettings) -> tuple[float, list[dict[str, Any]]]:
    """(target after limits, risk event payloads) for a decision at ``close``; ``book`` holds
    the account after this candle's fills, before the decision."""
    target = 0.0 if math.isnan(raw_target) else max(-1.0, min(1.0, raw_target))
    if book.paused:
        return 0.0, []
    equity = book.equity(close)
    triggers: list[dict[str, Any]] = []
    day_start = book.day_start_equity if candle_day == book.day else (book.last_equity or equity)
    if limits.daily_loss_limit and day_start > 0 and equity <= day_start * (1 - limits.daily_loss_limit):
        triggers.append({"action": "pause", "limit": "daily_loss_limit", "reason":
                         f"daily loss {1 - equity / day_start:.2%} reached the limit "
                         f"{limits.daily_loss_limit:.2%}: flattened and paused",
                         "equity": equity, "day_start_equity": day_start})
    peak = max(book.peak_equity, equity)
    if not triggers and limits.max_drawdown and peak > 0 and equity <= peak * (1 - limits.max_drawdown):
        triggers.append({"action": "pause", "limit": "max_drawdown", "reason":
                         f"drawdown {1 - equity / peak:.2%} from the peak reached the limit "
                         f"{limits.max_drawdown:.2%}: flattened and paused",
                         "equity": equity, "peak_equity": peak})
    if triggers:
        return 0.0, triggers
    if equity <= 0:
        return 0.0, []
    clipped = target
    cap = limits.max_position_fraction
    if limits.max_position_notional:
        cap = min(cap, limits.max_position_notional / equity)
    if abs(clipped) > cap:
        clipped = math.copysign(cap, clipped)
    held = book.quantity * close / equity
    step = limits.max_order_fraction or math.inf
    if limits.max_order_notional:
        step = min(step, limits.max_order_notional / equity)
    if abs(clipped - held) > step + 1e-12 and clipped != book.target:
        clipped = held + math.copysign(step, clipped - held)
    if clipped != target:
        triggers.append({"action": "clip", "limit": "caps", "raw_target": target,
                         "target": clipped, "reason": f"target {target:+.4f} clipped to "
                         f"{clipped:+.4f} by the position/order caps"})
    return clipped, triggers
