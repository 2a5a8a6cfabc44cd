"""CEEMDAN features: a causal, rolling CEEMDAN of log prices (numba kernel in ``emd_kernels``).

For a decomposition bar t the trailing window [t-W+1, t] of log closes is decomposed by
CEEMDAN (PyEMD's algorithm, ported; equal to PyEMD on the same noise within 1e-9 of the
window's std, see ``emd_kernels``) with ``trials`` N(0, 1) noise realisations drawn from
``settings.seed``. Every window uses the same realisations (common random numbers): a window's
features depend on its prices only, the noise-induced jitter between neighbouring windows
cancels instead of adding to the features, and the noise EMDs (about half of the work) are
computed once per process rather than once per window. ``settings.noise_scale`` is PyEMD's
``epsilon`` (noise std relative to the signal's).

Per IMF k (1 = fastest) the window gives, in units of the window's std of one-bar log returns
(``sigma``) so that assets compare:

* ``ceemdan_imf{k}_last``: the IMF's value at bar t / sigma;
* ``ceemdan_imf{k}_amp``: mean |IMF| over the last ``amplitude_bars`` bars / sigma;
* ``ceemdan_imf{k}_freq``: frequency at the window's end in cycles per bar, 0.5 / the mean
  spacing of its last (up to 4) zero crossings, or / the time since its last crossing when
  that is longer (a mode that has slowed down is not reported as fast), 0 without crossings;

plus ``ceemdan_residue_slope``: the least-squares slope of the residue (trend) over the last
``amplitude_bars`` bars / sigma, per bar. An IMF that the decomposition did not produce (the
residue had no oscillation left) reads 0; a flat window reads 0 everywhere.

Stride: windows are decomposed at the first bar of every block of ``stride`` bar durations
(blocks counted from the Unix epoch, so alignment does not depend on where the series starts)
and at the first full window; other bars hold the last decomposed value. Every value at t thus
uses bars <= t only. Recomputing on ``close.iloc[a:]`` reproduces the rows from the first
block start at or after ``a + W - 1`` (the factory's tail recomputation relies on it).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Protocol

import numpy as np
import pandas as pd

from singularity.errors import DataError
from singularity.features.catalogue import FeatureSpec
from singularity.features.settings import CeemdanSettings

FAMILY = "ceemdan"
# a batch is ~this many windows at least, so pool dispatch costs little next to the work
MIN_BATCH = 8
BATCHES_PER_WORKER = 4
SERIAL_BATCH = 1024


class MapPool(Protocol):
    """What the family needs from ``singularity.runtime.pool.WorkerPool``."""

    def map(self, fn: Any, items: Any) -> Any: ...


def feature_names(settings: CeemdanSettings) -> list[str]:
    names = []
    for k in range(1, settings.max_imfs + 1):
        names += [f"ceemdan_imf{k}_last", f"ceemdan_imf{k}_amp", f"ceemdan_imf{k}_freq"]
    return [*names, "ceemdan_residue_slope"]


def catalogue(settings: CeemdanSettings) -> list[FeatureSpec]:
    params = {
        "window": settings.window,
        "trials": settings.trials,
        "noise_scale": settings.noise_scale,
        "max_imfs": settings.max_imfs,
        "stride": settings.stride,
        "amplitude_bars": settings.amplitude_bars,
        "seed": settings.seed,
    }
    warmup = settings.window - 1
    a = settings.amplitude_bars
    specs = []
    for k in range(1, settings.max_imfs + 1):
        specs += [
            FeatureSpec(f"ceemdan_imf{k}_last", FAMILY, params, warmup,
                        f"CEEMDAN IMF {k} of trailing log prices: value at the bar / return std"),
            FeatureSpec(f"ceemdan_imf{k}_amp", FAMILY, params, warmup,
                        f"CEEMDAN IMF {k}: mean |IMF| over the last {a} bars / return std"),
            FeatureSpec(f"ceemdan_imf{k}_freq", FAMILY, params, warmup,
                        f"CEEMDAN IMF {k}: frequency at the bar from zero-crossing spacing "
                        "(cycles per bar)"),
        ]
    specs.append(FeatureSpec("ceemdan_residue_slope", FAMILY, params, warmup,
                             f"CEEMDAN residue (trend) slope over the last {a} bars / return std"))
    return specs


def ceemdan_tail(settings: CeemdanSettings) -> tuple[int, int]:
    """Tail recomputation contract (read by the factory): (context rows, start alignment).

    Recomputing on ``close.iloc[a:]`` reproduces every row from ``a + window + stride - 1``
    on (a block holds at most ``stride`` rows, gaps only shorten it); any start row works.
    """
    return settings.window + settings.stride, 1


def window_noise(seed: int, trials: int, length: int) -> np.ndarray:
    """The N(0, 1) noise realisations (trials x length) every window of these settings uses."""
    return np.random.default_rng(seed).standard_normal((trials, length))


@lru_cache(maxsize=4)
def _shared_modes(seed: int, trials: int, length: int, max_imfs: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The decomposed noise, once per process and settings."""
    from singularity.features.emd_kernels import noise_modes

    modes, counts = noise_modes(window_noise(seed, trials, length), max_imfs)
    modes.flags.writeable = False
    return modes, counts


