"""``singularity evolve`` on a small candle store and ``singularity bench gp --json``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from gp_data import random_market

from singularity.data.store import CandleStore

EXE = [sys.executable, "-m", "singularity"]
CONFIG = """
[universe]
symbols = ["BTC/USDT"]
[features.ceemdan]
enabled = false
[features.particle_filter]
enabled = false
[features.graph]
enabled = false
[forge]
holdout_fraction = 0.25
embargo_bars = 10
"""


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SINGULARITY_")}
    return subprocess.run([*EXE, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_evolve_prints_the_hall_of_fame(tmp_path: Path) -> None:
    _, candles = random_market(n=900, seed=5)
    CandleStore(tmp_path / "data").write("binance", "BTC/USDT", "1h", candles)
    (tmp_path / "singularity.toml").write_text(CONFIG)
    (tmp_path / "champions.txt").write_text("# earlier champions\nneg(ts_zscore(logret_1, w20))\n")
    r = _run(["evolve", "BTC/USDT", "--timeframe", "1h", "--population", "24",
              "--generations", "1", "--workers", "1", "--seed", "3", "--no-progress",
              "--reborn", "champions.txt", "--out", "result.json"], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "hall of fame, BTC/USDT 1h" in r.stdout
    assert "the last" in r.stderr and "stay unseen" in r.stderr
    res = json.loads((tmp_path / "result.json").read_text())
    assert res["seed"] == 3 and len(res["generations"]) == 2
    assert res["hall_of_fame"][0]["expression"]
    stats = (tmp_path / "data" / "runs" / "gp-BTC_USDT-1h-seed3.jsonl").read_text().splitlines()
    assert [json.loads(s)["generation"] for s in stats] == [0, 1]


def test_evolve_unknown_symbol_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "singularity.toml").write_text(CONFIG)
    r = _run(["evolve", "BTC/USDT", "--no-progress"], tmp_path)
    assert r.returncode != 0
    assert r.stderr.strip().count("\n") == 0 and "no 1h candles" in r.stderr


def test_bench_gp_prints_one_json_line(tmp_path: Path) -> None:
    r = _run(["bench", "gp", "--bars", "300", "--population", "24", "--generations", "1",
              "--workers", "1", "--json"], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1
    res = json.loads(lines[0])
    for key in ("evals_per_s", "cpu_utilisation", "workers", "bars", "evaluations",
                "mean_tree_size", "node_evals_per_s"):
        assert key in res
    assert res["workers"] == 1 and res["bars"] == 300 and res["evaluations"] >= 24
