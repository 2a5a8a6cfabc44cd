"""Cross-asset graph features (issue 3, family 4).

Nodes are the universe's assets; the edge between two assets at bar t is the correlation of
their log returns over the trailing ``corr_window`` bars ending at t, counted only on bars
where both have a return (optionally also the lagged correlation: who leads whom). Per asset
and bar: thresholded degree, weighted degree (strength), eigenvector centrality, one step of
message passing over the edges (neighbour-weighted returns), and, from ``gnn.py``, the
embedding of a small graph network trained walk-forward.

Gaps: the assets are aligned on the union of their timestamps and a missing candle stays
missing. An asset has a return at row k only when it has candles at rows k-1 and k; without
one it is not a node of the graph at k (no edges, no message), so a stale price is never
carried into a later bar. All values at row k use rows <= k only.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from numba import njit
from threadpoolctl import threadpool_limits

from singularity.errors import ConfigError, DataError
from singularity.features.catalogue import FeatureSpec
from singularity.features.settings import GraphSettings

FAMILY = "graph"
_EIGH_CHUNK = 4096  # bars per batched eigh call: bounds the memory of the adjacency stack


# --------------------------------------------------------------------------- kernels (arrays)


@njit(cache=True)
def rolling_pair_corr(
    x: np.ndarray, y: np.ndarray, window: int, min_obs: int, symmetric: bool
) -> np.ndarray:
    """corr(x[:, i], y[:, j]) over rows [k-window+1, k] where both are finite, per row k.

    Returns (T, N, N); NaN where fewer than ``min_obs`` rows overlap, a variance is zero,
    or i == j when ``symmetric`` (x is y: the diagonal is not an edge). Rolling sums of
    products, so O(T * N^2) whatever the window.
    """
    t_len, n = x.shape
    out = np.full((t_len, n, n), np.nan)
    for i in range(n):
        j0 = i + 1 if symmetric else 0
        for j in range(j0, n):
            cnt = 0
            sx = 0.0
            sy = 0.0
            sxx = 0.0
            syy = 0.0
            sxy = 0.0
            for k in range(t_len):
                a = x[k, i]
                b = y[k, j]
                if np.isfinite(a) and np.isfinite(b):
                    cnt += 1
                    sx += a
                    sy += b
                    sxx += a * a
                    syy += b * b
                    sxy += a * b
                if k >= window:
                    a = x[k - window, i]
                    b = y[k - window, j]
                    if np.isfinite(a) and np.isfinite(b):
                        cnt -= 1
                        sx -= a
                        sy -= b
                        sxx -= a * a
                        syy -= b * b
                        sxy -= a * b
                if cnt < min_obs or cnt < 2:
                    continue
                vx = sxx - sx * sx / cnt
                vy = syy - sy * sy / cnt
                # relative floor: rolling subtraction leaves ~1e-16 residue on a flat window
                if vx <= 1e-12 * sxx or vy <= 1e-12 * syy or vx <= 0.0 or vy <= 0.0:
                    continue
                c = (sxy - sx * sy / cnt) / math.sqrt(vx * vy)
                c = min(1.0, max(-1.0, c))
                out[k, i, j] = c
                if symmetric:
                    out[k, j, i] = c
    return out


@njit(cache=True)
def graph_node_stats(
    rho: np.ndarray, lead: np.ndarray, r: np.ndarray, threshold: float, use_lead: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per row and node: degree, strength, neighbour return, lead-lag return, adjacency.

    A node is active at row k when it has a return there. Valid neighbours of i: active j != i
    with a finite correlation. degree = share of valid neighbours with |rho| >= threshold;
    strength = mean |rho| over valid neighbours; nbr = sum_j w_ij r_j / sum_j |w_ij| over the
    edges (|rho| >= threshold); lead = the same with the lagged correlations, no threshold.
    adj[k] is the thresholded |rho| among active nodes (input of the centrality).
    """
    t_len, n = r.shape
    degree = np.full((t_len, n), np.nan)
    strength = np.full((t_len, n), np.nan)
    nbr = np.full((t_len, n), np.nan)
    lead_ret = np.full((t_len, n), np.nan)
    adj = np.zeros((t_len, n, n))
    for k in range(t_len):
        for i in range(n):
            if not np.isfinite(r[k, i]):
                continue
            n_valid = 0
            n_edges = 0
            s_abs = 0.0
            num = 0.0
            den = 0.0
            lnum = 0.0
            lden = 0.0
            for j in range(n):
                if j == i or not np.isfinite(r[k, j]):
                    continue
                w = rho[k, i, j]
                if np.isfinite(w):
                    n_valid += 1
                    aw = abs(w)
                    s_abs += aw
                    if aw >= threshold:
                        n_edges += 1
                        num += w * r[k, j]
                        den += aw
                        adj[k, i, j] = aw
                if use_lead:
                    lw = lead[k, i, j]
                    if np.isfinite(lw):
                        lnum += lw * r[k, j]
                        lden += abs(lw)
            if n_valid > 0:
                degree[k, i] = n_edges / n_valid
                strength[k, i] = s_abs / n_valid
            if den > 0.0:
                nbr[k, i] = num / den
            if lden > 0.0:
                lead_ret[k, i] = lnum / lden
    return degree, strength, nbr, lead_ret, adj


