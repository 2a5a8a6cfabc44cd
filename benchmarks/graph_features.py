"""Benchmark: cross-asset graph features on the 8 core pairs x the last N 1h candles.

Prints one JSON line: wall and CPU seconds of ``graph_features`` without and with the GNN
(serial, and wall seconds with a WorkerPool when --workers > 0), the wall time to extend the
series by one candle (trained models memoised), and the CPU-time ratio against
a straightforward peer in the same run on the last --peer-bars bars (pandas rolling
correlation + networkx eigenvector centrality + a per-bar message loop, the way one would
write it without the vectorised kernels).

    .venv/bin/python benchmarks/graph_features.py [--bars 5000] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from singularity.data.importers import read_freqtrade_feather
from singularity.features.graph import graph_features, min_overlap_bars
from singularity.features.settings import GraphSettings

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "binance-spot-2024-2026"
CORE8 = ("BTC", "ETH", "SOL", "XRP", "BNB", "DOGE", "ADA", "LTC")


def load(base: str, bars: int) -> pd.DataFrame:
    return read_freqtrade_feather(DATA / f"{base}_USDT-1h.feather").iloc[-bars:]


def peer(universe: dict[str, pd.DataFrame], s: GraphSettings) -> pd.DataFrame:
    """The same degree / centrality / neighbour return, written the obvious way."""
    import networkx as nx

    close = pd.DataFrame({k: v["close"] for k, v in universe.items()})
    r = np.log(close).diff()
    corr = r.rolling(s.corr_window, min_periods=min_overlap_bars(s)).corr()
    rows = []
    for ts in r.index:
        c = corr.loc[ts]
        g = nx.Graph()
        g.add_nodes_from(c.columns)
        for i in c.columns:
            for j in c.columns:
                if i < j and np.isfinite(c.loc[i, j]) and abs(c.loc[i, j]) >= s.edge_threshold:
                    g.add_edge(i, j, weight=abs(c.loc[i, j]))
        if g.number_of_edges() and nx.is_connected(g):
            cent = nx.eigenvector_centrality_numpy(g, weight="weight")
        else:  # networkx refuses disconnected graphs: the leading eigenvector by hand
            _vals, vecs = np.linalg.eigh(nx.to_numpy_array(g, nodelist=list(c.columns)))
            cent = dict(zip(c.columns, np.abs(vecs[:, -1]), strict=True))
        row = {}
        for i in c.columns:
            w = c.loc[i].drop(i)
            w = w[w.abs() >= s.edge_threshold]
            den = w.abs().sum()
            row[f"{i}_nbr"] = (w * r.loc[ts, w.index]).sum() / den if den > 0 else np.nan
            row[f"{i}_eig"] = cent.get(i, np.nan)
        rows.append(row)
    return pd.DataFrame(rows, index=r.index)


def timed(fn, repeat: int = 1) -> tuple[float, float]:
    """Best (wall seconds, CPU seconds of this process) over ``repeat`` runs."""
    best = (float("inf"), float("inf"))
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        best = min(best, (time.perf_counter() - t0, time.process_time() - c0))
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bars", type=int, default=5000)
    ap.add_argument("--peer-bars", type=int, default=500, help="the peer is slow: fewer bars")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    uni = {b: load(b, args.bars) for b in CORE8}
    plain = GraphSettings(gnn_enabled=False)
    gnn = GraphSettings()
    graph_features(uni, plain)  # numba compile / cache load: not timed
    out: dict[str, object] = {"assets": len(uni), "bars": args.bars}
    out["no_gnn_s"], out["no_gnn_cpu_s"] = timed(lambda: graph_features(uni, plain), repeat=3)
    small = {k: v.iloc[-args.peer_bars :] for k, v in uni.items()}
    ours_small = timed(lambda: graph_features(small, plain), repeat=3)[1]
    peer_small = timed(lambda: peer(small, plain))[1]
    out["peer_bars"] = args.peer_bars
    out["speedup_vs_peer_cpu"] = peer_small / ours_small
    from singularity.features.gnn import clear_model_cache

    def fresh_gnn(pool: object = None) -> None:
        clear_model_cache()  # trained models are memoised: time real retraining
        graph_features(uni, gnn, pool=pool)

    out["gnn_serial_s"], out["gnn_serial_cpu_s"] = timed(fresh_gnn)
    # the live case: one more candle, models of earlier retrain bars reused from the memo
    head = {k: v.iloc[:-1] for k, v in uni.items()}
    fresh_gnn()
    graph_features(head, gnn)
    out["gnn_extend_one_candle_s"] = timed(lambda: graph_features(uni, gnn))[0]
    if args.workers > 0:
        from singularity.runtime.pool import WorkerPool

        with WorkerPool(args.workers) as pool:
            fresh_gnn(pool)  # start the workers, import torch there
            out["gnn_pool_s"] = timed(lambda: fresh_gnn(pool))[0]
        out["workers"] = args.workers
    out["retrainings"] = len(
        range(min_overlap_bars(gnn) + gnn.gnn_train_window, args.bars, gnn.gnn_retrain_every)
    )
    out["load_avg_1m"] = os.getloadavg()[0]  # this machine is shared: read timings with it
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}))


if __name__ == "__main__":
    main()
