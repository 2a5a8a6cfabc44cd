"""Regime settings (section ``[features.regimes]``). Light module: no heavy imports here."""

from __future__ import annotations

from pydantic import Field, model_validator

from singularity.settings_base import FrozenModel

CROSS_COLUMN = "cross_corr"
BASE_COLUMNS = ("log_vol_short", "log_vol_long", "vol_ratio", "trend", "efficiency",
                "autocorr", "volume_z", "drawdown")
ALL_COLUMNS = (*BASE_COLUMNS, CROSS_COLUMN)
"""The regime features' column names (``features.py`` computes them)."""


class RegimeSettings(FrozenModel):
    enabled: bool = False
    """Add the regime one-hot and probability columns to the feature set (the
    ``singularity regimes`` command works either way). Off by default: the first labels
    need ``warmup_bars + window`` bars of history."""
    window: int = Field(default=1500, ge=20)
    """Closed bars each HDBSCAN fit sees (the trailing window ending at the bar before)."""
    refit_every: int = Field(default=250, ge=1)
    """Bars between refits; the bars in between are assigned to the last fit's clusters."""
    min_cluster_size: int = Field(default=60, ge=5)
    min_samples: int | None = Field(default=10, ge=1)
    """HDBSCAN's density smoothing (None = min_cluster_size). Small values let clusters reach
    into their sparser edges: with None, 7 of 26 refits of BTC 1h found no cluster at all."""
    cluster_features: tuple[str, ...] = ("log_vol_short", "trend", "autocorr")
    """Regime features HDBSCAN clusters on (density clustering degrades with every noisy
    dimension); the classifier and the statistics use all of them."""
    min_strength: float = Field(default=0.3, ge=0, le=1)
    """Assignments weaker than this (approximate_predict's strength) are unclassified."""
    fill_distance: float = Field(default=2.5, ge=0)
    """A bar HDBSCAN leaves unclassified takes the nearest known regime (its centre from the
    latest fit that found it) when within this many of that regime's standard deviations
    (RMS over the cluster features; 0 = never)."""
    persistence: int = Field(default=6, ge=1)
    """A label switches only after the new label has held this many consecutive bars."""
    max_regimes: int = Field(default=6, ge=2, le=20)
    """Stable ids 0..max_regimes-1 (the feature columns); extra clusters join the nearest."""
    match_distance: float = Field(default=1.5, gt=0)
    """A new cluster whose centre is farther than this (in standard deviations of the
    window's features) from every known regime gets a new id instead of an old one."""
    vol_short: int = Field(default=24, ge=3)
    vol_long: int = Field(default=168, ge=4)
    trend_window: int = Field(default=48, ge=3)
    autocorr_window: int = Field(default=72, ge=5)
    volume_window: int = Field(default=72, ge=3)
    drawdown_window: int = Field(default=168, ge=2)
    corr_window: int = Field(default=168, ge=8)
    """Cross-asset correlation level: mean |corr| of returns with the other assets."""
    classifier_c: float = Field(default=1.0, gt=0)
    """Inverse L2 strength of the walk-forward logistic regression (the classifier)."""

    @model_validator(mode="after")
    def _window_fits_clusters(self) -> RegimeSettings:
        if self.window < 2 * self.min_cluster_size:
            raise ValueError(
                f"window ({self.window}) must hold at least two minimum-size clusters "
                f"(2 x min_cluster_size = {2 * self.min_cluster_size})"
            )
        unknown = [c for c in self.cluster_features if c not in ALL_COLUMNS]
        if unknown or not self.cluster_features:
            raise ValueError(f"cluster_features: unknown {unknown or 'empty'}; "
                             f"choose from {', '.join(ALL_COLUMNS)}")
        if self.vol_long <= self.vol_short:
            raise ValueError(f"vol_long ({self.vol_long}) must exceed vol_short ({self.vol_short})")
        return self

    @property
    def warmup_bars(self) -> int:
        """Bars before every regime feature has a value (an upper bound: the lag-1
        autocorrelation needs two bars more than its window)."""
        return max(self.vol_long, self.trend_window, self.autocorr_window, self.volume_window,
                   self.drawdown_window, self.corr_window) + 2
