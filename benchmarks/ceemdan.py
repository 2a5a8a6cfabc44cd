"""CEEMDAN windows per second: the numba kernel against PyEMD on the same windows and noise.

Both run single-threaded (PyEMD with ``parallel=False``) on real 1h log-price windows with the
same trials, epsilon and max_imfs, and the same noise realisations; the outputs are compared
too (max |difference| / window std). ``*_cpu``: the same ratio in process CPU time, steadier
than wall time on a shared machine (both sides are single-threaded). ``batch_*``: the feature path, where the windows share
their noise realisations and its EMDs are computed once per batch. Prints one JSON object.

    .venv/bin/python benchmarks/ceemdan.py [--windows 3] [--trials 100] [--window 256]

``bench_ceemdan(...)`` returns the same figures as a dict (used by benchmarks/features.py).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

DATA = Path(os.environ.get(
    "SINGULARITY_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"
)) / "binance-spot-2024-2026"


def _real_windows(count: int, length: int, seed: int) -> list[np.ndarray]:
    import pandas as pd

    logp = np.log(pd.read_feather(DATA / "BTC_USDT-1h.feather")["close"].to_numpy())
    rng = np.random.default_rng(seed)
    return [logp[e - length : e].copy() for e in rng.integers(length, logp.size, size=count)]


def bench_ceemdan(
    windows: int = 3, trials: int = 100, window: int = 256, max_imfs: int = 4,
    epsilon: float = 0.05, repeat_fast: int = 5, seed: int = 0, batch_windows: int = 24,
) -> dict[str, float | int]:
    """Windows per second of ours vs PyEMD (same windows, trials, noise) and their agreement;
    plus the production batch path (windows sharing their noise) against the same PyEMD rate."""
    from PyEMD import CEEMDAN

    from singularity.features.ceemdan import decompose_window, window_noise

    data = _real_windows(windows, window, seed)
    noises = [window_noise(seed + i, trials, window) for i in range(windows)]
    decompose_window(data[0], noises[0][:2], epsilon, max_imfs)  # load the compiled kernel

    ours = []
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(repeat_fast):
        ours = [decompose_window(w, z, epsilon, max_imfs) for w, z in zip(data, noises, strict=True)]
    fast_s = (time.perf_counter() - t0) / repeat_fast
    fast_cpu = (time.process_time() - c0) / repeat_fast

    worst = 0.0
    t0, c0 = time.perf_counter(), time.process_time()
    for w, z, got in zip(data, noises, ours, strict=True):
        ref = CEEMDAN(trials=trials, epsilon=epsilon, parallel=False)
        ref.generate_noise = lambda scale, size, z=z: z  # the same noise realisations
        expected = ref.ceemdan(w, max_imf=max_imfs)
        if expected.shape != got.shape:
            worst = float("inf")
        else:
            worst = max(worst, float(np.abs(expected - got).max() / w.std()))
    ref_s = time.perf_counter() - t0
    ref_cpu = time.process_time() - c0

    # the production path: a batch of windows sharing one set of noise realisations, whose
    # EMDs are computed once (included in the time: a fresh cache)
    from singularity.features.ceemdan import _shared_modes, decompose_batch

    batch = np.stack(_real_windows(batch_windows, window, seed + 1))
    _shared_modes.cache_clear()
    t0, c0 = time.perf_counter(), time.process_time()
    decompose_batch((batch, (trials, epsilon, max_imfs, 16, seed)))
    batch_s = time.perf_counter() - t0
    batch_cpu = time.process_time() - c0

    return {
        "window": window,
        "trials": trials,
        "max_imfs": max_imfs,
        "windows": windows,
        "pyemd_windows_per_s": round(windows / ref_s, 4),
        "numba_windows_per_s": round(windows / fast_s, 2),
        "speedup": round(ref_s / fast_s, 1),
        "speedup_cpu": round(ref_cpu / fast_cpu, 1),
        "batch_windows": batch_windows,
        "batch_windows_per_s": round(batch_windows / batch_s, 2),
        "batch_speedup": round(ref_s / windows / (batch_s / batch_windows), 1),
        "batch_speedup_cpu": round(ref_cpu / windows / (batch_cpu / batch_windows), 1),
        "max_abs_diff_over_std": worst,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--window", type=int, default=256)
    parser.add_argument("--max-imfs", type=int, default=4)
    args = parser.parse_args()
    print(json.dumps(bench_ceemdan(args.windows, args.trials, args.window, args.max_imfs)))


if __name__ == "__main__":
    main()
