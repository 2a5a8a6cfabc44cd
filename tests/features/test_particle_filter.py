"""Particle filter: tracks a simulated series whose true state is known; causal; seeded."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from singularity.features.causality import assert_causal
from singularity.features.particle_filter import (
    FilterState,
    _systematic_resample,
    particle_filter_features,
    particle_filter_frame,
    run_filter,
)
from singularity.features.settings import ParticleFilterSettings

SETTINGS = ParticleFilterSettings()


def _simulate(n: int = 2000, seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Log prices from the filter's own model family with a known path of (level, trend, h)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    h = 2 * np.log(0.01 * np.exp(0.7 * np.sin(t / 300)))  # vol swings between 0.5 % and 2 %
    trend = 0.004 * np.sin(t / 400)
    level = np.empty(n)
    level[0] = np.log(100.0)
    for i in range(1, n):
        level[i] = level[i - 1] + trend[i - 1] + np.exp(h[i] / 2) * rng.normal()
    y = level + 0.5 * np.exp(h / 2) * rng.normal(size=n)
    return y, level, trend, h


def test_tracks_known_state() -> None:
    y, level, trend, h = _simulate()
    lv, tr, logvol, ess, _ = run_filter(y, SETTINGS)
    w = SETTINGS.warmup
    vol = np.exp(h / 2)
    level_err = np.sqrt(np.mean(((lv - level) / vol)[w:] ** 2))
    obs_err = np.sqrt(np.mean(((y - level) / vol)[w:] ** 2))
    assert level_err < 0.95 * obs_err  # filtering beats the raw observation (0.46 vs 0.51)
    assert np.mean(np.abs(logvol - h / 2)[w:]) < 0.2  # log-vol within ~20 % (seen: 0.12)
    assert np.corrcoef(logvol[w:], h[w:])[0, 1] > 0.9
    assert np.corrcoef(tr[w:], trend[w:])[0, 1] > 0.6  # seen: 0.77
    assert ((ess > 0) & (ess <= 1)).all()


def test_seeded_and_deterministic() -> None:
    y = _simulate(300)[0]
    a = run_filter(y, SETTINGS)[:4]
    b = run_filter(y, SETTINGS)[:4]
    c = run_filter(y, ParticleFilterSettings(seed=8))[:4]
    for x, z in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, z)
    assert not np.array_equal(a[0], c[0])


def test_causal_and_scale_free() -> None:
    y = _simulate(600)[0]
    idx = pd.date_range("2024-01-01", periods=len(y), freq="1h", tz="UTC", name="timestamp")
    close = np.exp(y)
    c = pd.DataFrame({"open": close, "high": close, "low": close, "close": close,
                      "volume": 1.0}, index=idx)
    assert_causal(lambda d: particle_filter_features(d, SETTINGS), c, points=5, rtol=0, atol=0)
    f, specs = particle_filter_features(c, SETTINGS)
    assert list(f.columns) == [s.name for s in specs]
    g, _ = particle_filter_features(c * 1000.0, SETTINGS)
    # a price level shift moves only the log level: every feature is unchanged
    pd.testing.assert_frame_equal(f, g, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    ("w", "u0", "expected"),
    [([0.25, 0.5, 0.0, 0.25], 0.01, [0, 1, 1, 3]),  # a zero weight is never drawn
     ([0.1, 0.2, 0.3, 0.4], 0.5, [1, 2, 3, 3])],
)
def test_systematic_resampling(w: list[float], u0: float, expected: list[int]) -> None:
    np.testing.assert_array_equal(_systematic_resample(np.array(w), u0), expected)


def test_resumed_filter_equals_a_full_run() -> None:
    y = _simulate(500)[0]
    idx = pd.date_range("2024-01-01", periods=len(y), freq="1h", tz="UTC", name="timestamp")
    c = pd.DataFrame({"close": np.exp(y)}, index=idx)
    full, end = particle_filter_frame(c, SETTINGS)
    head, state = particle_filter_frame(c.iloc[:321], SETTINGS)
    # through plain arrays, as the cache stores it
    state = FilterState.from_arrays({k: v.copy() for k, v in state.to_arrays().items()})
    tail, end2 = particle_filter_frame(c.iloc[321:], SETTINGS, state)
    pd.testing.assert_frame_equal(pd.concat([head, tail]), full, rtol=0, atol=0)
    assert end2.rows == end.rows == 500
    np.testing.assert_array_equal(end2.level, end.level)
