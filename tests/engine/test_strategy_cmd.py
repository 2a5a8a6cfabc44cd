"""``strategy add`` (parse, gauntlet with one trial, registry) and ``strategy pin`` (the engine
trades the pinned rule; live only if it passed the gauntlet)."""

from __future__ import annotations

import json

import pytest
from engine_home import SYMBOL, make_home
from typer.testing import CliRunner

from singularity.cli import app
from singularity.engine.assemble import RunOptions, strategy_specs
from singularity.errors import ConfigError
from singularity.registry import Registry

SMALL_GAUNTLET = """
[gauntlet]
permutation_runs = 20
search_null_runs = 1
noise_runs = 2
walk_forward_blocks = 2
"""


@pytest.fixture
def home(tmp_path, load_feather):
    return make_home(tmp_path, load_feather("BTC", "1h", tail=1500), extra=SMALL_GAUNTLET)


def test_a_bad_token_is_named_with_its_column(home):
    r = CliRunner().invoke(app, ["strategy", "add", SYMBOL, "sub(macd_hsit, 0.5)"],
                           env={"SINGULARITY_CONFIG": str(home.config)})
    assert isinstance(r.exception, ConfigError)
    msg = str(r.exception)
    assert "column 5" in msg and ">>macd_hsit<<" in msg and "unknown name 'macd_hsit'" in msg
    r = CliRunner().invoke(app, ["strategy", "add", SYMBOL, "sub(macd_hist)"],
                           env={"SINGULARITY_CONFIG": str(home.config)})
    assert isinstance(r.exception, ConfigError) and "incomplete expression" in str(r.exception)


def test_add_runs_the_gauntlet_stores_and_pin_makes_the_engine_trade_it(home):
    env = {"SINGULARITY_CONFIG": str(home.config), "COLUMNS": "200"}
    rule = "sub(rsi_14, ts_mean(rsi_14, w20))"
    r = CliRunner().invoke(app, ["strategy", "add", SYMBOL, rule, "--json"], env=env)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["expression"] == rule and isinstance(out["id"], int)
    names = [v["test"] for v in out["gauntlet"]]
    assert names == [t for t in home.settings.gauntlet.tests if t != "pbo"]
    assert all({"test", "passed", "detail", "figures"} <= set(v) for v in out["gauntlet"])
    dsr = next(v for v in out["gauntlet"] if v["test"] == "deflated_sharpe")
    assert dsr["figures"]["trials"] == 1 and dsr["figures"]["trials_used"] == 1
    reg = Registry(home.settings.database_url)
    st = reg.strategy(out["id"])
    assert st.expression == rule and st.status == "candidate" and st.gauntlet == out["gauntlet"]
    # before the pin the engine trades the champion; after it, the pinned rule
    opts = RunOptions(mode="paper", symbols=(SYMBOL,), timeframe="1h")
    assert strategy_specs(home.settings, opts)[SYMBOL].strategy_id == home.strategy_id
    r = CliRunner().invoke(app, ["strategy", "pin", str(out["id"]), "--json"], env=env)
    assert r.exit_code == 0, r.output
    pinned = json.loads(r.stdout)
    assert pinned["strategy_id"] == out["id"] and pinned["paper_only"] is (not out["passed"])
    spec = strategy_specs(home.settings, opts)[SYMBOL]
    assert spec.strategy_id == out["id"] and spec.expression == rule
    if not out["passed"]:
        with pytest.raises(ConfigError, match="paper only"):
            strategy_specs(home.settings, RunOptions(mode="live", symbols=(SYMBOL,), timeframe="1h"))


def test_unpin_returns_the_symbol_to_its_champion(home):
    env = {"SINGULARITY_CONFIG": str(home.config)}
    opts = RunOptions(mode="paper", symbols=(SYMBOL,), timeframe="1h")
    with Registry(home.settings.database_url) as reg:
        run = reg.start_run(symbol=SYMBOL, timeframe="1h", seed=5, settings={})
        other = reg.add_strategy(run_id=run, symbol=SYMBOL, timeframe="1h", expression="rsi_14", readable="rsi_14",
                                 size=1, fitness=0.0, in_sample={})
    assert CliRunner().invoke(app, ["strategy", "pin", str(other)], env=env).exit_code == 0
    assert strategy_specs(home.settings, opts)[SYMBOL].strategy_id == other
    r = CliRunner().invoke(app, ["strategy", "unpin", SYMBOL], env=env)
    assert r.exit_code == 0, r.output
    assert strategy_specs(home.settings, opts)[SYMBOL].strategy_id == home.strategy_id
    r = CliRunner().invoke(app, ["strategy", "unpin", SYMBOL], env=env)
    assert isinstance(r.exception, ConfigError) and "is not pinned" in str(r.exception)
