"""``singularity regimes SYMBOL`` as a user runs it (subprocess, exit codes, --json, --plot)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from singularity.data.store import CandleStore
from singularity.regimes.synthetic import planted_regime_market

EXE = [sys.executable, "-m", "singularity"]
CONFIG = """
[data]
dir = "data"
[universe]
symbols = ["S0/USDT", "S1/USDT", "S2/USDT"]
[forge]
workers = 1
[features.regimes]
window = 300
refit_every = 100
min_cluster_size = 30
min_samples = 5
persistence = 3
vol_short = 12
vol_long = 48
trend_window = 24
autocorr_window = 48
volume_window = 24
drawdown_window = 48
corr_window = 48
"""


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SINGULARITY_")}
    return subprocess.run([*EXE, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("regimes_cli")
    (root / "singularity.toml").write_text(CONFIG)
    store = CandleStore(root / "data")
    universe, _ = planted_regime_market(2, n_bars=900, seed=3, min_spell=100, max_spell=250)
    for sym, frame in universe.items():  # S2/USDT is in the universe but not stored
        store.write("binance", sym, "1h", frame)
    return root


def test_json_timeline_and_plot(project: Path) -> None:
    r = run(["regimes", "S0/USDT", "--json", "--plot", "chart.html"], project)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["symbol"] == "S0/USDT" and out["timeframe"] == "1h"
    assert out["cross_asset"] is True  # S1 is stored; S2 (absent) is simply left out
    assert len(out["timeline"]) == 900
    assert out["timeline"][0] == {"time": "2024-01-01T00:00:00+00:00", "regime": None,
                                  "probability": None}
    ids = {g["id"] for g in out["regimes"]}
    assert len(ids) >= 2 and all(g["name"].count(",") == 2 for g in out["regimes"])
    labelled = [e for e in out["timeline"] if e["regime"] is not None]
    assert labelled and {e["regime"] for e in labelled} == ids
    # the classifier's probability of the bar's regime; none where the regime was filled from
    # an older fit's centre (absent from the current window, unknown to its classifier)
    assert all(0 <= e["probability"] <= 1 for e in labelled if e["probability"] is not None)
    assert sum(e["probability"] is not None and e["probability"] > 0.5 for e in labelled) > len(labelled) / 2
    for row in out["transitions"].values():
        assert set(row) == {str(i) for i in ids} and abs(sum(row.values()) - 1) < 1e-3
    html = (project / "chart.html").read_text()
    assert "USDT regimes" in html and html.count('"type":"rect"') >= 2  # shaded spells


def test_table_output_in_a_pipe(project: Path) -> None:
    r = run(["regimes", "S0/USDT"], project)
    assert r.returncode == 0, r.stderr
    assert "regimes" in r.stdout and "transitions" in r.stdout and "timeline" in r.stdout
    assert "volatility," in r.stdout  # regime names are printed whole, not cut


def test_errors_are_one_line(project: Path) -> None:
    r = run(["regimes", "ZZZ/USDT"], project)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "ZZZ/USDT" in r.stderr
    r = run(["regimes", "S0/USDT", "--until", "2024-01-10"], project)
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert "regimes need more than" in r.stderr
    r = run(["regimes", "S0/USDT", "--plot", "bad.html", "--until", "2024-01-10"], project)
    assert not (project / "bad.html").exists()
