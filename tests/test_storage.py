"""Atomic writes: stored files follow the umask; temporary files of killed writers are swept."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from singularity.data.store import CandleStore
from singularity.storage import atomic_write_bytes

SRC = Path(__file__).resolve().parents[1] / "src"


def candles(n: int) -> pd.DataFrame:
    """``n`` valid consecutive 1h candles."""
    idx = pd.date_range("2024-09-14", periods=n, freq="1h", tz="UTC", name="timestamp").as_unit("ns")
    base = 100.0 + pd.Series(range(n), dtype="float64").to_numpy()
    return pd.DataFrame({"open": base, "high": base + 2, "low": base - 1, "close": base + 1,
                         "volume": 10.0 + base}, index=idx)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_files_get_the_mode_of_the_umask(tmp_path: Path, mask: int, mode: int) -> None:
    old = os.umask(mask)
    try:
        atomic_write_bytes(tmp_path / "a.json", b"{}")
        store = CandleStore(tmp_path / "data")
        store.write("binance", "BTC/USDT", "1h", candles(5))
        series = store.path("binance", "BTC/USDT", "1h")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == mode
    atomic = [p for p in series.iterdir() if p.suffix in (".json", ".parquet")]
    assert atomic and {stat.S_IMODE(p.stat().st_mode) for p in atomic} == {mode}


def test_a_killed_writers_temporary_file_is_swept_by_the_next_write(tmp_path: Path) -> None:
    store = CandleStore(tmp_path / "data")
    store.write("binance", "BTC/USDT", "1h", candles(5))
    path = store.path("binance", "BTC/USDT", "1h") / "manifest.json"  # the series' commit file
    assert path.is_file()
    code = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(SRC)!r})
        from singularity.storage import atomic_path
        with atomic_path({str(path)!r}) as tmp:
            tmp.write_bytes(b"half a parquet file")
            os._exit(9)  # killed mid-write: no clean-up runs
    """)
    assert subprocess.run([sys.executable, "-c", code]).returncode == 9
    assert len(list(path.parent.glob(f".{path.name}.*.tmp"))) == 1
    store.write("binance", "BTC/USDT", "1h", candles(6).iloc[5:])  # an append: no rewrite
    assert list(path.parent.glob("*.tmp")) == []
    assert len(store.read("binance", "BTC/USDT", "1h")) == 6


def test_sweep_keeps_young_files_and_other_names(tmp_path: Path) -> None:
    from singularity.storage import sweep_temp_files

    (tmp_path / ".a.parquet.x1.tmp").write_bytes(b"")
    (tmp_path / ".b.parquet.x2.tmp").write_bytes(b"")
    assert sweep_temp_files(tmp_path, "a.parquet", older_than_s=3600) == []
    assert [p.name for p in sweep_temp_files(tmp_path, "a.parquet")] == [".a.parquet.x1.tmp"]
    assert [p.name for p in sweep_temp_files(tmp_path)] == [".b.parquet.x2.tmp"]
