"""The lookahead detector itself: causal features pass, leaky ones fail with a clear message."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from singularity.features.catalogue import FeatureSpec
from singularity.features.causality import assert_causal


def _candles(n: int = 300, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    idx = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC", name="timestamp")
    return pd.DataFrame(
        {"open": close, "high": close * 1.01, "low": close * 0.99, "close": close,
         "volume": rng.uniform(1, 2, n)},
        index=idx,
    )


def _trailing_mean(c: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"ma": c["close"].rolling(10).mean()})


def _ewm(c: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"ewm": c["close"].ewm(span=20, adjust=False).mean()})


def _centred(c: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"centred_ma": c["close"].rolling(11, center=True).mean()})


def _full_zscore(c: pd.DataFrame) -> pd.DataFrame:
    x = c["close"]
    return pd.DataFrame({"z": (x - x.mean()) / x.std()})


def test_causal_features_pass() -> None:
    c = _candles()
    rows = assert_causal(_trailing_mean, c, points=5, min_rows=20)
    assert len(rows) == 5 and all(19 <= r < len(c) for r in rows)
    # recursive smoothing is causal too: truncation keeps the start
    assert_causal(_ewm, c, points=[0, 10, 150, -1], whole_prefix=True)


def test_centred_window_is_caught() -> None:
    with pytest.raises(AssertionError, match=r"feature 'centred_ma' is not causal"):
        assert_causal(_centred, _candles(), points=5, min_rows=20)


def test_full_series_normalisation_is_caught() -> None:
    with pytest.raises(AssertionError, match=r"feature 'z' is not causal.*truncated at row 100"):
        assert_causal(_full_zscore, _candles(), points=[100])


def test_dict_data_and_tuple_output() -> None:
    a, b = _candles(seed=1), _candles(seed=2).iloc[5:]  # b starts later: a gap at the start

    def spread(u: dict[str, pd.DataFrame]) -> tuple[dict[str, pd.DataFrame], list[FeatureSpec]]:
        j = u["A"]["close"].align(u["B"]["close"], join="inner")
        s = np.log(j[0] / j[1])
        return {"A": s.to_frame("spread"), "B": (-s).to_frame("spread")}, []

    assert_causal(spread, {"A": a, "B": b}, points=[0, 3, 50, -1])

    def leaky(u: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
        out = {k: (v["close"] / u["B"]["close"].iloc[-1]).to_frame("ratio") for k, v in u.items()}
        return out

    with pytest.raises(AssertionError, match=r"'ratio' \[A\] is not causal"):
        assert_causal(leaky, {"A": a, "B": b}, points=[100])


def test_feature_spec_is_hashable_and_frozen() -> None:
    s = FeatureSpec("rsi_14", "indicators", {"period": 14, "horizons": [1, 2]}, 14, "RSI")
    assert s.params == (("horizons", (1, 2)), ("period", 14))
    assert hash(s) == hash(FeatureSpec("rsi_14", "indicators", {"horizons": (1, 2), "period": 14},
                                        14, "RSI"))
    assert s.to_dict()["params"] == {"horizons": [1, 2], "period": 14}
    with pytest.raises(ValueError, match="one line"):
        FeatureSpec("x", "f", {}, 0, "two\nlines")
