"""The fast kernels (vectorised rank, block min/max, two-loop std, one-pass scoring) equal
the straightforward reference bit for bit, on data chosen to break them: white noise (the
branchy paths), ties (a signed
zero equals zero, as in every evaluator test), NaN gaps, infinities, series shorter than the window."""

from __future__ import annotations

import numpy as np
import pytest

from singularity.evolution import kernels as K
from singularity.evolution import primitives as P
from singularity.evolution import reference as ref
from singularity.evolution.fitness import N_METRICS, score, score_fused

WINDOWED = {
    P.MEAN: ref.ts_mean, P.STD: ref.ts_std, P.ZSCORE: ref.ts_zscore, P.TMIN: ref.ts_min,
    P.TMAX: ref.ts_max, P.RANK: ref.ts_rank,
}


def _hard_series(n: int, seed: int, *, infinities: bool = True) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, n).astype(np.float32)
    x[rng.random(n) < 0.15] = 0.0  # ties
    x[rng.random(n) < 0.05] = -0.0  # signed zeros tie with 0.0
    m = rng.random(n) < 0.3
    x[m] = np.round(x[m])  # more ties
    x[rng.integers(0, n, 3)] = np.nan
    if infinities:
        x[rng.integers(0, n)] = np.inf
        x[rng.integers(0, n)] = -np.inf
    return x


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the reference on infinities
@pytest.mark.parametrize("op", sorted(WINDOWED))
def test_windowed_kernels_equal_the_reference_bit_for_bit(op: int) -> None:
    for n, seed in ((300, 1), (301, 2), (7, 3), (2, 4)):
        # the reference's z-score divides by zero on an infinite window (Python floats raise)
        x = _hard_series(n, seed, infinities=op != P.ZSCORE)
        for w in P.WINDOWS:
            out = np.empty(n, dtype=np.float32)
            K.apply(op, w, 0.0, x, x, x, out)
            want = WINDOWED[op](x, w)
            assert np.array_equal(out, want, equal_nan=True), (op, n, w)


@pytest.mark.parametrize("fn", [ref.minimum, ref.maximum])
def test_binary_min_max_equal_the_reference(fn) -> None:  # type: ignore[no-untyped-def]
    a, b = _hard_series(500, 5), _hard_series(500, 6)
    out = np.empty(500, dtype=np.float32)
    K.apply(P.MIN if fn is ref.minimum else P.MAX, 0, 0.0, a, b, a, out)
    assert np.array_equal(out, fn(a, b), equal_nan=True)


def _outputs(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    held = np.repeat(np.sign(rng.normal(size=n // 8 + 1)), 8)[:n].astype(np.float32)
    noisy = rng.normal(size=n).astype(np.float32)
    gaps = noisy.copy()
    gaps[: n // 3] = np.nan
    zeros = held.copy()
    zeros[::5] = 0.0
    return [held, noisy, gaps, zeros, np.full(n, 1.5, np.float32), np.full(n, np.nan, np.float32)]


@pytest.mark.parametrize("objective", [0, 1, 2])
@pytest.mark.parametrize("long_only", [False, True])
@pytest.mark.parametrize("fill_on_open", [True, False])
def test_one_pass_score_equals_the_unfused_score(objective, long_only, fill_on_open) -> None:  # type: ignore[no-untyped-def]
    n = 400
    rng = np.random.default_rng(3)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    crash = close.copy()
    crash[200:] *= 0.001  # a short through this is ruined: the ruin path
    crash[200:] = np.maximum(crash[200:], 1e-6)
    for prices in (close, crash[::-1].copy(), crash):
        open_ = np.r_[prices[0], prices[:-1]]
        for out in _outputs(n):
            for cost, short_rate in ((0.0, 0.0), (0.0015, 0.0), (0.3, 0.0), (0.0015, 2e-4)):
                want = np.zeros(N_METRICS)
                got = np.full(N_METRICS, 99.0)
                args = (cost, fill_on_open, long_only, 8760.0, objective, 10, 0.3)
                score(out, open_, prices, np.empty(n), *args, want, short_rate)
                score_fused(out, open_, prices, np.empty(n), *args, got, short_rate)
                assert np.array_equal(got, want), (got, want)


def test_one_pass_score_on_tiny_series() -> None:
    for n in (0, 1, 2, 3):
        out = np.arange(n, dtype=np.float32) - 1
        prices = np.linspace(100, 101, n)
        want = np.zeros(N_METRICS)
        got = np.full(N_METRICS, 99.0)
        score(out, prices, prices, np.empty(n), 0.001, True, False, 8760.0, 0, 1, 0.5, want)
        score_fused(out, prices, prices, np.empty(n), 0.001, True, False, 8760.0, 0, 1, 0.5, got)
        assert np.array_equal(got, want)