def eigenvector_centrality(adj: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Leading eigenvector of each row's symmetric non-negative adjacency, per node.

    Scaled by sqrt(number of nodes with neighbours) so a complete, uniform graph gives 1 to
    every node whatever the universe size; 0 for a row without any edge; NaN where ``valid``
    is False. numpy's batched ``eigh`` treats each row's matrix on its own, so a row's value
    does not depend on the other rows.
    """
    t_len, n = valid.shape
    out = np.full((t_len, n), np.nan)
    n_nodes = valid.sum(axis=1)
    # Threaded BLAS on thousands of tiny matrices spins: measured 28x the CPU of one thread
    # (34 assets x 12,584 bars on 2 cores), so one thread here whatever the caller set.
    with threadpool_limits(limits=1, user_api="blas"):
        for start in range(0, t_len, _EIGH_CHUNK):
            stop = min(start + _EIGH_CHUNK, t_len)
            w, v = np.linalg.eigh(adj[start:stop])
            top = np.abs(v[:, :, -1]) * np.sqrt(n_nodes[start:stop])[:, None]
            top[w[:, -1] <= 1e-12] = 0.0
            out[start:stop] = top
    out[~valid] = np.nan
    return out


def log_returns(close: np.ndarray) -> np.ndarray:
    """r[k] = log(close[k] / close[k-1]) where both rows exist, else NaN (row 0 is NaN)."""
    r = np.full(close.shape, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        r[1:] = np.log(close[1:]) - np.log(close[:-1])
    return r


# ----------------------------------------------------------------------------- pandas layer


def min_overlap_bars(settings: GraphSettings) -> int:
    """Rows with a return pair a correlation needs before it counts (at least 3)."""
    return max(3, math.ceil(settings.corr_min_overlap * settings.corr_window))


def align_closes(universe: Mapping[str, pd.DataFrame]) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """Validate the universe and return (union index, closes (T, N) with NaN for gaps)."""
    if len(universe) < 2:
        raise DataError(
            f"graph features need at least 2 assets, got {len(universe)} ({', '.join(universe)})"
        )
    spans: dict[str, tuple[pd.Timestamp, pd.Timestamp]] = {}
    for sym, frame in universe.items():
        if not isinstance(frame, pd.DataFrame) or "close" not in frame.columns:
            raise DataError(f"graph features: {sym} has no 'close' column")
        if len(frame) == 0:
            raise DataError(f"graph features: {sym} has no candles")
        idx = frame.index
        if not isinstance(idx, pd.DatetimeIndex) or idx.tz is None:
            raise DataError(f"graph features: {sym} needs a tz-aware DatetimeIndex (UTC)")
        if not idx.is_monotonic_increasing or not idx.is_unique:
            raise DataError(f"graph features: {sym} timestamps are not strictly increasing")
        close = frame["close"].to_numpy(dtype="float64")
        bad = ~np.isfinite(close) | (close <= 0)
        if bad.any():
            at = idx[int(np.flatnonzero(bad)[0])]
            raise DataError(f"graph features: {sym} has a NaN or non-positive close at {at}")
        spans[sym] = (idx[0], idx[-1])
    late = max(spans, key=lambda s: spans[s][0])
    early = min(spans, key=lambda s: spans[s][1])
    if spans[late][0] > spans[early][1]:
        raise DataError(
            f"graph features: assets do not overlap in time: {early} ends at {spans[early][1]} "
            f"before {late} starts at {spans[late][0]}"
        )
    utc = [f.index.tz_convert("UTC") for f in universe.values()]
    index = utc[0]
    for idx in utc[1:]:
        index = index.union(idx)
    index = pd.DatetimeIndex(index, name="timestamp")
    closes = np.column_stack(
        [
            pd.Series(f["close"].to_numpy("float64"), index=idx).reindex(index).to_numpy()
            for f, idx in zip(universe.values(), utc, strict=True)
        ]
    )
    return index, closes


def _specs(settings: GraphSettings) -> list[FeatureSpec]:
    base = {"corr_window": settings.corr_window, "min_overlap": min_overlap_bars(settings)}
    edge = {**base, "edge_threshold": settings.edge_threshold}
    warm = min_overlap_bars(settings)
    specs = [
        FeatureSpec(
            "graph_degree",
            FAMILY,
            edge,
            warm,
            "Share of the other assets whose return correlation with this one is above the edge threshold",
        ),
        FeatureSpec(
            "graph_strength",
            FAMILY,
            base,
            warm,
            "Mean absolute return correlation with the other assets (weighted degree)",
        ),
        FeatureSpec(
            "graph_eigcent",
            FAMILY,
            edge,
            warm,
            "Eigenvector centrality in the thresholded correlation graph (1 = as central as a uniform graph)",
        ),
        FeatureSpec(
            "graph_nbr_ret",
            FAMILY,
            edge,
            warm,
            "Correlation-weighted mean of the neighbours' latest log returns (one message-passing step)",
        ),
    ]
    if settings.lead_lag:
        specs.append(
            FeatureSpec(
                "graph_leadlag_ret",
                FAMILY,
                base,
                warm + 1,
                "Neighbours' latest returns weighted by corr(own return, their previous return)",
            )
        )
    if settings.gnn_enabled:
        gnn_params = {
            **edge,
            "embedding_dim": settings.gnn_embedding_dim,
            "hidden": settings.gnn_hidden,
            "retrain_every": settings.gnn_retrain_every,
            "train_window": settings.gnn_train_window,
            "epochs": settings.gnn_epochs,
            "seed": settings.seed,
        }
        gnn_warm = warm + settings.gnn_train_window
        for d in range(settings.gnn_embedding_dim):
            specs.append(
                FeatureSpec(
                    f"graph_gnn_emb_{d}",
                    FAMILY,
                    gnn_params,
                    gnn_warm,
                    f"Dimension {d} of a walk-forward graph-convolution embedding of the asset",
                )
            )
        specs.append(
            FeatureSpec(
                "graph_gnn_pup",
                FAMILY,
                gnn_params,
                gnn_warm,
                "Walk-forward graph network's probability that the next bar's return is positive",
            )
        )
    return specs


def graph_feature_specs(settings: GraphSettings) -> list[FeatureSpec]:
    """The catalogue of this family for ``settings`` (column order of ``graph_features``)."""
    return _specs(settings)


def graph_features(
    universe: dict[str, pd.DataFrame], settings: GraphSettings, *, pool: Any = None
) -> tuple[dict[str, pd.DataFrame], list[FeatureSpec]]:
    """Graph features of every asset of ``universe``, each indexed like its own candles.

    ``pool``: a ``WorkerPool`` (``.map(fn, items)``) for the GNN retrainings, or None (serial).
    """
    index, closes = align_closes(universe)
    r = log_returns(closes)
    window = settings.corr_window
    min_obs = min_overlap_bars(settings)
    rho = rolling_pair_corr(r, r, window, min_obs, True)
    if settings.lead_lag:
        lagged = np.full_like(r, np.nan)
        lagged[1:] = r[:-1]
        lead = rolling_pair_corr(r, lagged, window, min_obs, False)
        for i in range(r.shape[1]):
            lead[:, i, i] = np.nan  # own autocorrelation is not a neighbour
    else:
        lead = rho
    degree, strength, nbr, lead_ret, adj = graph_node_stats(
        rho, lead, r, float(settings.edge_threshold), bool(settings.lead_lag)
    )
    eigcent = eigenvector_centrality(adj, np.isfinite(degree))
    columns: dict[str, np.ndarray] = {
        "graph_degree": degree,
        "graph_strength": strength,
        "graph_eigcent": eigcent,
        "graph_nbr_ret": nbr,
    }
    if settings.lead_lag:
        columns["graph_leadlag_ret"] = lead_ret
    if settings.gnn_enabled:
        if importlib.util.find_spec("torch") is None:  # torch is the optional 'deep' extra
            raise ConfigError(
                "features.graph.gnn_enabled needs PyTorch (pip install 'singularity[deep]') "
                "or set features.graph.gnn_enabled = false"
            )
        from singularity.features import gnn

        emb, pup = gnn.walk_forward_embeddings(
            r=r, rho=rho, stats=columns, settings=settings, pool=pool
        )
        for d in range(emb.shape[2]):
            columns[f"graph_gnn_emb_{d}"] = emb[:, :, d]
        columns["graph_gnn_pup"] = pup
    specs = _specs(settings)
    names = [s.name for s in specs]
    out: dict[str, pd.DataFrame] = {}
    for n_i, (sym, frame) in enumerate(universe.items()):
        table = pd.DataFrame({name: columns[name][:, n_i] for name in names}, index=index)
        own = frame.index.tz_convert("UTC")
        table = table.reindex(own)
        table.index = frame.index.rename("timestamp")
        out[sym] = table
    return out, specs
