"""Purged, embargoed cross-validation for labels that span several bars (AFML ch. 7, 12).

Samples are the rows of X in time order, positions 0..n-1. Sample i's label interval is
[i, label_end[i]] (positions, inclusive; ``label_end`` defaults to i itself), e.g. the ``end``
column of :func:`singularity.labels.triple_barrier`.

For a test block of contiguous positions [a, b] with label horizon e = max(label_end[a..b]):

* purge: a training sample i is dropped when its interval overlaps [a, e], i.e. i <= e and
  label_end[i] >= a;
* embargo (K-fold, CPCV): training samples i in (e, e + embargo] after the block are dropped too,
  because features and labels just after a test block are serially correlated with it;
* walk-forward: no training sample follows the test block, so the embargo is a gap before it
  instead: training samples i >= a - embargo are dropped (like TimeSeriesSplit's ``gap``).

The splitters follow scikit-learn's splitter protocol: ``split(X, y=None, groups=None)`` yields
(train, test) position arrays; ``get_n_splits()``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import combinations
from math import comb

import numpy as np
from numpy.typing import ArrayLike


def _label_end(n: int, label_end: ArrayLike | None) -> np.ndarray:
    idx = np.arange(n, dtype=np.int64)
    if label_end is None:
        return idx
    end = np.asarray(label_end, dtype=np.int64)
    if end.shape != (n,):
        raise ValueError(f"label_end has {end.shape[0] if end.ndim else 0} entries for {n} samples")
    # an unknown end (-1) or one before the sample is read as 'ends where it starts'
    return np.maximum(end, idx)


def _blocks(test: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous runs [first, last] of a sorted position array."""
    if test.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(test) != 1)
    starts = np.concatenate(([0], breaks + 1))
    stops = np.concatenate((breaks, [test.size - 1]))
    return [(int(test[s]), int(test[e])) for s, e in zip(starts, stops, strict=True)]


def purged_train(
    test: np.ndarray, label_end: np.ndarray, embargo: int, *, candidates: np.ndarray | None = None
) -> np.ndarray:
    """Positions of ``candidates`` (default: all non-test samples) left after purging against
    every contiguous block of ``test`` and embargoing ``embargo`` samples after each block."""
    n = label_end.shape[0]
    keep = np.ones(n, dtype=bool)
    keep[test] = False
    if candidates is not None:
        mask = np.zeros(n, dtype=bool)
        mask[candidates] = True
        keep &= mask
    idx = np.arange(n)
    for a, b in _blocks(np.sort(test)):
        e = int(label_end[a : b + 1].max())
        keep &= ~((idx <= e) & (label_end >= a))
        keep &= ~((idx > e) & (idx <= e + embargo))
    return np.flatnonzero(keep)


def _n_samples(X: ArrayLike) -> int:
    return len(X)  # type: ignore[arg-type]


