"""Purged CV splitters on small index arrays with exact expected splits."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import KFold, TimeSeriesSplit

from singularity.models.cv import CombinatorialPurgedCV, PurgedKFold, PurgedWalkForward


def as_lists(splits: object) -> list[tuple[list[int], list[int]]]:
    return [(tr.tolist(), te.tolist()) for tr, te in splits]  # type: ignore[attr-defined]


def ends(n: int, span: int) -> np.ndarray:
    """Each label spans its bar and the next ``span`` bars (clipped at the last)."""
    return np.minimum(np.arange(n) + span, n - 1)


def test_kfold_without_overlap_is_plain_kfold() -> None:
    X = np.zeros((10, 1))
    expected = as_lists(KFold(3).split(X))
    assert as_lists(PurgedKFold(3).split(X)) == expected


def test_kfold_purges_and_embargoes() -> None:
    # folds [0-3], [4-6], [7-9]; labels end one bar later; embargo 1
    cv = PurgedKFold(3, embargo=1, label_end=ends(10, 1))
    assert as_lists(cv.split(np.zeros(10))) == [
        # test 0..3 looks up to bar 4: 0..4 purged (4 overlaps), 5 embargoed
        ([6, 7, 8, 9], [0, 1, 2, 3]),
        # test 4..6 looks up to 7: 3 (label 3..4) and 7 purged, 8 embargoed
        ([0, 1, 2, 9], [4, 5, 6]),
        # test 7..9: 6 (label 6..7) purged; nothing after the end to embargo
        ([0, 1, 2, 3, 4, 5], [7, 8, 9]),
    ]
    assert cv.get_n_splits() == 3


def test_walk_forward_without_overlap_is_time_series_split() -> None:
    X = np.zeros((12, 1))
    expected = as_lists(TimeSeriesSplit(3).split(X))
    assert as_lists(PurgedWalkForward(3).split(X)) == expected


def test_walk_forward_purges_and_gaps() -> None:
    # test folds [3-5], [6-8], [9-11]; labels span two more bars; embargo gap 1 before a fold
    cv = PurgedWalkForward(3, embargo=1, label_end=ends(12, 2))
    assert as_lists(cv.split(np.zeros(12))) == [
        # candidates 0..1 (2 is the gap); 1's label (1..3) reaches the fold -> purged
        ([0], [3, 4, 5]),
        # candidates 0..4; 4's label (4..6) reaches 6 -> purged
        ([0, 1, 2, 3], [6, 7, 8]),
        ([0, 1, 2, 3, 4, 5, 6], [9, 10, 11]),
    ]


def test_walk_forward_rolling_window() -> None:
    cv = PurgedWalkForward(3, embargo=1, label_end=ends(12, 2), max_train_size=3)
    # fold 3: candidates 5..7 (3 bars before the gap at 8); 7 purged
    assert as_lists(cv.split(np.zeros(12)))[2] == ([5, 6], [9, 10, 11])


def test_walk_forward_never_trains_on_the_future() -> None:
    le = ends(200, 7)
    for train, test in PurgedWalkForward(4, embargo=5, label_end=le).split(np.zeros(200)):
        assert le[train].max() < test.min()
        assert train.max() < test.min() - 5


def test_cpcv_splits_exact() -> None:
    # 12 samples in 4 groups of 3: g0 0-2, g1 3-5, g2 6-8, g3 9-11; labels end one bar later
    cv = CombinatorialPurgedCV(4, 2, embargo=1, label_end=ends(12, 1))
    assert cv.get_n_splits() == 6 and cv.get_n_paths() == 3
    assert as_lists(cv.split(np.zeros(12))) == [
        ([8, 9, 10, 11], [0, 1, 2, 3, 4, 5]),  # (g0,g1): 6 purged, 7 embargoed
        ([11], [0, 1, 2, 6, 7, 8]),  # (g0,g2): 3 purged, 4 embargoed; 5 purged, 9 purged, 10 embargoed
        ([5, 6, 7], [0, 1, 2, 9, 10, 11]),  # (g0,g3): 3 purged, 4 embargoed; 8 purged
        ([0, 1, 11], [3, 4, 5, 6, 7, 8]),  # (g1,g2): 2 and 9 purged, 10 embargoed
        ([0, 1], [3, 4, 5, 9, 10, 11]),  # (g1,g3): 2, 6, 8 purged, 7 embargoed
        ([0, 1, 2, 3, 4], [6, 7, 8, 9, 10, 11]),  # (g2,g3): 5 purged
    ]


def test_cpcv_paths_and_assembly() -> None:
    cv = CombinatorialPurgedCV(4, 2)
    assert cv.paths().tolist() == [[0, 0, 1, 2], [1, 3, 3, 4], [2, 4, 5, 5]]
    # each split "predicts" its test positions plus 100 x its split number
    preds = [test + 100.0 * s for s, (_, test) in enumerate(cv.split(np.zeros(12)))]
    paths = cv.path_predictions(preds, 12)
    assert paths.shape == (3, 12)
    assert paths[0].tolist() == [0, 1, 2, 3, 4, 5, 106, 107, 108, 209, 210, 211]
    assert paths[1].tolist() == [100, 101, 102, 303, 304, 305, 306, 307, 308, 409, 410, 411]
    assert paths[2].tolist() == [200, 201, 202, 403, 404, 405, 506, 507, 508, 509, 510, 511]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="n_splits"):
        PurgedKFold(1)
    with pytest.raises(ValueError, match="label_end"):
        list(PurgedKFold(2, label_end=[1, 2]).split(np.zeros(5)))
    with pytest.raises(ValueError, match="walk-forward"):
        list(PurgedWalkForward(5).split(np.zeros(4)))
    with pytest.raises(ValueError, match="n_test_groups"):
        CombinatorialPurgedCV(3, 3)
