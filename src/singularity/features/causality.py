"""Lookahead detection: a feature at bar t must not change when the bars after t are removed.

``assert_causal`` computes the features on the full history once, then on the history
truncated at several rows t (same start), and requires the value at row t to be the same.
Recursive indicators (EMA-seeded TA-Lib functions, filters) depend on where the series
starts; since truncation keeps the start, they pass, as they should: the live system also
computes them forward from a fixed start.

Works for one asset (``data`` a DataFrame or Series) and for cross-asset features (``data`` a
dict of DataFrames, truncated at a common timestamp). ``compute`` may return a DataFrame, a
dict of DataFrames, or a tuple whose first element is one of those (a family's return value).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

Data = pd.DataFrame | pd.Series | Mapping[str, pd.DataFrame]


def _frames(result: Any) -> dict[str, pd.DataFrame]:
    """Normalise a family's output to {key: DataFrame}."""
    if isinstance(result, tuple):
        result = result[0]
    if isinstance(result, pd.Series):
        return {"": result.to_frame()}
    if isinstance(result, pd.DataFrame):
        return {"": result}
    if isinstance(result, Mapping):
        return {str(k): (v.to_frame() if isinstance(v, pd.Series) else v) for k, v in result.items()}
    raise TypeError(f"compute returned {type(result).__name__}: expected a DataFrame or a dict")


def _timeline(data: Data) -> pd.Index:
    if isinstance(data, Mapping):
        idx = pd.Index([])
        for frame in data.values():
            idx = idx.union(frame.index)
        return idx.sort_values()
    return data.index


def _truncate(data: Data, ts: Any) -> Data:
    if isinstance(data, Mapping):
        return {k: v.loc[v.index <= ts] for k, v in data.items()}
    return data.loc[data.index <= ts]


def _pick_points(n: int, points: int | Sequence[int], min_rows: int, seed: int) -> list[int]:
    if isinstance(points, int):
        lo = max(min_rows - 1, 0)
        if lo >= n:
            raise ValueError(f"min_rows={min_rows} leaves no row to test in {n} rows")
        rng = np.random.default_rng(seed)
        count = min(points, n - lo)
        return sorted(int(t) for t in rng.choice(np.arange(lo, n), size=count, replace=False))
    out = sorted({int(t) if t >= 0 else n + int(t) for t in points})
    if out and (out[0] < 0 or out[-1] >= n):
        raise ValueError(f"points {list(points)} outside 0..{n - 1}")
    return out


def _mismatch(a: np.ndarray, b: np.ndarray, rtol: float, atol: float) -> np.ndarray:
    """True where a and b differ (NaN equals NaN; NaN vs number is a difference)."""
    a = np.asarray(a, dtype="float64")
    b = np.asarray(b, dtype="float64")
    both_nan = np.isnan(a) & np.isnan(b)
    close = np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=False)
    return ~(close | both_nan)


def assert_causal(
    compute: Callable[[Any], Any],
    data: Data,
    *,
    points: int | Sequence[int],
    rtol: float = 1e-9,
    atol: float = 1e-12,
    min_rows: int = 1,
    seed: int = 0,
    whole_prefix: bool = False,
) -> list[int]:
    """Fail (AssertionError) if any feature at a tested row t depends on data after t.

    ``points``: row positions to truncate at (negative counts from the end), or a number of
    random rows drawn with ``seed`` from ``min_rows - 1 .. n - 1``. For dict data the rows are
    positions in the union of the assets' timestamps. ``whole_prefix`` also compares every row
    before t (stricter). Returns the rows tested.
    """
    timeline = _timeline(data)
    n = len(timeline)
    rows = _pick_points(n, points, min_rows, seed)
    full = _frames(compute(data))
    for t in rows:
        ts = timeline[t]
        part = _frames(compute(_truncate(data, ts)))
        for key, ref in full.items():
            where = f" [{key}]" if key else ""
            if key not in part:
                raise AssertionError(f"output{where} missing when truncated at row {t} ({ts})")
            got = part[key]
            missing = [c for c in ref.columns if c not in got.columns]
            if missing:
                raise AssertionError(
                    f"columns {missing[:5]}{where} missing when truncated at row {t} ({ts})"
                )
            ref_rows = ref.loc[ref.index <= ts] if whole_prefix else ref.loc[ref.index == ts]
            if ref_rows.empty:
                continue  # this asset has no candle at ts (a gap): nothing to compare
            got_rows = got.reindex(ref_rows.index)
            for col in ref.columns:
                a = got_rows[col].to_numpy(dtype="float64", na_value=np.nan)
                b = ref_rows[col].to_numpy(dtype="float64", na_value=np.nan)
                bad = _mismatch(a, b, rtol, atol)
                if bad.any():
                    i = int(np.flatnonzero(bad)[-1])
                    at = ref_rows.index[i]
                    raise AssertionError(
                        f"feature {col!r}{where} is not causal: value at {at} differs when the "
                        f"data is truncated at row {t} ({ts}): truncated={a[i]!r}, "
                        f"full={b[i]!r} ({int(bad.sum())} row(s) differ)"
                    )
    return rows