class PurgedKFold:
    """K contiguous folds (the first n % k folds one sample longer, as KFold without shuffle);
    training = every other sample, purged and embargoed around the test fold."""

    def __init__(self, n_splits: int = 5, *, embargo: int = 0, label_end: ArrayLike | None = None) -> None:
        if n_splits < 2:
            raise ValueError(f"PurgedKFold needs n_splits >= 2, got {n_splits}")
        if embargo < 0:
            raise ValueError(f"embargo must be >= 0, got {embargo}")
        self.n_splits = n_splits
        self.embargo = embargo
        self.label_end = label_end

    def get_n_splits(self, X: ArrayLike | None = None, y: ArrayLike | None = None, groups: ArrayLike | None = None) -> int:
        return self.n_splits

    def split(
        self, X: ArrayLike, y: ArrayLike | None = None, groups: ArrayLike | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        n = _n_samples(X)
        if n < self.n_splits:
            raise ValueError(f"cannot split {n} samples into {self.n_splits} folds")
        end = _label_end(n, self.label_end)
        sizes = np.full(self.n_splits, n // self.n_splits)
        sizes[: n % self.n_splits] += 1
        start = 0
        for size in sizes:
            test = np.arange(start, start + size)
            yield purged_train(test, end, self.embargo), test
            start += size


class PurgedWalkForward:
    """Walk-forward (expanding window) in the layout of scikit-learn's TimeSeriesSplit: the
    last ``n_splits * test_size`` samples form the test folds (test_size = n // (n_splits + 1)
    unless given); each fold trains on earlier samples only, purged against the fold and with
    an ``embargo`` gap before it; ``max_train_size`` makes the window rolling."""

    def __init__(
        self,
        n_splits: int = 5,
        *,
        embargo: int = 0,
        label_end: ArrayLike | None = None,
        test_size: int | None = None,
        max_train_size: int | None = None,
    ) -> None:
        if n_splits < 1:
            raise ValueError(f"PurgedWalkForward needs n_splits >= 1, got {n_splits}")
        if embargo < 0:
            raise ValueError(f"embargo must be >= 0, got {embargo}")
        self.n_splits = n_splits
        self.embargo = embargo
        self.label_end = label_end
        self.test_size = test_size
        self.max_train_size = max_train_size

    def get_n_splits(self, X: ArrayLike | None = None, y: ArrayLike | None = None, groups: ArrayLike | None = None) -> int:
        return self.n_splits

    def split(
        self, X: ArrayLike, y: ArrayLike | None = None, groups: ArrayLike | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        n = _n_samples(X)
        test_size = self.test_size or n // (self.n_splits + 1)
        first = n - self.n_splits * test_size
        if test_size < 1 or first < 1:
            raise ValueError(f"cannot make {self.n_splits} walk-forward folds from {n} samples")
        end = _label_end(n, self.label_end)
        for k in range(self.n_splits):
            a = first + k * test_size
            test = np.arange(a, a + test_size)
            lo = 0 if self.max_train_size is None else max(0, a - self.embargo - self.max_train_size)
            candidates = np.arange(lo, max(lo, a - self.embargo))
            yield purged_train(test, end, 0, candidates=candidates), test


class CombinatorialPurgedCV:
    """Combinatorial purged CV: the samples are cut into ``n_groups`` contiguous groups
    (sizes as KFold); every choice of ``n_test_groups`` groups is one split (test = those
    groups, train = the rest, purged and embargoed around each contiguous test block).

    The C(N, k) splits' test predictions assemble into C(N-1, k-1) backtest paths:
    ``paths()[p, g]`` is the split whose prediction covers group g on path p (the p-th split,
    in enumeration order, that tests group g).
    """

    def __init__(
        self,
        n_groups: int = 6,
        n_test_groups: int = 2,
        *,
        embargo: int = 0,
        label_end: ArrayLike | None = None,
    ) -> None:
        if not 1 <= n_test_groups < n_groups:
            raise ValueError(f"need 1 <= n_test_groups < n_groups, got {n_test_groups}, {n_groups}")
        if embargo < 0:
            raise ValueError(f"embargo must be >= 0, got {embargo}")
        self.n_groups = n_groups
        self.n_test_groups = n_test_groups
        self.embargo = embargo
        self.label_end = label_end

    def combinations(self) -> list[tuple[int, ...]]:
        return list(combinations(range(self.n_groups), self.n_test_groups))

    def get_n_splits(self, X: ArrayLike | None = None, y: ArrayLike | None = None, groups: ArrayLike | None = None) -> int:
        return comb(self.n_groups, self.n_test_groups)

    def get_n_paths(self) -> int:
        return comb(self.n_groups - 1, self.n_test_groups - 1)

    def group_bounds(self, n: int) -> list[tuple[int, int]]:
        """[start, stop) positions of every group for ``n`` samples."""
        sizes = np.full(self.n_groups, n // self.n_groups)
        sizes[: n % self.n_groups] += 1
        stops = np.cumsum(sizes)
        return [(int(s - z), int(s)) for s, z in zip(stops, sizes, strict=True)]

    def paths(self) -> np.ndarray:
        combos = self.combinations()
        out = np.empty((self.get_n_paths(), self.n_groups), dtype=np.int64)
        for g in range(self.n_groups):
            splits = [i for i, c in enumerate(combos) if g in c]
            out[:, g] = splits
        return out

    def split(
        self, X: ArrayLike, y: ArrayLike | None = None, groups: ArrayLike | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        n = _n_samples(X)
        if n < self.n_groups:
            raise ValueError(f"cannot cut {n} samples into {self.n_groups} groups")
        end = _label_end(n, self.label_end)
        bounds = self.group_bounds(n)
        for combo in self.combinations():
            test = np.concatenate([np.arange(*bounds[g]) for g in combo])
            yield purged_train(test, end, self.embargo), test

    def path_predictions(self, fold_predictions: Sequence[np.ndarray], n: int) -> np.ndarray:
        """Assemble per-split test predictions (in ``split`` order; each aligned with that
        split's test positions) into an array (n_paths, n, ...) of full backtest paths."""
        bounds = self.group_bounds(n)
        combos = self.combinations()
        first = np.asarray(fold_predictions[0])
        out = np.full((self.get_n_paths(), n, *first.shape[1:]), np.nan)
        for p, row in enumerate(self.paths()):
            for g, s in enumerate(row):
                pred = np.asarray(fold_predictions[s])
                offset = sum(bounds[h][1] - bounds[h][0] for h in combos[s] if h < g)
                lo, hi = bounds[g]
                out[p, lo:hi] = pred[offset : offset + hi - lo]
        return out
