"""Bootstrap particle filter of a local level + trend model with stochastic volatility.

State per particle on log price y_t (all noise scales relative to the current volatility, so
the model is scale-free and needs no per-asset tuning):

    h_t     = h_{t-1} + q_h * eta                    log-variance, random walk
    level_t = level_{t-1} + trend_{t-1} + exp(h_t/2) * eps
    trend_t = trend_{t-1} + q_b * exp(h_t/2) * zeta
    y_t     = level_t + r * exp(h_t/2) * xi          observation

The filter runs forward once (causal by construction: the estimate at t is a function of
y_0..y_t and the seed's draws in order), resampling systematically when the effective sample
size drops below a threshold. Rows are taken in order; a missing candle is simply not seen.
"""

from __future__ import annotations

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
def particle_filter_kernel(
    y: np.ndarray,
    n_particles: int,
    seed: int,
    vol_of_vol: float,
    trend_noise: float,
    obs_noise: float,
    init_logvar: float,
    resample_threshold: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Filtered means of (level, trend, log-vol = h/2) and ESS / N at every row of ``y``."""
    np.random.seed(seed)
    n = y.shape[0]
    level_out = np.empty(n)
    trend_out = np.empty(n)
    logvol_out = np.empty(n)
    ess_out = np.empty(n)
    lv = np.full(n_particles, y[0])
    tr = np.zeros(n_particles)
    hh = np.empty(n_particles)
    for i in range(n_particles):
        hh[i] = init_logvar + 1.5 * np.random.standard_normal()
    logw = np.zeros(n_particles)
    w = np.empty(n_particles)
    for t in range(n):
        if t > 0:
            for i in range(n_particles):
                hh[i] += vol_of_vol * np.random.standard_normal()
                s = np.exp(0.5 * hh[i])
                lv[i] += tr[i] + s * np.random.standard_normal()
                tr[i] += trend_noise * s * np.random.standard_normal()
        for i in range(n_particles):
            sd = obs_noise * np.exp(0.5 * hh[i])
            z = (y[t] - lv[i]) / sd
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
        level_out[t] = el
        trend_out[t] = et
        logvol_out[t] = 0.5 * eh
        ess = 1.0 / sq
        ess_out[t] = ess / n_particles
        if ess < resample_threshold * n_particles:
            idx = _systematic_resample(w, np.random.random())
            lv = lv[idx]
            tr = tr[idx]
            hh = hh[idx]
            logw[:] = 0.0
        else:
            for i in range(n_particles):
                logw[i] = np.log(w[i])
    return level_out, trend_out, logvol_out, ess_out


def run_filter(logp: np.ndarray, s: ParticleFilterSettings) -> tuple[np.ndarray, ...]:
    """(level, trend, log-vol, ESS ratio) filtered along ``logp`` (log prices, no NaN)."""
    y = np.ascontiguousarray(logp, dtype=np.float64)
    if y.size == 0:
        empty = np.empty(0)
        return empty, empty, empty, empty
    return particle_filter_kernel(
        y, s.particles, s.seed, s.vol_of_vol, s.trend_noise, s.obs_noise,
        2.0 * np.log(s.init_vol), s.resample_threshold,
    )


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


def particle_filter_features(
    candles: pd.DataFrame, settings: ParticleFilterSettings
) -> tuple[pd.DataFrame, list[FeatureSpec]]:
    """Scale-free particle-filter features of one asset, aligned to ``candles``."""
    logp = np.log(candles["close"].to_numpy(dtype="float64"))
    level, trend, logvol, ess = run_filter(logp, settings)
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
    return frame, particle_filter_catalogue(settings)
