"""Benchmark: regime labelling of N 1h bars x the 8 core pairs (refits included), and the
engine's cost per new bar and per refit.

Prints JSON lines: (1) wall seconds to label every symbol walk-forward with a WorkerPool of
--workers processes (refits are pool tasks) beside the same work serially in this process
(the peer, same run), with the machine's core count and load; the pool is timed on its second
pass (its first, also printed, includes each worker's import of hdbscan and scikit-learn,
~3 s of CPU per process on this machine, which a long-lived pool pays once); (2) per new bar: the last
bar's regime features (``latest_regime_features`` on the trailing bars; the cross-asset
level as numpy correlations of the aligned trailing returns) + ``approximate_predict`` + the
classifier's probabilities, median over --bars-timed bars, beside the pandas path
(``regime_features`` on the same tail); per refit: one HDBSCAN fit on ``window`` bars +
classifier.
Goals from the issue: under 5 ms per bar, under 2 s per refit.

(3) the engine's regime watch as it runs (``regimes.online.regime_update``): a cold update
(every refit of the history) and the cost per new candle, with and without a refit.

    .venv/bin/python benchmarks/regimes.py [--bars 12500] [--workers 2] [--only-watch [--watch-live]]
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from singularity.data.importers import read_freqtrade_feather
from singularity.regimes.analysis import analyse_symbol
from singularity.regimes.classifier import EnvironmentClassifier
from singularity.regimes.features import latest_regime_features, symbol_regime_features
from singularity.regimes.model import fit_block
from singularity.regimes.settings import RegimeSettings
from singularity.runtime.pool import WorkerPool, cpu_count, share_inline

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "binance-spot-2024-2026"
CORE8 = ("BTC", "ETH", "SOL", "XRP", "BNB", "DOGE", "ADA", "LTC")


def load(base: str, bars: int) -> pd.DataFrame:
    return read_freqtrade_feather(DATA / f"{base}_USDT-1h.feather").iloc[-bars:]


def universe(bars: int) -> tuple[dict[str, pd.DataFrame], str]:
    if DATA.is_dir():
        return {f"{b}/USDT": load(b, bars) for b in CORE8}, "binance 1h"
    from singularity.regimes.synthetic import planted_regime_market

    u, _ = planted_regime_market(8, n_bars=bars, seed=0)
    return u, "synthetic planted regimes"


def label_all(u: dict[str, pd.DataFrame], s: RegimeSettings, pool: WorkerPool | None) -> float:
    t = time.perf_counter()
    for sym in u:
        analyse_symbol(u, sym, s, pool=pool)
    return time.perf_counter() - t


def per_bar(u: dict[str, pd.DataFrame], s: RegimeSettings, timed: int) -> dict[str, float]:
    """The engine's work when a candle closes, and when a refit is due (one symbol, BTC)."""
    import hdbscan

    sym = next(iter(u))
    feats, _ = symbol_regime_features(u, sym, s)
    x = feats.to_numpy()
    cols = tuple(i for i, c in enumerate(feats.columns) if c in s.cluster_features)
    n = len(x)
    t0 = n - timed
    refit = []
    for t in (t0 - 2 * s.refit_every, t0 - s.refit_every, t0):
        a = time.perf_counter()
        fit_block((share_inline({"x": x}), t, t + 1, s.window, s, cols))
        refit.append(time.perf_counter() - a)
    # the fitted state the engine keeps between refits
    win = x[t0 - s.window:t0]
    win = win[np.isfinite(win).all(axis=1)]
    z = win[:, list(cols)]
    mean, scale = z.mean(axis=0), z.std(axis=0)
    model = hdbscan.HDBSCAN(min_cluster_size=s.min_cluster_size, min_samples=s.min_samples,
                            prediction_data=True).fit((z - mean) / scale)
    clusters = int(model.labels_.max()) + 1
    clf = (EnvironmentClassifier(c=s.classifier_c).fit(win, model.labels_).params_
           if clusters > 0 else None)
    candles = u[sym]
    tail = s.warmup_bars
    closes = np.column_stack([u[k]["close"].to_numpy() for k in u])  # aligned here (no gaps)
    w = s.corr_window
    costs = []
    for t in range(t0, n):
        a = time.perf_counter()
        row = latest_regime_features(candles.iloc[t - tail + 1:t + 1], s)
        rets = np.diff(np.log(closes[t - w:t + 1]), axis=0)
        level = np.abs(np.corrcoef(rets.T)[0, 1:]).mean()  # the cross-asset level's last row
        full = np.r_[row, level]
        hdbscan.approximate_predict(model, ((full[list(cols)] - mean) / scale)[None, :])
        if clf is not None:
            EnvironmentClassifier.proba(clf, full[None, :])
        costs.append(time.perf_counter() - a)
    from singularity.regimes.features import regime_features

    peer = []
    for t in range(t0, n):
        a = time.perf_counter()
        regime_features(candles.iloc[t - tail + 1:t + 1], s).to_numpy()[-1]
        peer.append(time.perf_counter() - a)
    return {"per_bar_ms_median": round(1e3 * float(np.median(costs)), 3),
            "peer_pandas_features_only_ms_median": round(1e3 * float(np.median(peer)), 3),
            "per_bar_ms_p95": round(1e3 * float(np.percentile(costs, 95)), 3),
            "per_refit_s_median": round(float(np.median(refit)), 3),
            "bars_timed": timed, "clusters_in_timed_fit": clusters}


