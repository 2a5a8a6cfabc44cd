"""Strategies by hand: a rule in the GP's grammar, checked, put through the gauntlet with a
trial count of 1 and stored in the registry, where the engine can trade it once pinned."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from singularity.config import Settings
from singularity.errors import ConfigError, DataError

_TOKENS = re.compile(r"[^ \t\n\r(),]+")


def check_rule(expression: str, columns: list[str]) -> None:
    """A ConfigError naming the bad token and its column when ``expression`` does not parse."""
    from singularity.evolution.evaluator import codec_for
    from singularity.evolution.program import InvalidExpressionError

    try:
        codec_for(columns).parse(expression)
    except InvalidExpressionError as e:
        msg = str(e)
        quoted = re.search(r"'([^']+)'", msg)
        where = ""
        if quoted:
            for m in _TOKENS.finditer(expression):
                if m.group(0) == quoted.group(1):
                    where = f" at column {m.start() + 1} ({expression[:m.start()]}>>{m.group(0)}<<{expression[m.end():]})"
                    break
        raise ConfigError(f"bad rule{where}: {msg}") from None


def add_manual_strategy(settings: Settings, symbol: str, expression: str, timeframe: str) -> dict[str, Any]:
    from singularity.data.store import CandleStore
    from singularity.features.factory import FeatureFactory
    from singularity.forge.champion import own_features_from, positions_fn
    from singularity.forge.split import time_split
    from singularity.registry import Registry
    from singularity.timeframes import periods_per_year
    from singularity.validation.gauntlet import (
        GauntletContext,
        annual_sharpe,
        run_gauntlet,
        summary,
        trade,
    )

    raw = CandleStore(settings.data_dir).read(settings.exchange.name, symbol, timeframe)
    if raw.empty:
        raise DataError(f"no stored {timeframe} candles of {symbol}: run 'singularity data download {symbol}'")
    fs = FeatureFactory(settings.features, cache_dir=settings.data_dir / "features" / "engine").build(
        {symbol: raw}, progress=False)
    check_rule(expression, fs.feature_names)
    ready = fs.ready(symbol)
    candles = raw.loc[ready.index]
    split = time_split(len(candles), holdout_fraction=settings.forge.holdout_fraction,
                       embargo=settings.forge.embargo_bars)
    positions = positions_fn(settings)
    ppy = periods_per_year(timeframe)
    cost = (settings.costs.fee_bps + settings.costs.slippage_bps) / 1e4
    train_c, train_x = candles.iloc[split.train], ready.iloc[split.train]

    def search(c: Any, x: Any, seed: int) -> tuple[str, float]:
        # the "search" behind a hand-written rule is the rule itself: re-running it on other
        # bars (walk-forward, permuted nulls) measures the rule, one trial
        return expression, annual_sharpe(trade(c, positions(expression, x), cost), ppy)

    ctx = GauntletContext(
        train_candles=train_c, train_inputs=train_x, holdout_candles=candles.iloc[split.holdout],
        holdout_inputs=ready.iloc[split.holdout], timeframe=timeframe, fee_bps=settings.costs.fee_bps,
        slippage_bps=settings.costs.slippage_bps, settings=settings.gauntlet, positions=positions,
        n_trials=1, trial_sharpe_variance=0.0,
        trial_returns=trade(train_c, positions(expression, train_x), cost)[:, None],
        search=search, full_candles=candles.iloc[split.train.start: split.holdout.stop],
        full_inputs=ready.iloc[split.train.start: split.holdout.stop],
        recompute_inputs=lambda noisy: own_features_from(noisy, raw, ready, settings, None,
                                                         holdout_rows=split.holdout),
        seed=settings.forge.seed, regime_settings=settings.features.regimes)
    # PBO ranks the trials of a search against each other: one trial has nothing to rank
    tests = tuple(t for t in settings.gauntlet.tests if t != "pbo")
    report = run_gauntlet(ctx, expression, tests=tests)
    hold_target = positions(expression, ctx.holdout_inputs)
    holdout = summary(trade(ctx.holdout_candles, hold_target, cost), np.asarray(hold_target), ppy)
    in_target = positions(expression, train_x)
    in_sample = summary(trade(train_c, in_target, cost), np.asarray(in_target), ppy)
    reg = Registry(settings.database_url)
    run = reg.start_run(symbol=symbol, timeframe=timeframe, seed=settings.forge.seed,
                        settings={"source": "strategy add", "expression": expression, "trials": 1})
    sid = reg.add_strategy(run_id=run, symbol=symbol, timeframe=timeframe, expression=expression,
                           readable=expression, size=len(_TOKENS.findall(expression)),
                           fitness=float(in_sample["sharpe"]), in_sample=in_sample, holdout=holdout,
                           gauntlet=report.as_list(), explanation="added by hand (singularity strategy add)")
    reg.finish_run(run, status="succeeded", seconds=0.0)
    reg.close()
    return {"id": sid, "symbol": symbol, "timeframe": timeframe, "expression": expression,
            "passed": report.passed, "gauntlet": report.as_list(), "holdout": holdout,
            "skipped_tests": {"pbo": "one trial: nothing to rank"} if "pbo" in settings.gauntlet.tests else {}}
