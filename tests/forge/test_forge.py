"""The forge cycle end to end: noise is never promoted, a planted edge is, real candles run
within CI's time, and a killed forge leaves a consistent registry."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from singularity.backtest import run as backtest
from singularity.config import load_settings
from singularity.data.store import CandleStore
from singularity.forge.cycle import ForgeOptions, run_forge
from singularity.registry import Registry

# A cut-down configuration: the machinery is the real one, the budget is small.
FAST: dict[str, Any] = {
    "features.ceemdan.enabled": False,
    "features.graph.enabled": False,
    "bakeoff.models": ["logistic", "lightgbm"],
    "bakeoff.folds": 3,
    "gauntlet.noise_runs": 4,
    "gauntlet.permutation_runs": 100,
    "gauntlet.search_null_runs": 2,
    "gauntlet.walk_forward_blocks": 2,
    "costs.fee_bps": 2.0,
    "costs.slippage_bps": 1.0,
    "forge.holdout_fraction": 0.25,
    # the planted edges are long/short: a perpetual market allows shorts (and charges them)
    "costs.market": "perpetual",
}


def _settings(tmp: Path, **extra: Any):
    return load_settings(environ={}, cwd=tmp, overrides={"data.dir": str(tmp / "data"), **FAST, **extra}).settings


def _candles(r: np.ndarray, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(r))
    open_ = np.concatenate([[100.0], close[:-1]])
    wick = np.abs(rng.normal(0, 0.002, (2, r.size)))
    idx = pd.date_range("2024-01-01", periods=r.size, freq="1h", tz="UTC", name="timestamp")
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close) * (1 + wick[0]),
                         "low": np.minimum(open_, close) * (1 - wick[1]), "close": close,
                         "volume": rng.lognormal(8, 0.3, r.size)}, index=idx)


def _momentum_returns(n: int, seed: int, strength: float) -> np.ndarray:
    """Next bar's return leans toward the sign of this bar's: sign(r_t) predicts r_{t+1}."""
    rng = np.random.default_rng(seed)
    eps = rng.normal(0, 0.01, n)
    r = np.empty(n)
    r[0] = eps[0]
    for t in range(1, n):
        r[t] = strength * 0.01 * np.sign(r[t - 1]) + eps[t]
    return r


def _forge(tmp: Path, candles: pd.DataFrame, seed: int, **extra: Any):
    s = _settings(tmp, **extra)
    CandleStore(s.data.dir).write("synthetic", "BTC/USDT", "1h", candles)
    opts = ForgeOptions(symbol="BTC/USDT", timeframe="1h", population=120, generations=4, seed=seed,
                        workers=2, exchange="synthetic", progress=False)
    return s, run_forge(s, opts, say=lambda _m: None)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_noise_promotes_nothing(tmp_path: Path, seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    # Real BTC-like returns without an edge: a random walk with fat tails.
    r = rng.standard_t(4, 3000) * 0.007
    s, out = _forge(tmp_path, _candles(r, seed), seed)
    assert out.champion is None
    assert out.best is not None and out.gauntlet
    # which gates fail, not only that one does: the search's trials and the holdout's order
    # both say "luck" (the figures behind each verdict are in out.gauntlet)
    failed = {v["test"] for v in out.gauntlet if not v["passed"]}
    assert {"permutation", "deflated_sharpe"} <= failed, out.gauntlet
    reg = Registry(s.database_url)
    assert reg.strategies(status="champion") == []
    assert reg.run(out.run_id).status == "succeeded"


@pytest.mark.slow
def test_planted_edge_is_promoted(tmp_path: Path) -> None:
    candles = _candles(_momentum_returns(3000, 5, strength=0.35), 5)
    first = candles.iloc[:2000]
    s, out = _forge(tmp_path, first, 5)
    assert out.champion is not None, [v["detail"] for v in out.gauntlet if not v["passed"]]
    # The planted rule: hold sign(this bar's return). Its holdout Sharpe, net of the same
    # costs, is what a perfect discovery would earn.
    hold = first.iloc[-round(len(first) * 0.25):]
    oracle = np.sign(hold["close"].to_numpy() / hold["open"].to_numpy() - 1.0)
    planted = backtest(hold, oracle, timeframe="1h", fee_bps=2.0, slippage_bps=1.0).metrics["sharpe"]
    got = out.champion["holdout"]["sharpe"]
    assert got == pytest.approx(planted, rel=0.25), (got, planted, out.champion["readable"])
    assert Path(out.report).is_file()
    reg = Registry(s.database_url)
    assert [c.id for c in reg.strategies(status="champion")] == [out.champion["id"]]
    _check_one_holdout(s, reg, out)
    assert reg.strategy(out.champion["id"]).explanation.startswith("Rule: ")
    opts = ForgeOptions(symbol="BTC/USDT", timeframe="1h", population=60, generations=1, seed=6,
                        workers=2, exchange="synthetic", progress=False)
    # Reborn on the same candles: the champion was chosen on this very holdout, so it seeds
    # nothing (the log says so), and the first search's trials count in the new DSR.
    said: list[str] = []
    same = run_forge(s, opts, say=said.append)
    assert any(f"no seeds from run(s) {out.run_id}" in m for m in said), said
    assert [st.parents for st in reg.strategies() if st.run_id == same.run_id] == [[]] * 10
    trials = {r: reg.run(r).settings["window"]["trials"] for r in (out.run_id, same.run_id)}
    dsr = next(v for v in same.gauntlet if v["test"] == "deflated_sharpe")["figures"]
    assert dsr["trials"] == trials[out.run_id] + trials[same.run_id]
    # New candles beyond both runs' data: their strategies seed the next cycle, and say so.
    CandleStore(s.data.dir).write("synthetic", "BTC/USDT", "1h", candles)
    parent = same.champion["id"] if same.champion else out.champion["id"]  # the market's champion now
    again = run_forge(s, opts, say=lambda _m: None)
    run3 = reg.run(again.run_id)
    assert (run3.generation, run3.parent_champion_id) == (3, parent)
    children = [st for st in reg.strategies() if st.run_id == again.run_id]
    assert children and all({parent, out.champion["id"]} <= set(st.parents) for st in children)
    assert out.champion["id"] in [x.id for x in reg.lineage(children[0].id)]
    current = again.champion["id"] if again.champion else parent
    _check_registry_cli(tmp_path, out.champion["id"], parent, current, children[0].id)


def _check_one_holdout(s, reg: Registry, out) -> None:  # type: ignore[no-untyped-def]
    """The holdout was opened once (one candidate has holdout figures), and the gauntlet, the
    registry and the HTML report's saved series give the same holdout figures."""
    from singularity.backtest import count_trades
    from singularity.forge.reporting import _metric_sections, series_path

    assert out.holdout_looks == 1 and out.to_json_dict()["holdout_looks"] == 1
    looked = [st for st in reg.strategies() if st.run_id == out.run_id and st.holdout]
    assert [st.id for st in looked] == [out.champion["id"]]
    verdict = next(v for v in out.gauntlet if v["test"] == "holdout")["figures"]
    assert reg.strategy(out.champion["id"]).holdout == verdict
    series = pd.read_parquet(series_path(s, out.champion["id"]))
    start = pd.Timestamp(series["holdout_start"].iloc[0])
    shown = _metric_sections(series, start, "1h")["holdout"]
    assert shown["sharpe"] == verdict["sharpe"]
    assert shown["max_drawdown"] == round(verdict["max_drawdown"], 4)
    assert shown["total_return"] == round(verdict["total_return"], 4)
    assert shown["trade_count"] == verdict["trades"] and shown["n_bars"] == verdict["bars"]
    hold = series[series.index >= start]
    assert count_trades(hold["target"].to_numpy()) == verdict["trades"]


