"""Feature settings (section ``[features]``). Light module: no heavy imports here."""

from __future__ import annotations

from pydantic import Field

from singularity.regimes.settings import RegimeSettings
from singularity.settings_base import FrozenModel


class IndicatorSettings(FrozenModel):
    enabled: bool = True
    rsi_period: int = Field(default=14, ge=2)
    macd_fast: int = Field(default=12, ge=2)
    macd_slow: int = Field(default=26, ge=3)
    macd_signal: int = Field(default=9, ge=2)
    atr_period: int = Field(default=14, ge=2)
    adx_period: int = Field(default=14, ge=2)
    bbands_period: int = Field(default=20, ge=2)
    bbands_std: float = Field(default=2.0, gt=0)
    stoch_k: int = Field(default=14, ge=2)
    stoch_d: int = Field(default=3, ge=1)
    cci_period: int = Field(default=20, ge=2)
    mfi_period: int = Field(default=14, ge=2)
    obv_slope_period: int = Field(default=20, ge=2)
    roc_periods: tuple[int, ...] = (1, 6, 24)
    ma_periods: tuple[int, ...] = (20, 50, 200)
    return_horizons: tuple[int, ...] = (1, 6, 24)
    vol_horizons: tuple[int, ...] = (24, 168)
    volume_z_period: int = Field(default=48, ge=2)
    settle_factor: int = Field(default=3, ge=1)
    """Warm-up of recursive (seed-dependent) indicators, in multiples of their period."""


class CeemdanSettings(FrozenModel):
    enabled: bool = True
    window: int = Field(default=256, ge=32)
    trials: int = Field(default=50, ge=1)
    noise_scale: float = Field(default=0.05, gt=0)
    max_imfs: int = Field(default=4, ge=1)
    stride: int = Field(default=24, ge=1)
    """Decompose every ``stride`` bars and hold the last value in between (still causal)."""
    amplitude_bars: int = Field(default=16, ge=2)
    seed: int = 12345


class ParticleFilterSettings(FrozenModel):
    enabled: bool = True
    particles: int = Field(default=512, ge=16)
    seed: int = 7
    vol_of_vol: float = Field(default=0.1, gt=0)
    """Std of the per-bar random walk of the log-variance."""
    trend_noise: float = Field(default=0.05, gt=0)
    """Std of the per-bar trend change, in units of the current volatility."""
    obs_noise: float = Field(default=0.5, gt=0)
    """Std of the observation noise on log price, in units of the current volatility."""
    init_vol: float = Field(default=0.01, gt=0)
    """Prior centre of the per-bar volatility (log-variance prior std is 1.5)."""
    resample_threshold: float = Field(default=0.5, gt=0, le=1)
    """Resample (systematic) when the effective sample size falls below this fraction."""
    warmup: int = Field(default=100, ge=1)
    """Bars before the filter has forgotten its prior (marked as warm-up)."""


class GraphSettings(FrozenModel):
    enabled: bool = True
    corr_window: int = Field(default=168, ge=8)
    edge_threshold: float = Field(default=0.3, ge=0, le=1)
    corr_min_overlap: float = Field(default=0.75, gt=0, le=1)
    """Fraction of corr_window bars where both assets have a return before a pair is an edge."""
    lead_lag: bool = True
    """Also weight neighbours by lagged correlation corr(r_i,t, r_j,t-1): who leads whom."""
    gnn_enabled: bool = True
    gnn_embedding_dim: int = Field(default=4, ge=1)
    gnn_hidden: int = Field(default=16, ge=2)
    gnn_retrain_every: int = Field(default=500, ge=10)
    gnn_train_window: int = Field(default=720, ge=50)
    """Bars (30 days at 1h) each walk-forward GNN fit learns from; also its warm-up."""
    gnn_epochs: int = Field(default=30, ge=1)
    gnn_learning_rate: float = Field(default=0.01, gt=0)
    gnn_batch_bars: int = Field(default=128, ge=1)
    """Bars per mini-batch while training (each bar is one graph)."""
    seed: int = 11


class FeatureSettings(FrozenModel):
    indicators: IndicatorSettings = IndicatorSettings()
    ceemdan: CeemdanSettings = CeemdanSettings()
    particle_filter: ParticleFilterSettings = ParticleFilterSettings()
    graph: GraphSettings = GraphSettings()
    regimes: RegimeSettings = RegimeSettings()