def decompose_window(
    log_window: np.ndarray, noise: np.ndarray, epsilon: float, max_imfs: int
) -> np.ndarray:
    """CEEMDAN of one window with the given noise: rows = cIMFs (fastest first) then residue."""
    from singularity.features.emd_kernels import ceemdan

    out = np.empty((max_imfs + 1, log_window.shape[0]))
    rows = ceemdan(np.ascontiguousarray(log_window, dtype=np.float64),
                   np.ascontiguousarray(noise, dtype=np.float64), float(epsilon), max_imfs, out)
    return out[:rows]


def end_frequency(imf: np.ndarray) -> float:
    """Cycles per bar at the end of ``imf`` from its last (up to 4) zero crossings."""
    s1, s2 = imf[:-1], imf[1:]
    idx = np.flatnonzero((s1 * s2 < 0) | (s1 == 0))
    if idx.size == 0:
        return 0.0
    a, b = s1[idx], s2[idx]
    # crossing position by linear interpolation between the two bars around it
    frac = np.divide(a, a - b, out=np.zeros_like(a), where=a != 0)
    z = (idx + frac)[-4:]
    since_last = (imf.shape[0] - 1) - z[-1]
    spacing = (z[-1] - z[0]) / (z.size - 1) if z.size > 1 else z[0]
    half_period = max(spacing, since_last, 1.0)  # at most Nyquist (0.5 cycles per bar)
    return 0.5 / half_period


def _slope(y: np.ndarray) -> float:
    x = np.arange(y.shape[0], dtype=np.float64)
    x -= x.mean()
    return float(np.dot(x, y - y.mean()) / np.dot(x, x))


def window_features(
    log_window: np.ndarray, components: np.ndarray, max_imfs: int, amplitude_bars: int
) -> np.ndarray:
    """3 features per IMF (last, amp, freq) then the residue slope, scaled by the return std."""
    out = np.zeros(3 * max_imfs + 1)
    sigma = float(np.std(np.diff(log_window)))
    if sigma == 0.0:
        return out
    a = min(amplitude_bars, log_window.shape[0])
    n_imfs = components.shape[0] - 1
    for k in range(min(n_imfs, max_imfs)):
        imf = components[k]
        out[3 * k] = imf[-1] / sigma
        out[3 * k + 1] = float(np.mean(np.abs(imf[-a:]))) / sigma
        out[3 * k + 2] = end_frequency(imf)
    out[-1] = _slope(components[-1][-a:]) / sigma
    return out


def decompose_batch(task: tuple[np.ndarray, tuple[int, float, int, int, int]]) -> np.ndarray:
    """Pool task: features of a batch of windows (the rows of ``windows``).

    Module-level and fed plain arrays so it crosses process boundaries; the noise comes from
    the seed, so results do not depend on how windows are batched.
    """
    from singularity.features.emd_kernels import ceemdan_modes

    windows, (trials, epsilon, max_imfs, amplitude_bars, seed) = task
    length = windows.shape[1]
    modes, counts = _shared_modes(seed, trials, length, max_imfs)
    out = np.zeros((windows.shape[0], 3 * max_imfs + 1))
    comps = np.empty((max_imfs + 1, length))
    for i in range(windows.shape[0]):
        w = np.ascontiguousarray(windows[i], dtype=np.float64)
        if np.std(w) == 0.0:  # flat window: nothing to decompose, features read 0
            continue
        rows = ceemdan_modes(w, modes, counts, float(epsilon), max_imfs, comps)
        out[i] = window_features(w, comps[:rows], max_imfs, amplitude_bars)
    return out


