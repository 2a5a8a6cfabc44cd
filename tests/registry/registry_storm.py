"""Worker of the registry storm test (module level so that spawned processes can import it)."""

from __future__ import annotations

import traceback
from datetime import UTC, datetime
from typing import Any


def storm_worker(url: str, barrier: Any, results: Any, worker: int, calls: int) -> None:
    errors: list[str] = []
    datasets: list[int] = []
    runs: list[int] = []
    try:
        barrier.wait(60)
        from singularity.registry import Registry

        reg = Registry(url)  # every worker opens the fresh database at the same instant
    except Exception as exc:
        results.put((worker, [f"open: {type(exc).__name__}: {exc}"], [], []))
        return
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    for i in range(calls):
        try:
            datasets.append(reg.upsert_dataset(fingerprint=f"fp-{i}", exchange="binance",
                                               symbol="BTC/USDT", timeframe="1h", first=t0,
                                               last=t0, rows=i))
        except Exception as exc:
            errors.append(f"upsert_dataset: {type(exc).__name__}: {exc}")
        try:
            runs.append(reg.start_run(symbol="BTC/USDT", timeframe="1h", seed=worker,
                                      settings={"worker": worker}))
        except Exception as exc:
            errors.append(f"start_run: {type(exc).__name__}: {exc}\n{traceback.format_exc()}")
    reg.close()
    results.put((worker, errors, datasets, runs))
