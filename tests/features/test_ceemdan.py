"""CEEMDAN family: the numba kernel against PyEMD, causality, stride holding, determinism.

Tolerances checked here (the kernel is a port of PyEMD 1.10, see emd_kernels):
* plain EMD: same number of rows and max |IMF difference| <= 1e-9 (measured ~1e-13);
* CEEMDAN with identical noise: same rows and max |difference| <= 1e-9 x the window's std
  (measured ~6e-13).
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from singularity.errors import DataError
from singularity.features.catalogue import check_catalogue
from singularity.features.causality import assert_causal
from singularity.features.ceemdan import (
    ceemdan_features,
    ceemdan_tail,
    decompose_batch,
    decompose_window,
    decomposition_rows,
    end_frequency,
    feature_names,
    window_features,
    window_noise,
)
from singularity.features.emd_kernels import emd
from singularity.features.settings import CeemdanSettings

EMD_TOL = 1e-9
CEEMDAN_TOL = 1e-9

FAST = CeemdanSettings(window=64, trials=4, noise_scale=0.05, max_imfs=3, stride=6,
                       amplitude_bars=8, seed=3)


def _windows(load_feather, length: int, count: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for base in ("BTC", "DOGE", "SOL"):
        logp = np.log(load_feather(base)["close"].to_numpy())
        for end in rng.integers(length, logp.size, size=count):
            out.append(logp[end - length : end].copy())
    return out


def _pyemd_ceemdan(window: np.ndarray, noise: np.ndarray, epsilon: float, max_imf: int):
    from PyEMD import CEEMDAN

    ref = CEEMDAN(trials=noise.shape[0], epsilon=epsilon, parallel=False)
    # PyEMD draws its noise inside ceemdan(); hand it ours so both use the same realisations
    ref.generate_noise = lambda scale, size: noise
    return ref.ceemdan(window, max_imf=max_imf)


def test_emd_equals_pyemd_on_real_windows_and_noise(load_feather) -> None:
    from PyEMD import EMD

    rng = np.random.default_rng(5)
    signals = [*_windows(load_feather, 256, 1, seed=11), rng.standard_normal(256)]
    for s in signals:
        s = s / s.std()
        ref = EMD().emd(s, max_imf=-1)
        out = np.empty((40, s.size))
        rows = emd(s, -1, out)
        assert rows == ref.shape[0]
        np.testing.assert_allclose(out[:rows], ref, rtol=0, atol=EMD_TOL)
        np.testing.assert_allclose(out[:rows].sum(axis=0), s, atol=1e-12)  # complete


def test_emd_exact_on_a_plateau_signal() -> None:
    """Flat runs (equal closes are common in real candles) follow PyEMD's plateau rules."""
    from PyEMD import EMD

    s = np.round(np.sin(np.arange(120) / 4.0) * 6 + np.arange(120) * 0.05) / 3.0
    ref = EMD().emd(s, max_imf=-1)
    out = np.empty((40, s.size))
    rows = emd(s, -1, out)
    assert rows == ref.shape[0]
    np.testing.assert_allclose(out[:rows], ref, rtol=0, atol=EMD_TOL)


def test_ceemdan_equals_pyemd_with_the_same_noise(load_feather) -> None:
    for i, w in enumerate(_windows(load_feather, 128, 1, seed=7)):
        noise = window_noise(99 + i, trials=8, length=w.size)
        ref = _pyemd_ceemdan(w, noise, 0.05, 4)
        got = decompose_window(w, noise, 0.05, 4)
        assert got.shape == ref.shape == (5, 128)
        np.testing.assert_allclose(got, ref, rtol=0, atol=CEEMDAN_TOL * w.std())
        np.testing.assert_allclose(got.sum(axis=0), w, atol=1e-12)


def test_end_frequency_of_a_sine_is_its_frequency() -> None:
    t = np.arange(200, dtype=float)
    assert end_frequency(np.sin(2 * np.pi * t / 20 + 0.3)) == pytest.approx(1 / 20, rel=1e-3)
    assert end_frequency(np.ones(50)) == 0.0
    # one crossing long ago: the open half period bounds the frequency
    assert end_frequency(np.r_[-np.ones(10), np.ones(90)]) == pytest.approx(0.5 / 89.5)  # crossing at 9.5


