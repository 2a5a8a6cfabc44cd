"""Bake-off benchmark: wall time of the whole bake-off for BTC/USDT 1h (the last 5,000 candles
of ../shared/data, holdout cut off as in a forge cycle), and the Transformer's training time
per epoch on this CPU (1 thread and torch's default threads) and on CUDA when there is one.
The logistic baseline's fit on the same samples is the peer the Transformer is measured against.

    .venv/bin/python benchmarks/bakeoff.py [--bars 5000] [--epochs 5]

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from singularity.data.importers import read_freqtrade_feather

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SINGULARITY_SHARED_DATA", REPO.parent / "shared" / "data"))


def load_btc(bars: int) -> pd.DataFrame:
    path = SHARED / "binance-spot-2024-2026" / "BTC_USDT-1h.feather"
    if not path.is_file():
        sys.exit(f"no candles at {path}: this benchmark needs ../shared/data")
    return read_freqtrade_feather(path).iloc[-bars:]


def epoch_seconds(X: np.ndarray, y: np.ndarray, settings: object, *, n_jobs: int | None, device: str) -> float:
    from singularity.models.transformer import TransformerClassifier

    bo = settings  # BakeoffSettings
    m = TransformerClassifier(
        window=bo.transformer_window, d_model=bo.transformer_d_model, n_heads=bo.transformer_heads,  # type: ignore[attr-defined]
        n_layers=bo.transformer_layers, dim_feedforward=2 * bo.transformer_d_model,  # type: ignore[attr-defined]
        epochs=3, batch_size=bo.transformer_batch_size, device=device, n_jobs=n_jobs,  # type: ignore[attr-defined]
    ).fit(X, y)
    return float(np.median(m.epoch_seconds_[1:]))  # the first epoch includes warm-up


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, default=5000)
    ap.add_argument("--epochs", type=int, default=None, help="Transformer epochs in the bake-off")
    args = ap.parse_args()

    import torch

    from singularity.config import Settings
    from singularity.features.factory import FeatureFactory
    from singularity.forge.split import time_split
    from singularity.models.bakeoff import design_matrix, run_bakeoff
    from singularity.models.baseline import LogisticBaseline

    s = Settings()
    bo = s.bakeoff if args.epochs is None else s.bakeoff.model_copy(update={"transformer_epochs": args.epochs})
    candles = load_btc(args.bars)
    t0 = time.perf_counter()
    ready = FeatureFactory(s.features).build({"BTC/USDT": candles}, progress=False).ready("BTC/USDT")
    features_s = time.perf_counter() - t0
    candles = candles.loc[ready.index]
    split = time_split(len(candles), holdout_fraction=s.forge.holdout_fraction, embargo=s.forge.embargo_bars)
    train_f, train_c = ready.iloc[split.train], candles.iloc[split.train]

    t0 = time.perf_counter()
    res = run_bakeoff(train_f, train_c, labels_settings=s.labels, bakeoff_settings=bo, costs=s.costs, timeframe="1h")
    bakeoff_s = time.perf_counter() - t0

    # per-epoch time on the samples of the whole training window
    feats = train_f.select_dtypes(include=["number"]).to_numpy(np.float64)
    y = res.labels["label"].to_numpy()
    W = design_matrix(feats, "transformer", bo.transformer_window)
    ok = np.isfinite(W.reshape(len(W), -1)).all(axis=1) & np.isfinite(y)
    X, yy = W[ok], y[ok]
    t0 = time.perf_counter()
    LogisticBaseline(C=bo.logistic_c).fit(feats[ok], yy)
    logistic_fit_s = time.perf_counter() - t0
    cpu_1 = epoch_seconds(X, yy, bo, n_jobs=1, device="cpu")
    cpu_all = epoch_seconds(X, yy, bo, n_jobs=None, device="cpu")
    cuda = epoch_seconds(X, yy, bo, n_jobs=None, device="cuda") if torch.cuda.is_available() else None

    print(json.dumps({
        "benchmark": "bakeoff",
        "symbol": "BTC/USDT", "timeframe": "1h", "bars": args.bars,
        "train_bars": len(train_c), "samples": int(ok.sum()), "features": feats.shape[1],
        "folds": res.folds, "embargo": res.embargo, "transformer_epochs": bo.transformer_epochs,
        "features_seconds": round(features_s, 2),
        "bakeoff_wall_seconds": round(bakeoff_s, 2),
        "fit_seconds": {sc.name: round(sc.fit_seconds, 2) for sc in res.scores},
        "winner": res.winner,
        "models": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in sc.to_dict().items()}
                   for sc in res.scores],
        "transformer_epoch_seconds_cpu_1_thread": round(cpu_1, 3),
        "transformer_epoch_seconds_cpu_default_threads": round(cpu_all, 3),
        "torch_default_threads": torch.get_num_threads(),
        "transformer_epoch_seconds_cuda": None if cuda is None else round(cuda, 3),
        "logistic_fit_seconds": round(logistic_fit_s, 3),
        "transformer_epoch_vs_logistic_fit": round(cpu_1 / logistic_fit_s, 1),
        "cpu_count": os.cpu_count(), "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
