"""``singularity features build|list`` as a user runs them (subprocess, exit codes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from singularity.data.store import CandleStore
from singularity.data.synthetic import regime_switching_market

EXE = [sys.executable, "-m", "singularity"]
SYMBOLS = ["AAA/USDT", "BBB/USDT", "CCC/USDT"]
CONFIG = """
[data]
dir = "data"
[universe]
symbols = ["AAA/USDT", "BBB/USDT", "CCC/USDT"]
[features.indicators]
ma_periods = [10, 30]
vol_horizons = [24]
[features.ceemdan]
window = 64
trials = 8
stride = 8
max_imfs = 2
[features.graph]
corr_window = 32
gnn_enabled = false
"""


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SINGULARITY_")}
    return subprocess.run([*EXE, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("features_cli")
    (root / "singularity.toml").write_text(CONFIG)
    store = CandleStore(root / "data")
    for sym, frame in regime_switching_market(SYMBOLS, n_bars=300, seed=2).items():
        store.write("binance", sym, "1h", frame)
    return root


@pytest.mark.slow
def test_build_writes_the_symbol_table(project: Path) -> None:
    out = project / "out" / "bbb.parquet"
    r = run(["features", "build", "BBB/USDT", "--timeframe", "1h", "--out", str(out), "-w", "1"],
            project)
    assert r.returncode == 0, r.stderr
    assert "BBB/USDT 1h: 300 rows" in r.stdout and "3 assets" in r.stdout
    table = pq.read_table(out)
    catalogue = json.loads(table.schema.metadata[b"singularity.features"])
    frame = table.to_pandas()
    assert len(frame) == 300 and frame.index.tz is not None
    assert list(frame.columns) == [c["name"] for c in catalogue] + ["warmup"]
    assert {"indicators", "particle_filter", "ceemdan", "graph"} == {c["family"] for c in catalogue}
    # --until: a prefix of the cached build, the same rows
    cut = frame.index[249]
    r = run(["features", "build", "BBB/USDT", "--until", str(cut), "--out", str(out), "-w", "1"],
            project)
    assert r.returncode == 0, r.stderr
    assert "250 rows" in r.stdout and "cache prefix" in r.stdout
    pd.testing.assert_frame_equal(pd.read_parquet(out), frame.iloc[:250], check_freq=False)


def test_list_json(project: Path) -> None:
    r = run(["features", "list", "--json"], project)
    assert r.returncode == 0, r.stderr
    listed = json.loads(r.stdout)
    names = [f["name"] for f in listed["features"]]
    assert {"rsi_14", "pf_gap", "ceemdan_imf1_last", "graph_degree"} <= set(names)
    assert "ema_dist_30" in names and "ema_dist_200" not in names  # settings drive the list
    assert all(f["description"] and "\n" not in f["description"] for f in listed["features"])


def test_errors_are_one_line(project: Path) -> None:
    r = run(["features", "build", "ZZZ/USDT", "--out", "x.parquet"], project)
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "ZZZ/USDT" in r.stderr
    r = run(["features", "build", "AAA/USDT", "--until", "2020-01-01", "--out", "x.parquet"],
            project)
    assert r.returncode == 1 and "no 1h candles up to 2020-01-01" in r.stderr
    assert not (project / "x.parquet").exists()
