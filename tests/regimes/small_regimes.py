"""Regime settings small enough for tests that run in a second or two (module name unique
across test folders)."""

from __future__ import annotations

from singularity.regimes.settings import RegimeSettings

SMALL = RegimeSettings(
    window=300, refit_every=100, min_cluster_size=30, min_samples=5, persistence=3,
    vol_short=12, vol_long=48, trend_window=24, autocorr_window=48, volume_window=24,
    drawdown_window=48, corr_window=48,
)