def watch_costs(u: dict[str, pd.DataFrame], s: RegimeSettings, updates: int, *, live: bool = False) -> dict[str, object]:
    """The engine's regime watch as it runs (``regimes.online.regime_update`` in this process,
    as in the regime worker): every symbol in a temporary store, then one update per new
    candle of the first symbol over the last ``updates`` candles. The first update reads the
    whole store and fits every refit point of the history (a cold worker); later ones resume:
    range reads of the newer candles, the new rows' features, the open block's labels, a refit
    at a refit point. ``live``: the store holds only the candles up to the update's (each new
    candle of every symbol is appended before its update, untimed, as a live engine's fetch
    does); else it holds them all, as in a replay."""
    import tempfile

    from singularity.data.store import CandleStore
    from singularity.regimes.online import regime_update

    sym = next(iter(u))
    with tempfile.TemporaryDirectory() as d:
        store = CandleStore(Path(d))
        idx = u[sym].index[-updates - 1:]
        for k, df in u.items():
            store.write("binance", k, "1h", df.loc[df.index <= idx[0]] if live else df)
        plain: list[float] = []
        refit: list[float] = []
        cpu: list[float] = []  # CPU seconds of the updates without a refit (wall time on a shared
        # machine also counts the waits for a core)
        cold, since, seen, resumed = 0.0, None, 0, 0
        for i, t in enumerate(idx):
            if live and i:
                for k, df in u.items():
                    if t in df.index:
                        store.write("binance", k, "1h", df.loc[[t]])
            a, c = time.perf_counter(), time.process_time()
            out = regime_update(d, "binance", sym, "1h", tuple(u), s, t.isoformat(), since)
            dt = time.perf_counter() - a
            if i == 0:
                cold = dt
            else:
                (refit if out["refits"] > seen else plain).append(dt)
                if out["refits"] == seen:
                    cpu.append(time.process_time() - c)
                resumed += bool(out.get("resumed"))
            since, seen = t.isoformat(), out["refits"]
    return {"store": "appended per candle (live)" if live else "whole history (replay)",
            "cold_update_s": round(cold, 3), "fits_in_history": out["fits"],
            "update_ms_median": round(1e3 * float(np.median(plain)), 2),
            "update_ms_p95": round(1e3 * float(np.percentile(plain, 95)), 2),
            "update_cpu_ms_median": round(1e3 * float(np.median(cpu)), 2),
            "updates_with_refit": len(refit),
            "update_with_refit_ms_median": round(1e3 * float(np.median(refit)), 1) if refit else None,
            "updates_timed": len(plain) + len(refit), "updates_resumed": resumed}


def main() -> None:
    warnings.filterwarnings("ignore", message="Clusterer does not have any defined clusters")
    ap = argparse.ArgumentParser()
    ap.add_argument("--bars", type=int, default=12_500)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--bars-timed", type=int, default=200)
    ap.add_argument("--watch-updates", type=int, default=60)
    ap.add_argument("--only-watch", action="store_true", help="Only the engine watch's costs.")
    ap.add_argument("--watch-live", action="store_true",
                    help="The watch with candles appended to the store as they arrive (else a replay's store).")
    args = ap.parse_args()
    s = RegimeSettings()
    u, source = universe(args.bars)
    common = {"cores": cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2), "data": source,
              "symbols": len(u), "bars": args.bars, "window": s.window,
              "refit_every": s.refit_every}
    if args.only_watch:
        print(json.dumps({"bench": "regimes_engine_watch", **common,
                          **watch_costs(u, s, args.watch_updates, live=args.watch_live),
                          "goal": "per bar < 5 ms, per refit < 2 s",
                          "load_avg_1m_after": round(os.getloadavg()[0], 2)}))
        return
    serial = label_all(u, s, None)  # this process imports hdbscan and sklearn on its first fit
    with WorkerPool(args.workers) as pool:
        pool.map(abs, range(args.workers))  # start the workers outside the timing
        cold = label_all(u, s, pool)  # each worker imports hdbscan and sklearn on its first task
        parallel = label_all(u, s, pool)
    print(json.dumps({"bench": "regimes_label_all", **common, "workers": args.workers,
                      "wall_s": round(parallel, 2), "peer_serial_wall_s": round(serial, 2),
                      "speedup_vs_serial": round(serial / parallel, 2),
                      "wall_s_first_use_of_the_workers": round(cold, 2),
                      "load_avg_1m_after": round(os.getloadavg()[0], 2)}))
    print(json.dumps({"bench": "regimes_engine_costs", **common, **per_bar(u, s, args.bars_timed),
                      "goal": "per bar < 5 ms, per refit < 2 s"}))
    print(json.dumps({"bench": "regimes_engine_watch", **common, **watch_costs(u, s, args.watch_updates),
                      "load_avg_1m_after": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()
