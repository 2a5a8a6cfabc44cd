"""Regime recovery: how well the walk-forward labels find planted regimes, and how many bars
of a real market get a regime at all.

Prints one JSON line per seed of the 3-regime synthetic market (``planted_regime_market``,
6,000 bars, the recovery test's settings): the share of post-warm-up bars with a regime, the
adjusted Rand index on those bars, and the stricter ARI over every post-warm-up bar with
"unclassified" counted as a class of its own; then one line for real BTC/USDT 1h (the last
--btc-bars bars, the 8 core pairs feeding the cross-asset level, default settings): the
labelled share after warm-up and the refits that found no cluster.

    .venv/bin/python benchmarks/regime_recovery.py [--seeds 1 2 3 4 5] [--btc-bars 8000]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from sklearn.metrics import adjusted_rand_score

from singularity.regimes.analysis import analyse_symbol
from singularity.regimes.settings import RegimeSettings
from singularity.regimes.synthetic import planted_regime_market

RECOVERY = RegimeSettings(window=1500, refit_every=250, min_cluster_size=100, min_samples=5)
"""The recovery test's settings (tests/regimes/test_recovery.py)."""


def synthetic(seed: int, s: RegimeSettings) -> dict[str, object]:
    universe, truth = planted_regime_market(2, n_bars=6000, seed=seed)
    res = analyse_symbol(universe, "S0/USDT", s).result
    after = ~res.warmup
    lab = res.labels
    labelled = after & (lab >= 0)
    return {"seed": seed, "labelled_share": round(float(labelled.sum() / after.sum()), 3),
            "ari_labelled": round(float(adjusted_rand_score(truth[labelled], lab[labelled])), 3),
            "ari_all": round(float(adjusted_rand_score(truth[after], lab[after])), 3),
            "fallback_blocks": res.fallback_blocks, "fits": res.fits}


def btc(bars: int, s: RegimeSettings) -> dict[str, object] | None:
    bench = Path(__file__).resolve().parent
    import sys

    sys.path.insert(0, str(bench))
    from regimes import CORE8, DATA, load  # the regimes benchmark's loader

    if not DATA.is_dir():
        return None
    universe = {f"{b}/USDT": load(b, bars) for b in CORE8}
    a = analyse_symbol(universe, "BTC/USDT", s)
    res = a.result
    after = ~res.warmup
    return {"market": "BTC/USDT 1h", "bars": bars, "post_warmup_bars": int(after.sum()),
            "labelled_share": round(float((after & (res.labels >= 0)).sum() / after.sum()), 3),
            "fits": res.fits, "fallback_blocks": res.fallback_blocks,
            "regimes": {int(k): a.names[k] for k in a.names}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="*", default=[1, 2, 3, 4, 5])
    ap.add_argument("--btc-bars", type=int, default=8000)
    args = ap.parse_args()
    t0 = time.perf_counter()
    common = {"cores": os.cpu_count(), "load": round(os.getloadavg()[0], 2)}
    for seed in args.seeds:
        print(json.dumps({"bench": "regime_recovery", **common, **synthetic(seed, RECOVERY)}), flush=True)
    if args.btc_bars:
        out = btc(args.btc_bars, RegimeSettings())
        if out is not None:
            print(json.dumps({"bench": "regime_coverage", **common, **out}), flush=True)
    print(json.dumps({"bench": "regime_recovery_total", "seconds": round(time.perf_counter() - t0, 1),
                      "load_end": round(os.getloadavg()[0], 2)}), flush=True)


if __name__ == "__main__":
    main()
