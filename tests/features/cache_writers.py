"""Worker of the cache concurrency test (module level so that spawned processes import it)."""

from __future__ import annotations

import traceback
from typing import Any


def write_and_read(root: str, settings: Any, universe: Any, frames: Any, catalogue: Any,
                   rounds: int, barrier: Any, results: Any, worker: int) -> None:
    import pandas as pd

    from singularity.features.cache import FeatureCache

    cache = FeatureCache(root)
    errors: list[str] = []
    hits = 0
    barrier.wait(60)
    for _ in range(rounds):
        try:
            cache.store(settings, universe, frames, catalogue)
            entry = cache.lookup(settings, universe)
            if entry is not None and entry.relation == "hit":
                for sym in universe:
                    pd.testing.assert_frame_equal(entry.frames[sym], frames[sym], check_freq=False)
                hits += 1
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}")
    results.put((worker, errors, hits))