def test_known_oscillations_are_found_in_their_imfs() -> None:
    """Log prices = 8-bar and 50-bar sines plus a trend: the IMFs report those frequencies and
    the slow sine's amplitude (mean |sin| = 2/pi of its peak), in return-std units."""
    t = np.arange(256.0)
    w = 4.6 + 0.01 * np.sin(2 * np.pi * t / 8 + 0.4) + 0.04 * np.sin(2 * np.pi * t / 50 + 1)
    w += 0.0005 * t
    sigma = np.std(np.diff(w))
    f = decompose_batch((w[None, :], (8, 0.05, 3, 16, 1)))[0]
    imf1_freq, imf3_amp, imf3_freq = f[2], f[7], f[8]
    assert imf1_freq == pytest.approx(1 / 8, rel=0.15)
    assert imf3_freq == pytest.approx(1 / 50, rel=0.15)
    assert imf3_amp == pytest.approx(0.04 * 2 / np.pi / sigma, rel=0.15)
    assert f[-1] > 0  # the trend rises


def test_decomposition_rows_follow_epoch_blocks_and_survive_gaps() -> None:
    idx = pd.date_range("2024-01-01 01:00", periods=40, freq="1h", tz="UTC")
    rows = decomposition_rows(idx, window=10, stride=6)
    # first full window (row 9 = 10:00), then every 6 h block start: 12:00, 18:00, 00:00, ...
    assert list(idx[rows].hour) == [10, 12, 18, 0, 6, 12]
    gappy = idx.delete([11, 12])  # 12:00 and 13:00 missing: the block starts at 14:00
    assert list(gappy[decomposition_rows(gappy, 10, 6)].hour) == [10, 14, 18, 0, 6, 12]
    assert list(decomposition_rows(idx, 10, 1)) == list(range(9, 40))
    assert decomposition_rows(idx[:9], 10, 6).size == 0


def _close(load_feather, base: str = "BTC", tail: int = 300) -> pd.Series:
    return load_feather(base, tail=tail)["close"]


def test_features_are_causal_on_real_candles(load_feather) -> None:
    close = _close(load_feather)
    compute = lambda c: ceemdan_features(c, FAST)  # noqa: E731
    rows = assert_causal(compute, close, points=4, min_rows=FAST.window, seed=2)
    assert len(rows) == 4


def test_a_whole_series_decomposition_is_caught_as_a_leak(load_feather) -> None:
    """The classic bug: decompose the full series once, read IMF values at t."""
    close = _close(load_feather, tail=200)

    def leaky(c: pd.Series) -> pd.DataFrame:
        s = np.log(c.to_numpy())
        out = np.empty((40, s.size))
        emd(s, -1, out)
        return pd.DataFrame({"imf1": out[0]}, index=c.index)

    with pytest.raises(AssertionError, match="not causal"):
        assert_causal(leaky, close, points=3, min_rows=100, seed=0)


def test_stride_holds_values_and_matches_direct_decomposition(load_feather) -> None:
    close = _close(load_feather, tail=200)
    frame, specs = ceemdan_features(close, FAST)
    check_catalogue(frame.columns, specs, "ceemdan")
    assert frame.columns.tolist() == feature_names(FAST)
    assert frame.iloc[: FAST.window - 1].isna().all().all()
    assert frame.iloc[FAST.window - 1 :].notna().all().all()
    assert all(s.warmup == FAST.window - 1 for s in specs)

    rows = decomposition_rows(close.index, FAST.window, FAST.stride)
    assert rows[0] == FAST.window - 1 and (close.index[rows[1:]].hour % 6 == 0).all()
    values = frame.to_numpy()
    for a, b in itertools.pairwise([*rows, len(values)]):
        assert (values[a:b] == values[a]).all()  # held until the next decomposition
    assert not (values[rows[1]] == values[rows[0]]).all()

    # a decomposition row equals the window decomposed on its own
    r = int(rows[2])
    w = np.log(close.to_numpy()[r - FAST.window + 1 : r + 1])
    params = (FAST.trials, FAST.noise_scale, FAST.max_imfs, FAST.amplitude_bars, FAST.seed)
    np.testing.assert_array_equal(values[r], decompose_batch((w[None, :], params))[0])
    noise = window_noise(FAST.seed, FAST.trials, FAST.window)
    comps = decompose_window(w, noise, FAST.noise_scale, FAST.max_imfs)
    np.testing.assert_allclose(
        values[r], window_features(w, comps, FAST.max_imfs, FAST.amplitude_bars), rtol=1e-12
    )


