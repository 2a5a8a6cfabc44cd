"""Time split of one forge cycle: a training window, an embargo, then the holdout."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from singularity.errors import DataError


@dataclass(frozen=True)
class Split:
    train: slice
    holdout: slice
    embargo: int

    def describe(self, index: pd.DatetimeIndex) -> str:
        t, h = index[self.train], index[self.holdout]
        return (f"train {t[0]:%Y-%m-%d %H:%M} → {t[-1]:%Y-%m-%d %H:%M} ({len(t)} bars), embargo {self.embargo}, "
                f"holdout {h[0]:%Y-%m-%d %H:%M} → {h[-1]:%Y-%m-%d %H:%M} ({len(h)} bars)")


def time_split(n: int, *, holdout_fraction: float, embargo: int, min_train: int = 500,
               min_holdout: int = 100) -> Split:
    """The last ``holdout_fraction`` of ``n`` bars is the holdout; ``embargo`` bars before it
    belong to neither side (labels and rolling windows of the training end cannot reach it)."""
    n_hold = round(n * holdout_fraction)
    train_end = n - n_hold - embargo
    if n_hold < min_holdout or train_end < min_train:
        raise DataError(f"{n} candles are too few to split: need at least {min_train} training bars, "
                        f"{embargo} embargo bars and {min_holdout} holdout bars "
                        f"(holdout fraction {holdout_fraction:g})")
    return Split(slice(0, train_end), slice(n - n_hold, n), embargo)
