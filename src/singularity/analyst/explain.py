"""Plain-language explanation of a strategy: deterministic and offline.

What it says: the simplified rule with each input named from the feature catalogue; when the
rule is long, short and flat; which inputs matter (ablation: the Sharpe when an input is held
at its median); how it fared in high/low volatility and up/down trend periods; for a rule
that tests the regime model's labels (``in_regime``), what it does regime by regime: the rule
with every ``in_regime`` fixed to the bar's regime, and its Sharpe there. An LLM may
rewrite the text when an OpenAI-compatible endpoint is configured (``rewrite_with_llm``);
nothing here needs one.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from singularity.analyst.simplify import Node, inputs_used, parse, simplify, to_infix, to_prefix
from singularity.backtest.kernel import count_trades, sharpe_from_returns
from singularity.backtest.runner import net_returns

PositionsFn = Callable[[str, pd.DataFrame], np.ndarray]


@dataclass(frozen=True)
class Explanation:
    text: str
    simplified: str
    """Simplified prefix expression (runs like the original)."""
    readable: str
    exposure: dict[str, float]
    ablation: dict[str, float] = field(default_factory=dict)
    """Input -> Sharpe with that input held at its median (the full rule's Sharpe under 'full')."""
    regimes: dict[str, dict[str, float]] = field(default_factory=dict)
    by_regime: dict[str, dict[str, Any]] = field(default_factory=dict)
    """For rules using ``in_regime``: per regime id (and 'unclassified'), the rule reduced to
    that regime, its Sharpe, bars and exposure."""


def _sharpe(r: np.ndarray, ppy: float) -> float:
    return float(sharpe_from_returns(np.ascontiguousarray(r, dtype=np.float64), ppy))


def _returns(candles: pd.DataFrame, target: np.ndarray, cost_rate: float, short_rate: float = 0.0) -> np.ndarray:
    return net_returns(candles, target, cost_rate, short_rate=short_rate)


def regime_masks(candles: pd.DataFrame, *, vol_window: int = 24, trend_window: int = 200) -> dict[str, np.ndarray]:
    """Causal regime labels per bar: trailing volatility above/below its median, and close
    above/below its trailing mean."""
    close = candles["close"]
    vol = np.log(close).diff().rolling(vol_window).std()
    trend = close / close.rolling(trend_window).mean() - 1.0
    med = vol.median()
    return {
        "high volatility": (vol > med).to_numpy(),
        "low volatility": (vol <= med).to_numpy(),
        "uptrend": (trend > 0).to_numpy(),
        "downtrend": (trend <= 0).to_numpy(),
    }


_REGIME_COLUMN = re.compile(r"^regime_(\d+)$")


def fix_regime(n: Node, column: str | None) -> Node:
    """``n`` with every ``in_regime(regime_j)`` replaced by true where ``regime_j`` is
    ``column`` (the bar's regime; regimes are exclusive) and false elsewhere."""
    if not isinstance(n, tuple):
        return n
    if n[0] == "in_regime":
        return "true" if n[1] == column else "false"
    return (n[0], *(fix_regime(c, column) for c in n[1:]))


def _uses_in_regime(n: Node) -> bool:
    return isinstance(n, tuple) and (n[0] == "in_regime" or any(_uses_in_regime(c) for c in n[1:]))


def regime_breakdown(tree: Node, inputs: pd.DataFrame, target: np.ndarray, returns: np.ndarray,
                     periods_per_year: float, names: Mapping[int, str] | None = None
                     ) -> dict[str, dict[str, Any]]:
    """Per regime one-hot column of ``inputs`` (and the bars in none): the rule reduced to
    that regime, with its Sharpe, bars and long/short shares over those bars."""
    cols = sorted((c for c in inputs.columns if _REGIME_COLUMN.match(str(c))),
                  key=lambda c: int(_REGIME_COLUMN.match(str(c)).group(1)))  # type: ignore[union-attr]
    if not cols or not _uses_in_regime(tree):
        return {}
    hot = inputs[cols].to_numpy(dtype=np.float64) > 0.5
    groups = [(c, hot[:, i]) for i, c in enumerate(cols)] + [(None, ~hot.any(axis=1))]
    out: dict[str, dict[str, Any]] = {}
    for col, mask in groups:
        if mask.sum() <= 2:
            continue
        k = None if col is None else int(_REGIME_COLUMN.match(col).group(1))  # type: ignore[union-attr]
        key = "unclassified" if k is None else str(k)
        t = target[mask]
        out[key] = {
            "name": "unclassified" if k is None else (names or {}).get(k, f"regime {k}"),
            "rule": to_infix(simplify(fix_regime(tree, col))),
            "bars": int(mask.sum()),
            "sharpe": round(_sharpe(returns[mask], periods_per_year), 4),
            "long": round(float((t > 0).mean()), 4),
            "short": round(float((t < 0).mean()), 4),
        }
    return out


def explain(expression: str, *, inputs: pd.DataFrame, candles: pd.DataFrame, positions: PositionsFn,
            cost_rate: float, periods_per_year: float, descriptions: Mapping[str, str] | None = None,
            long_only: bool = False, regime_names: Mapping[int, str] | None = None,
            short_rate: float = 0.0) -> Explanation:
    """Explain ``expression`` on ``inputs``/``candles`` (normally the training window).
    ``short_rate``: the borrow/funding charge per bar on a short (margin and perpetual markets),
    in the full Sharpe and in every ablation Sharpe, as the GP and the gauntlet charge it."""
    descriptions = dict(descriptions or {})
    tree = simplify(parse(expression))
    simplified = to_prefix(tree)
    used = inputs_used(tree, set(inputs.columns))
    readable = to_infix(tree)
    target = np.nan_to_num(np.asarray(positions(expression, inputs), dtype=np.float64))
    n = max(1, target.size)
    exposure = {"long": float((target > 0).sum() / n), "short": float((target < 0).sum() / n),
                "flat": float((target == 0).sum() / n)}
    trades = int(count_trades(target))
    base = _returns(candles, target, cost_rate, short_rate)
    full = _sharpe(base, periods_per_year)
    ablation: dict[str, float] = {"full": round(full, 4)}
    for name in used:
        held = inputs.copy()
        held[name] = float(np.nanmedian(inputs[name].to_numpy(np.float64)))
        ablation[name] = round(_sharpe(_returns(candles, positions(expression, held), cost_rate, short_rate),
                                       periods_per_year), 4)
    bh = candles["close"].pct_change().fillna(0.0).to_numpy()
    regimes = {name: {"strategy_sharpe": round(_sharpe(base[m], periods_per_year), 4),
                      "buy_hold_sharpe": round(_sharpe(bh[m], periods_per_year), 4), "bars": int(m.sum())}
               for name, m in regime_masks(candles).items() if m.sum() > 2}

    by_regime = regime_breakdown(parse(expression), inputs, target, base, periods_per_year,
                                 regime_names)

    side = ("long when the rule's value is above zero, flat otherwise (long-only)" if long_only else
            "long when the rule's value is above zero, short when it is below zero, flat at zero")
    lines = [f"Rule: {readable}", f"Position: {side}.",
             f"Over these {target.size} bars it was long {exposure['long']:.0%}, short "
             f"{exposure['short']:.0%} and flat {exposure['flat']:.0%} of the time, with {trades} trades; "
             f"annualised Sharpe {full:.2f} net of costs."]
    if used:
        lines.append("Inputs, by how much the Sharpe falls when each is held at its median:")
        for name in sorted(used, key=lambda u: ablation[u]):
            desc = descriptions.get(name, "")
            lines.append(f"  - {name}{f' ({desc})' if desc else ''}: Sharpe {ablation[name]:.2f} without it "
                         f"({ablation[name] - full:+.2f})")
    else:
        lines.append("The rule uses no input: it holds a fixed position.")
    if regimes:
        lines.append("By market regime (annualised Sharpe, strategy vs buy-and-hold):")
        for name, r in regimes.items():
            lines.append(f"  - {name}: {r['strategy_sharpe']:.2f} vs {r['buy_hold_sharpe']:.2f} over {r['bars']} bars")
    if by_regime:
        lines.append("Regime by regime (the regime model's label of each bar; the rule as it "
                     "reads there, annualised Sharpe net of costs):")
        for key, r in by_regime.items():
            label = r["name"] if key == "unclassified" else f"{key} ({r['name']})"
            lines.append(f"  - {label}: {r['rule']}; Sharpe {r['sharpe']:.2f} over {r['bars']} bars, "
                         f"long {r['long']:.0%}, short {r['short']:.0%}")
    return Explanation("\n".join(lines), simplified, readable, exposure, ablation, regimes, by_regime)


def rewrite_with_llm(text: str, *, base_url: str, model: str, api_key: str | None = None,
                     timeout_s: float = 30.0) -> str:
    """Ask an OpenAI-compatible chat endpoint to rewrite ``text`` for a trader. Optional;
    the caller falls back to ``text`` on any failure."""
    body = json.dumps({"model": model, "temperature": 0, "messages": [
        {"role": "system", "content": "Rewrite this trading-strategy explanation in plain English for a "
                                      "trader. Keep every number. Add nothing that is not in it."},
        {"role": "user", "content": text}]}).encode()
    req = urllib.request.Request(base_url.rstrip("/") + "/chat/completions", data=body,
                                 headers={"Content-Type": "application/json",
                                          **({"Authorization": f"Bearer {api_key}"} if api_key else {})})
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:
        data: Any = json.loads(resp.read())
    return str(data["choices"][0]["message"]["content"]).strip()