def test_a_later_start_reproduces_rows_after_one_block(load_feather) -> None:
    close = _close(load_feather, tail=200)
    full, _ = ceemdan_features(close, FAST)
    a = 17
    part, _ = ceemdan_features(close.iloc[a:], FAST)
    first = decomposition_rows(close.index[a:], FAST.window, FAST.stride)[1] + a
    pd.testing.assert_frame_equal(part.loc[close.index[first] :], full.iloc[first:])
    context, align = ceemdan_tail(FAST)
    assert align == 1 and first <= a + context
    # gaps only shorten blocks: the contract holds with candles missing
    gappy = close.drop(close.index[[70, 71, 72, 90, 130]])
    full, _ = ceemdan_features(gappy, FAST)
    for a in (5, 17, 30):
        part, _ = ceemdan_features(gappy.iloc[a:], FAST)
        pd.testing.assert_frame_equal(part.iloc[context:], full.iloc[a + context :])


def test_seeded_determinism(load_feather) -> None:
    close = _close(load_feather, base="ETH", tail=120)
    one, _ = ceemdan_features(close, FAST)
    two, _ = ceemdan_features(close, FAST)
    pd.testing.assert_frame_equal(one, two)
    other, _ = ceemdan_features(close, FAST.model_copy(update={"seed": 4}))
    assert not np.allclose(other.iloc[-1], one.iloc[-1])


class _InlinePool:
    """Same contract as WorkerPool.map, in process: exercises the batching path."""

    workers = 3

    def __init__(self) -> None:
        self.calls = 0

    def map(self, fn, items):  # type: ignore[no-untyped-def]
        items = list(items)
        self.calls += len(items)
        return [fn(x) for x in items]


def test_batched_equals_serial(load_feather) -> None:
    close = _close(load_feather, base="SOL", tail=400)
    settings = FAST.model_copy(update={"stride": 1, "trials": 2})
    serial, _ = ceemdan_features(close, settings)
    pool = _InlinePool()
    batched, _ = ceemdan_features(close, settings, pool=pool)
    assert pool.calls > 1
    pd.testing.assert_frame_equal(serial, batched)


@pytest.mark.slow
def test_worker_pool_equals_serial(load_feather) -> None:
    from singularity.runtime.pool import WorkerPool

    close = _close(load_feather, base="XRP", tail=160)
    serial, _ = ceemdan_features(close, FAST)
    with WorkerPool(2) as pool:
        pooled, _ = ceemdan_features(close, FAST, pool=pool)
    pd.testing.assert_frame_equal(serial, pooled)


def test_short_series_is_all_warmup_and_bad_input_is_refused() -> None:
    idx = pd.date_range("2024-01-01", periods=50, freq="1h", tz="UTC", name="timestamp")
    close = pd.Series(np.linspace(100, 110, 50), index=idx)
    frame, _ = ceemdan_features(close, FAST)
    assert frame.shape == (50, 3 * FAST.max_imfs + 1) and frame.isna().all().all()

    flat = pd.Series(100.0, index=pd.date_range("2024-01-01", periods=70, freq="1h", tz="UTC"))
    frame, _ = ceemdan_features(flat, FAST)
    assert (frame.iloc[FAST.window - 1 :] == 0).all().all()  # nothing oscillates

    bad = close.copy()
    bad.iloc[10] = np.nan
    with pytest.raises(DataError, match="finite and > 0"):
        ceemdan_features(bad, FAST)
    with pytest.raises(DataError, match="strictly increasing"):
        ceemdan_features(close.iloc[::-1], FAST)
