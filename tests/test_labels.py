"""Triple-barrier labels on hand-built price paths with exact expected labels and touch bars.

Every path starts with four one-bar log returns +a, -a, +a, -a (a = 0.01), so at the event
bar t = 4 (close 100) the trailing volatility over vol_window = 4 returns is the sample std of
(+a, -a, +a, -a) = a * sqrt(4 / 3) = 0.011547; with k = 1 the barriers sit at ±0.011547 in
log-return space. The returns after bar 4 decide the label of event 4.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from singularity.labels import triple_barrier

A = 0.01
SIGMA = A * math.sqrt(4 / 3)
HEAD = [A, -A, A, -A]


def path(after: list[float], n_tail: int = 6) -> pd.Series:
    rets = HEAD + after + [0.0] * n_tail
    close = 100.0 * np.exp(np.cumsum([0.0, *rets]))
    idx = pd.date_range("2024-01-01", periods=len(close), freq="h", tz="UTC", name="timestamp")
    return pd.Series(close, index=idx)


def label(close: pd.Series, **kw: object) -> pd.DataFrame:
    args = {"vol_window": 4, "upper_k": 1.0, "lower_k": 1.0, "horizon": 5, **kw}
    return triple_barrier(close, **args)  # type: ignore[arg-type]


def test_volatility_and_barrier_levels_at_the_event_bar() -> None:
    out = label(path([0.0] * 5))
    assert out["vol"].iloc[4] == pytest.approx(SIGMA, rel=1e-12)
    assert out["upper"].iloc[4] == pytest.approx(100.0 * math.exp(SIGMA), rel=1e-12)
    assert out["lower"].iloc[4] == pytest.approx(100.0 * math.exp(-SIGMA), rel=1e-12)
    # no volatility before four returns exist: no label
    assert out["vol"].iloc[:4].isna().all()
    assert not out["complete"].iloc[:4].any()


def test_upper_barrier_first() -> None:
    # cumulative: .005, .010 (< .011547), .015 (>= .011547) -> upper at bar 4 + 3 = 7
    out = label(path([0.005, 0.005, 0.005, -0.03, -0.03]))
    row = out.iloc[4]
    assert row["label"] == 1.0
    assert row["end"] == 7
    assert row["end_time"] == out.index[7]
    assert row["ret"] == pytest.approx(0.015, abs=1e-12)


def test_lower_barrier_first() -> None:
    # cumulative: -.005, -.011 (> -.011547), -.013 (<= -.011547) -> lower at bar 7,
    # although the path later rises far above the upper barrier
    out = label(path([-0.005, -0.006, -0.002, 0.05, 0.05]))
    row = out.iloc[4]
    assert (row["label"], row["end"]) == (-1.0, 7)
    assert row["ret"] == pytest.approx(-0.013, abs=1e-12)


def test_vertical_barrier() -> None:
    # cumulative .004, 0, .004, 0, .004: no touch within 5 bars -> label 0, ended at bar 9
    out = label(path([0.004, -0.004, 0.004, -0.004, 0.004, 0.05]))
    row = out.iloc[4]
    assert (row["label"], row["end"]) == (0.0, 9)
    assert row["ret"] == pytest.approx(0.004, abs=1e-12)


def test_asymmetric_barriers() -> None:
    # lower_k = 0.5 puts the lower barrier at -.0057735: cumulative -.004, -.007 touches it at
    # bar 6; with lower_k = 1 the same path ends at the vertical barrier (bar 9)
    p = path([-0.004, -0.003, 0.003, 0.0, 0.0])
    assert (label(p, lower_k=0.5)["label"].iloc[4], label(p, lower_k=0.5)["end"].iloc[4]) == (-1.0, 6)
    assert (label(p)["label"].iloc[4], label(p)["end"].iloc[4]) == (0.0, 9)


def test_both_barriers_in_one_bar_is_ambiguous_zero() -> None:
    # with intrabar extremes: bar 5's high is 2% above and its low 2% below the event close,
    # both barriers are touched inside the bar and the order is unknown -> label 0 at bar 5
    close = path([0.0] * 5)
    high, low = close.copy(), close.copy()
    high.iloc[5] = close.iloc[4] * math.exp(0.02)
    low.iloc[5] = close.iloc[4] * math.exp(-0.02)
    out = triple_barrier(close, vol_window=4, upper_k=1.0, lower_k=1.0, horizon=5, high=high, low=low)
    assert (out["label"].iloc[4], out["end"].iloc[4]) == (0.0, 5)
    # only the high touching: +1 at bar 5
    out = triple_barrier(close, vol_window=4, upper_k=1.0, lower_k=1.0, horizon=5, high=high, low=close)
    assert (out["label"].iloc[4], out["end"].iloc[4]) == (1.0, 5)


def test_last_horizon_bars_are_incomplete_not_invented() -> None:
    close = path([0.005, 0.005, 0.005, -0.03, -0.03])
    out = label(close)
    n = len(close)
    complete = out["complete"].to_numpy()
    # complete exactly for events 4 .. n-1-horizon
    assert np.flatnonzero(complete).tolist() == list(range(4, n - 5))
    tail = out.iloc[n - 5 :]
    assert tail["label"].isna().all() and (tail["end"] == -1).all() and tail["end_time"].isna().all()
    assert tail["ret"].isna().all()


def test_labels_end_after_the_event_and_within_the_horizon() -> None:
    rng = np.random.default_rng(3)
    close = pd.Series(100 * np.exp(np.cumsum(rng.normal(0, 0.01, 500))))
    out = triple_barrier(close, vol_window=20, upper_k=1.5, lower_k=1.0, horizon=10)
    done = out[out["complete"]]
    pos = np.flatnonzero(out["complete"])
    assert ((done["end"] > pos) & (done["end"] <= pos + 10)).all()
    assert set(done["label"].unique()) <= {-1.0, 0.0, 1.0}
    # the label agrees with the sign of the return at a barrier touch
    touched = done[done["label"] != 0]
    assert (np.sign(touched["ret"]) == touched["label"]).all()


def test_volatility_is_causal() -> None:
    rng = np.random.default_rng(4)
    close = pd.Series(100 * np.exp(np.cumsum(rng.normal(0, 0.01, 200))))
    full = triple_barrier(close, vol_window=20, upper_k=1.0, lower_k=1.0, horizon=5)
    cut = triple_barrier(close.iloc[:120], vol_window=20, upper_k=1.0, lower_k=1.0, horizon=5)
    np.testing.assert_array_equal(full["vol"].iloc[:120].to_numpy(), cut["vol"].to_numpy())


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="positive prices"):
        triple_barrier(pd.Series([1.0, -1.0, 2.0]), vol_window=2, upper_k=1, lower_k=1, horizon=1)
    with pytest.raises(ValueError, match="vol_window"):
        triple_barrier(pd.Series([1.0, 2.0]), vol_window=1, upper_k=1, lower_k=1, horizon=1)


@pytest.mark.realdata
def test_labels_on_real_candles(load_feather) -> None:  # type: ignore[no-untyped-def]
    btc = load_feather("BTC", "1h", tail=3000)
    out = triple_barrier(btc["close"], vol_window=24, upper_k=2.0, lower_k=2.0, horizon=24,
                         high=btc["high"], low=btc["low"])
    n = len(btc)
    # complete exactly from the first bar with 24 returns to the last bar with 24 bars ahead
    assert np.flatnonzero(out["complete"]).tolist() == list(range(24, n - 24))
    done = out[out["complete"]]
    pos = np.flatnonzero(out["complete"])
    assert ((done["end"] > pos) & (done["end"] <= pos + 24)).all()
    # an upper touch means the high reached the upper barrier at the end bar, and the
    # vertical label means neither barrier was reached within the horizon
    up = done[done["label"] == 1]
    assert (btc["high"].to_numpy()[up["end"]] >= up["upper"].to_numpy()).all()
    vertical = pos[(done["label"].to_numpy() == 0) & (done["end"].to_numpy() == pos + 24)]
    assert len(vertical) > 0
    for t in vertical[:50]:
        window = slice(t + 1, t + 25)
        assert btc["high"].iloc[window].max() < out["upper"].iloc[t]
        assert btc["low"].iloc[window].min() > out["lower"].iloc[t]
    counts = done["label"].value_counts(normalize=True)
    assert counts[1.0] > 0.2 and counts[-1.0] > 0.2
