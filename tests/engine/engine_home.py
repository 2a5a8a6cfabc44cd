"""An engine home for tests: a data directory with stored BTC/USDT 1h candles, small feature
settings (indicators only: the strategy worker answers in milliseconds) and a champion."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from singularity.config import Settings, load_settings
from singularity.data.store import CandleStore

SYMBOL = "BTC/USDT"
EXPRESSION = "ts_mean(macd_hist, w5)"
TOML = """
[universe]
symbols = ["BTC/USDT"]
[data]
dir = "{data}"
[costs]
fee_bps = 10.0
slippage_bps = 5.0
{costs}[features.indicators]
ma_periods = [10, 30]
vol_horizons = [24]
[features.ceemdan]
enabled = false
[features.particle_filter]
enabled = false
[features.graph]
enabled = false
[engine]
capital = 10000.0
heartbeat_s = 0.2
replay_chunk = {chunk}
"""


@dataclass
class Home:
    root: Path
    config: Path
    settings: Settings
    candles: pd.DataFrame
    strategy_id: int

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SINGULARITY_")}
        env["SINGULARITY_CONFIG"] = str(self.config)
        return env


def make_home(root: Path, candles: pd.DataFrame, *, chunk: int = 256,
              expression: str = EXPRESSION, extra: str = "", gauntlet: list | None = None,
              costs: str = "") -> Home:
    """``costs``: more lines of the ``[costs]`` table (e.g. ``market = "margin"``)."""
    from singularity.registry import Registry

    data = root / "data"
    root.mkdir(parents=True, exist_ok=True)
    config = root / "singularity.toml"
    config.write_text(TOML.format(data=data.as_posix(), chunk=chunk, costs=costs) + extra)
    settings = load_settings(config, environ={}).settings
    CandleStore(data).write(settings.exchange.name, SYMBOL, "1h", candles)
    reg = Registry(settings.database_url)
    run = reg.start_run(symbol=SYMBOL, timeframe="1h", seed=1, settings={})
    sid = reg.add_strategy(run_id=run, symbol=SYMBOL, timeframe="1h", expression=expression,
                           readable=expression, size=4, fitness=0.0, in_sample={}, gauntlet=gauntlet)
    reg.promote(sid)
    reg.finish_run(run, status="succeeded", seconds=0.0)
    reg.close()
    return Home(root, config, settings, candles, sid)
