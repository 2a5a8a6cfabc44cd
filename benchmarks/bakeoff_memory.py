"""Peak memory of the bake-off stage of a forge cycle on a long history: the whole process
tree's proportional set size (PSS, sampled) while ``run_bakeoff`` fits the default models
through a 2-worker pool on ``--bars`` synthetic 1h candles (the training window: the first
75 %) and ``--features`` random feature columns (the default catalogue has 63 features, the
bake-off reads them all).

The forge's 50,000-bar memory goal measured stage by stage: a whole 50,000-bar cycle takes
longer than this shared machine allows, and the bake-off held the peak (the Transformer's
copies of its windows). The Transformer's epochs are cut (``--epochs``, default 1): every copy
is made before the first epoch, so the peak does not depend on them.

    python benchmarks/bakeoff_memory.py [--bars 50000] [--features 64] [--workers 2] [--epochs 1]

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from forge import TreeSampler, synthetic_candles


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, default=50_000)
    ap.add_argument("--features", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=1)
    a = ap.parse_args()

    from singularity.config import CostSettings
    from singularity.models.bakeoff import run_bakeoff
    from singularity.models.settings import BakeoffSettings, LabelSettings
    from singularity.runtime.pool import WorkerPool

    candles = synthetic_candles(a.bars, 0).iloc[: int(a.bars * 0.75)]
    rng = np.random.default_rng(1)
    F = rng.normal(0, 1, (len(candles), a.features)).cumsum(axis=0) * 0.01 + rng.normal(0, 1, (len(candles), a.features))
    F[:200] = np.nan  # warm-up rows
    features = pd.DataFrame(F, index=candles.index, columns=[f"f{i}" for i in range(a.features)])
    load_before = os.getloadavg()
    with WorkerPool(a.workers) as pool, TreeSampler() as tree:
        t0 = time.perf_counter()
        bake = run_bakeoff(features, candles, labels_settings=LabelSettings(),
                           bakeoff_settings=BakeoffSettings(transformer_epochs=a.epochs),
                           costs=CostSettings(), timeframe="1h", pool=pool)
        wall = time.perf_counter() - t0
    print(json.dumps({
        "benchmark": "bake-off memory", "bars": a.bars, "train_bars": len(candles), "features": a.features,
        "workers": a.workers, "transformer_epochs": a.epochs, "cpus": os.cpu_count(),
        "seconds": round(wall, 1), "cpu_seconds": round(tree.cpu_seconds(), 1),
        "peak_pss_gib": round(tree.peak_pss / 1024**3, 3), "peak_rss_gib": round(tree.peak_rss / 1024**3, 3),
        "winner": bake.winner, "scores": {s.name: round(s.log_loss, 6) for s in bake.scores},
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }))


if __name__ == "__main__":
    main()
