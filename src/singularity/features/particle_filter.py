"""Bootstrap particle filter of a local level + trend model with stochastic volatility.

State per particle on log price y_t (all noise scales relative to the current volatility, so
the model is scale-free and needs no per-asset tuning):

    h_t     = h_{t-1} + q_h * eta                    log-variance, random walk
    level_t = level_{t-1} + trend_{t-1} + exp(h_t/2) * eps
    trend_t = trend_{t-1} + q_b * exp(h_t/2) * zeta
    y_t     = level_t + r * exp(h_t/2) * xi          observation

The filter runs forward once (causal by construction: the estimate at t is a function of
y_0..y_t and the draws of steps 0..t), resampling systematically when the effective sample
size drops below a threshold. Step t's draws are seeded by (seed, t), so a filter resumed
from its saved state on appended candles gives exactly the values of a full run. Rows are
taken in order; a missing candle is simply not seen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import pandas as pd

from singularity.features.catalogue import FeatureSpec
from singularity.features.settings import ParticleFilterSettings

FAMILY = "particle_filter"


@numba.njit(cache=True)
def _systematic_resample(weights: np.ndarray, u0: float) -> np.ndarray:
    """Indices drawn with one uniform offset: low variance, O(n)."""
    n = weights.shape[0]
    idx = np.empty(n, dtype=np.int64)
    cum = weights[0]
    j = 0
    for i in range(n):
        u = (i + u0) / n
        while u > cum and j < n - 1:
            j += 1
            cum += weights[j]
        idx[i] = j
    return idx


@numba.njit(cache=True)
def _step_seed(seed: int, t: int) -> int:
    """Seed of step t's draws: a function of (seed, t) only, so a filter resumed at row t
    draws exactly what an uninterrupted run draws there."""
    return (seed * 1_000_003 + t * 7_919 + 12_345) % 4_294_967_291


@numba.njit(cache=True)
def particle_filter_kernel(
    y: np.ndarray,
    t0: int,
    lv: np.ndarray,
    tr: np.ndarray,
    hh: np.ndarray,
    logw: np.ndarray,
    seed: int,
    vol_of_vol: float,
    trend_noise: float,
    obs_noise: float,
    init_logvar: float,
    resample_threshold: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Filtered means of (level, trend, log-vol = h/2) and ESS / N at every row of ``y``.

    ``y[0]`` is row ``t0`` of the series; the particle arrays hold the state after row
    ``t0 - 1`` (ignored when ``t0 == 0``: the prior is drawn) and are updated in place.
    """
    n = y.shape[0]
    n_particles = lv.shape[0]
    level_out = np.empty(n)
    trend_out = np.empty(n)
    logvol_out = np.empty(n)
    ess_out = np.empty(n)
    w = np.empty(n_particles)
    for k in range(n):
        t = t0 + k
        np.random.seed(_step_seed(seed, t))
        if t == 0:
            for i in range(n_particles):
                lv[i] = y[0]
                tr[i] = 0.0
                hh[i] = init_logvar + 1.5 * np.random.standard_normal()
                logw[i] = 0.0
        else:
            for i in range(n_particles):
                hh[i] += vol_of_vol * np.random.standard_normal()
                s = np.exp(0.5 * hh[i])
                lv[i] += tr[i] + s * np.random.standard_normal()
                tr[i] += trend_noise * s * np.random.standard_normal()
        for i in range(n_particles):
            sd = obs_noise * np.exp(0.5 * hh[i])
            z = (y[k] - lv[i]) / sd
            logw[i] += -0.5 * z * z - np.log(sd)
        m = logw.max()
        total = 0.0
        for i in range(n_particles):
            w[i] = np.exp(logw[i] - m)
            total += w[i]
        sq = 0.0
        el = 0.0
        et = 0.0
        eh = 0.0
        for i in range(n_particles):
            w[i] /= total
            sq += w[i] * w[i]
            el += w[i] * lv[i]
            et += w[i] * tr[i]
            eh += w[i] * hh[i]
        level_out[k] = el
        trend_out[k] = et
        logvol_out[k] = 0.5 * eh
        ess = 1.0 / sq
        ess_out[k] = ess / n_particles
        if ess < resample_threshold * n_particles:
            idx = _systematic_resample(w, np.random.random())
            lv[:] = lv[idx]
            tr[:] = tr[idx]
            hh[:] = hh[idx]
            logw[:] = 0.0
        else:
            for i in range(n_particles):
                logw[i] = np.log(w[i])
    return level_out, trend_out, logvol_out, ess_out