def _seconds(index: pd.DatetimeIndex) -> np.ndarray:
    return index.as_unit("ns").asi8 // 1_000_000_000


def decomposition_rows(index: pd.DatetimeIndex, window: int, stride: int) -> np.ndarray:
    """Positions decomposed: the first full window, then the first bar of each stride block."""
    n = len(index)
    if n < window:
        return np.empty(0, dtype=np.int64)
    if stride == 1:
        return np.arange(window - 1, n, dtype=np.int64)
    secs = _seconds(index)
    steps = np.diff(secs)
    bar = int(steps[steps > 0].min()) if (steps > 0).any() else 1
    block = secs // (bar * stride)
    starts = np.flatnonzero(np.diff(block) != 0) + 1
    starts = starts[starts > window - 1]
    return np.concatenate(([window - 1], starts)).astype(np.int64)


def _validate(close: pd.Series) -> None:
    if not isinstance(close, pd.Series) or not isinstance(close.index, pd.DatetimeIndex):
        raise DataError("ceemdan_features needs a close Series with a DatetimeIndex")
    if not close.index.is_monotonic_increasing or close.index.has_duplicates:
        raise DataError("ceemdan_features: the close index must be strictly increasing")
    values = close.to_numpy(dtype=np.float64)
    if not np.isfinite(values).all() or (values <= 0).any():
        bad = close.index[~(np.isfinite(values) & (values > 0))][0]
        raise DataError(f"ceemdan_features: close must be finite and > 0 (bad value at {bad})")


def _batches(n: int, pool: MapPool | None) -> list[slice]:
    if n == 0:
        return []
    if pool is None:  # bounded batches keep the window copies small on long series
        return [slice(i, min(i + SERIAL_BATCH, n)) for i in range(0, n, SERIAL_BATCH)]
    workers = int(getattr(pool, "workers", None) or getattr(pool, "n_workers", None) or 2)
    size = max(MIN_BATCH, math.ceil(n / (workers * BATCHES_PER_WORKER)))
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def ceemdan_features(
    close: pd.Series, settings: CeemdanSettings, *, pool: MapPool | None = None
) -> tuple[pd.DataFrame, list[FeatureSpec]]:
    """Rolling causal CEEMDAN features of ``close`` (see the module docstring).

    Returns a frame indexed like ``close`` (NaN on the first ``window - 1`` rows) and its
    catalogue. ``pool`` (anything with ``map(fn, items)`` returning results in order) spreads
    batches of windows over workers; None computes serially. Results are the same either way.
    """
    _validate(close)
    names = feature_names(settings)
    specs = catalogue(settings)
    n, w = len(close), settings.window
    values = np.full((n, len(names)), np.nan)
    rows = decomposition_rows(close.index, w, settings.stride)
    if rows.size:
        logp = np.log(close.to_numpy(dtype=np.float64))
        windows = np.lib.stride_tricks.sliding_window_view(logp, w)[rows - (w - 1)]
        params = (settings.trials, settings.noise_scale, settings.max_imfs,
                  settings.amplitude_bars, settings.seed)
        tasks = ((np.ascontiguousarray(windows[s]), params) for s in _batches(rows.size, pool))
        results = (map(decompose_batch, tasks) if pool is None
                   else pool.map(decompose_batch, list(tasks)))
        computed = np.concatenate(list(results), axis=0)
        # hold each decomposition until the next one (rows between are causal copies)
        owner = np.searchsorted(rows, np.arange(w - 1, n), side="right") - 1
        values[w - 1:] = computed[owner]
    frame = pd.DataFrame(values, index=close.index, columns=names)
    return frame, specs
