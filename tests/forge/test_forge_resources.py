"""A forge run that opened the registry itself closes it (a long-lived caller runs thousands)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from singularity.config import load_settings
from singularity.errors import SingularityError
from singularity.forge.cycle import ForgeOptions, run_forge


def _open_files_under(root: Path) -> list[str]:
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(root)):
            out.append(target)
    return out


def test_run_forge_closes_the_registry_it_opened(tmp_path: Path) -> None:
    s = load_settings(environ={}, cwd=tmp_path, overrides={"data.dir": str(tmp_path / "data")}).settings
    opts = ForgeOptions(symbol="BTC/USDT", timeframe="1h", population=8, generations=1, seed=0,
                        workers=1, exchange="synthetic", progress=False)
    for _ in range(3):
        with pytest.raises(SingularityError):  # nothing stored: fails after opening the registry
            run_forge(s, opts, say=lambda _m: None)
    assert (tmp_path / "data" / "singularity.db").exists()
    assert _open_files_under(tmp_path) == []


def test_a_failed_run_start_shuts_the_early_pool_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the pool starts before the run is recorded (its workers import while the parent does its
    # bookkeeping): a failure there must not leave them behind
    import numpy as np
    import pandas as pd
    import psutil

    from singularity.data.store import CandleStore
    from singularity.registry import Registry

    s = load_settings(environ={}, cwd=tmp_path, overrides={"data.dir": str(tmp_path / "data")}).settings
    idx = pd.date_range("2024-01-01", periods=50, freq="1h", tz="UTC", name="timestamp")
    close = 100 + np.arange(50.0)
    CandleStore(s.data.dir).write("synthetic", "BTC/USDT", "1h", pd.DataFrame(
        {"open": close, "high": close + 1, "low": close - 1, "close": close, "volume": 1.0}, index=idx))

    def refuse(*_a: object, **_k: object) -> None:
        raise RuntimeError("registry down")

    monkeypatch.setattr(Registry, "start_run", refuse)
    opts = ForgeOptions(symbol="BTC/USDT", timeframe="1h", population=8, generations=1, seed=0,
                        workers=2, exchange="synthetic", progress=False)
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with pytest.raises(RuntimeError, match="registry down"):
        run_forge(s, opts, say=lambda _m: None)
    left = [p for p in psutil.Process().children(recursive=True) if p.pid not in before and p.is_running()
            and p.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in " ".join(p.cmdline())]
    assert left == []