def _cli(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SINGULARITY_")}
    env["SINGULARITY_DATA_DIR"] = str(tmp / "data")
    return subprocess.run([sys.executable, "-m", "singularity", *args], env=env, cwd=tmp,
                          capture_output=True, text=True, timeout=120)


def _check_registry_cli(tmp: Path, champion: int, parent: int, current: int, child: int) -> None:
    """What a user sees of that registry from another process. ``current`` is the symbol's
    champion now: the second cycle's if it promoted one (the first is then retired)."""
    listed = json.loads(_cli(tmp, "registry", "list", "--status", "champion", "--json").stdout)
    assert [x["id"] for x in listed] == [current]
    shown = json.loads(_cli(tmp, "registry", "show", str(child), "--json").stdout)
    assert champion in shown["lineage"] and shown["lineage"][0] == child
    runs = json.loads(_cli(tmp, "registry", "runs", "--json").stdout)
    assert [(r["status"], r["generation"]) for r in runs] == [("succeeded", 3), ("succeeded", 2), ("succeeded", 1)]
    assert runs[2]["champion_id"] == champion and runs[0]["parent_champion_id"] == parent
    out = tmp / "again.html"
    r = _cli(tmp, "report", str(champion), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size > 3_000_000 and "Gauntlet" in out.read_text()
    missing = _cli(tmp, "registry", "show", "999")
    assert missing.returncode == 1 and "no strategy with id 999" in missing.stderr


@pytest.mark.slow
@pytest.mark.realdata
def test_real_candles_full_cycle(tmp_path: Path, load_feather) -> None:
    s = load_settings(environ={}, cwd=tmp_path, overrides={
        "data.dir": str(tmp_path / "data"), "bakeoff.transformer_epochs": 1, "bakeoff.folds": 3,
        "features.ceemdan.trials": 10, "gauntlet.noise_runs": 2, "gauntlet.permutation_runs": 50,
        "gauntlet.search_null_runs": 1, "gauntlet.walk_forward_blocks": 2}).settings
    store = CandleStore(s.data.dir)
    for base in ("BTC", "ETH", "SOL"):
        store.write("binance", f"{base}/USDT", "1h", load_feather(base, "1h", tail=3500))
    t0 = time.perf_counter()
    opts = ForgeOptions(symbol="BTC/USDT", timeframe="1h", population=60, generations=2, seed=0,
                        workers=2, progress=False)
    out = run_forge(s, opts, say=lambda _m: None)
    assert time.perf_counter() - t0 < 900
    names = {v["test"] for v in out.gauntlet}
    assert names == set(s.gauntlet.tests)
    assert set(out.stage_seconds) == {"data", "features", "bakeoff", "evolution", "gauntlet", "registry", "report"}
    assert {m["name"] for m in out.bakeoff["models"]} == {"logistic", "lightgbm", "transformer"}
    assert Path(out.report).is_file()
    doc = json.dumps(out.to_json_dict())
    assert '"run_id"' in doc and '"gauntlet"' in doc


@pytest.mark.slow
def test_killed_forge_leaves_consistent_registry(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    rng = np.random.default_rng(9)
    CandleStore(s.data.dir).write("synthetic", "BTC/USDT", "1h", _candles(rng.normal(0, 0.01, 3000), 9))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SINGULARITY_")}
    env["SINGULARITY_DATA_DIR"] = str(tmp_path / "data")
    cfg = tmp_path / "singularity.toml"
    cfg.write_text("[features.ceemdan]\nenabled = false\n[features.graph]\nenabled = false\n"
                   "[bakeoff]\nmodels = [\"logistic\"]\n")
    proc = subprocess.Popen([sys.executable, "-m", "singularity", "--config", str(cfg), "forge", "BTC/USDT",
                             "--exchange", "synthetic", "--population", "2000", "--generations", "50",
                             "--workers", "2", "--json"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    reg = Registry(s.database_url, recover=False)
    deadline = time.time() + 240
    stage = None
    while time.time() < deadline:
        runs = reg.runs()
        if runs and runs[0].stage == "evolution":
            stage = runs[0].stage
            break
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)  # the forge and its workers, as a crash would
    proc.wait(timeout=60)
    assert stage == "evolution"
    run = Registry(s.database_url).runs()[0]  # the next start recovers
    assert run.status == "failed" and "evolution" in run.error
    assert Registry(s.database_url).strategies() == []  # nothing half-written
    with Registry(s.database_url).engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"


@pytest.mark.slow
def test_same_seed_same_cycle_for_1_and_2_workers(tmp_path: Path) -> None:
    """A cycle is a function of (data, settings, seed), whatever the number of workers."""
    candles = _candles(_momentum_returns(2500, 11, strength=0.2), 11)
    results = []
    for workers in (1, 2):
        s = _settings(tmp_path / f"w{workers}")
        CandleStore(s.data.dir).write("synthetic", "BTC/USDT", "1h", candles)
        opts = ForgeOptions(symbol="BTC/USDT", timeframe="1h", population=80, generations=3, seed=3,
                            workers=workers, exchange="synthetic", progress=False)
        out = run_forge(s, opts, say=lambda _m: None)
        results.append((out.best["expression"], out.best["fitness"], out.best["holdout"],
                        [(v["test"], v["passed"], v["figures"]) for v in out.gauntlet],
                        out.bakeoff["winner"], [m["log_loss"] for m in out.bakeoff["models"]]))
    assert results[0] == results[1]
