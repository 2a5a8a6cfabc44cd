"""Two processes writing one cache entry at once: no error, no entry left broken."""

from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path

import pandas as pd
import pytest
from cache_writers import write_and_read
from small_features import SMALL, SYMBOLS

from singularity.data.synthetic import regime_switching_market
from singularity.features.cache import MANIFEST
from singularity.features.factory import FeatureFactory


@pytest.fixture(scope="module")
def universe() -> dict[str, pd.DataFrame]:
    return regime_switching_market(SYMBOLS, n_bars=330, seed=9)


def _equal(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> None:
    assert list(a) == list(b)
    for sym in a:
        pd.testing.assert_frame_equal(a[sym], b[sym], check_freq=False)


def test_manifest_naming_a_missing_file_is_a_miss_and_is_repaired(universe, tmp_path: Path) -> None:
    f = FeatureFactory(SMALL, cache_dir=tmp_path)
    fresh = f.build(universe, progress=False)
    entry = next(p for p in tmp_path.iterdir() if p.is_dir())
    manifest = json.loads((entry / MANIFEST).read_text())
    (entry / manifest["assets"][SYMBOLS[1]]["file"]).unlink()  # another writer's deletion
    again = f.build(universe, progress=False)
    assert f.last_cache_relation == "miss"
    _equal(again.frames, fresh.frames)
    third = f.build(universe, progress=False)
    assert f.last_cache_relation == "hit"  # the rebuild repaired the entry
    _equal(third.frames, fresh.frames)


def test_two_writers_of_one_entry_then_a_third_cycle(universe, tmp_path: Path) -> None:
    # Two histories with the same first candles (one entry), different lengths (other files).
    short = {s: d.iloc[:-1] for s, d in universe.items()}
    fs_long = FeatureFactory(SMALL).build(universe, progress=False)
    fs_short = FeatureFactory(SMALL).build(short, progress=False)
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    args = [(universe, fs_long.frames, fs_long.catalogue), (short, fs_short.frames, fs_short.catalogue)]
    procs = [ctx.Process(target=write_and_read,
                         args=(str(tmp_path), SMALL, u, fr, cat, 25, barrier, results, w))
             for w, (u, fr, cat) in enumerate(args)]
    for p in procs:
        p.start()
    got = [results.get(timeout=240) for _ in procs]
    for p in procs:
        p.join(30)
    errors = [e for _, errs, _ in got for e in errs]
    assert errors == [], errors[:2]
    # the third cycle: both histories build without error and agree with fresh builds
    f = FeatureFactory(SMALL, cache_dir=tmp_path)
    _equal(f.build(universe, progress=False).frames, fs_long.frames)
    _equal(f.build(short, progress=False).frames, fs_short.frames)