@dataclass(frozen=True)
class FilterState:
    """The particles after ``rows`` rows: enough to continue the filter on appended candles
    with exactly the values an uninterrupted run gives."""

    rows: int
    level: np.ndarray
    trend: np.ndarray
    logvar: np.ndarray
    logw: np.ndarray

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"rows": np.array([self.rows]), "level": self.level, "trend": self.trend,
                "logvar": self.logvar, "logw": self.logw}

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray]) -> FilterState:
        return cls(int(a["rows"][0]), a["level"], a["trend"], a["logvar"], a["logw"])


def run_filter(
    logp: np.ndarray, s: ParticleFilterSettings, state: FilterState | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, FilterState]:
    """(level, trend, log-vol, ESS ratio) filtered along ``logp`` (log prices, no NaN) and
    the state after its last row. With ``state``, ``logp`` continues the series it ended."""
    y = np.ascontiguousarray(logp, dtype=np.float64)
    if state is None:
        n = s.particles
        state = FilterState(0, np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n))
    if state.level.shape[0] != s.particles:
        raise ValueError("the saved filter state has another number of particles")
    lv, tr, hh, lw = (state.level.copy(), state.trend.copy(), state.logvar.copy(),
                      state.logw.copy())
    level, trend, logvol, ess = particle_filter_kernel(
        y, state.rows, lv, tr, hh, lw, s.seed, s.vol_of_vol, s.trend_noise, s.obs_noise,
        2.0 * np.log(s.init_vol), s.resample_threshold,
    )
    return level, trend, logvol, ess, FilterState(state.rows + y.size, lv, tr, hh, lw)


def particle_filter_catalogue(s: ParticleFilterSettings) -> list[FeatureSpec]:
    p = {"particles": s.particles, "seed": s.seed, "vol_of_vol": s.vol_of_vol,
         "trend_noise": s.trend_noise, "obs_noise": s.obs_noise}
    w = s.warmup
    return [
        FeatureSpec("pf_gap", FAMILY, p, w, "log close minus filtered level, in volatility units"),
        FeatureSpec("pf_trend", FAMILY, p, w, "filtered trend: log return per bar"),
        FeatureSpec("pf_trend_z", FAMILY, p, w, "filtered trend in volatility units"),
        FeatureSpec("pf_logvol", FAMILY, p, w, "filtered log volatility per bar"),
        FeatureSpec("pf_ess", FAMILY, p, w, "effective sample size / particles (model surprise)"),
    ]


def particle_filter_frame(
    candles: pd.DataFrame, settings: ParticleFilterSettings, state: FilterState | None = None
) -> tuple[pd.DataFrame, FilterState]:
    """The feature frame of ``candles`` and the filter state after their last row.

    With ``state``, ``candles`` are the rows appended after those the state has seen and the
    filter continues: the result equals the matching rows of a run over the whole series.
    """
    logp = np.log(candles["close"].to_numpy(dtype="float64"))
    level, trend, logvol, ess, end = run_filter(logp, settings, state)
    vol = np.exp(logvol)
    frame = pd.DataFrame(
        {
            "pf_gap": (logp - level) / vol,
            "pf_trend": trend,
            "pf_trend_z": trend / vol,
            "pf_logvol": logvol,
            "pf_ess": ess,
        },
        index=candles.index,
    )
    return frame, end


def particle_filter_features(
    candles: pd.DataFrame, settings: ParticleFilterSettings
) -> tuple[pd.DataFrame, list[FeatureSpec]]:
    """Scale-free particle-filter features of one asset, aligned to ``candles``."""
    frame, _ = particle_filter_frame(candles, settings)
    return frame, particle_filter_catalogue(settings)
