"""``singularity bakeoff`` in-process through typer's CliRunner, on a small stored market."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from planted import planted_market
from typer.testing import CliRunner

from singularity.cli import app
from singularity.data.store import CandleStore

CONFIG = """
[features.ceemdan]
enabled = false
[features.graph]
enabled = false
[features.particle_filter]
particles = 64
[bakeoff]
folds = 3
embargo_bars = 12
transformer_window = 8
transformer_epochs = 1
transformer_d_model = 8
transformer_heads = 2
transformer_layers = 1
lgbm_n_estimators = 20
[forge]
holdout_fraction = 0.2
embargo_bars = 24
"""


@pytest.fixture()
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for var in [v for v in os.environ if v.startswith("SINGULARITY_")]:
        monkeypatch.delenv(var)
    candles, _ = planted_market(2000)
    CandleStore(tmp_path / "store").write("binance", "BTC/USDT", "1h", candles)
    (tmp_path / "singularity.toml").write_text(CONFIG)
    return tmp_path


def test_bakeoff_json(workdir: Path) -> None:
    r = CliRunner().invoke(
        app, ["--data-dir", str(workdir / "store"), "bakeoff", "BTC/USDT", "--timeframe", "1h", "--json",
              "--tail", "1900", "--artifacts", str(workdir / "art")],
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert set(out) == {"models", "winner", "folds", "embargo"}
    assert (out["folds"], out["embargo"]) == (3, 12)
    assert [m["name"] for m in out["models"]] == ["logistic", "lightgbm", "transformer"]
    assert out["winner"] in {m["name"] for m in out["models"]}
    summary = json.loads((workdir / "art" / "bakeoff.json").read_text())
    # the holdout never reached the bake-off: of the last 1900 bars, the warm-up rows go,
    # then the last 20 % of the rest (holdout) and the 24 embargo bars before it
    index = planted_market(2000)[0].index[100:]
    ready = index[index >= summary["settings"]["train_start"]]
    assert len(ready) < 1900  # warm-up rows are not part of it
    train_end = ready[len(ready) - round(0.2 * len(ready)) - 24 - 1]
    assert summary["settings"]["train_end"] == str(train_end)
    assert (workdir / "art" / "lightgbm" / "model.txt").is_file()


def test_bakeoff_table_and_unknown_symbol(workdir: Path) -> None:
    args = ["--data-dir", str(workdir / "store"), "bakeoff"]
    r = CliRunner().invoke(app, [*args, "BTC/USDT", "--tail", "1900"], env={"COLUMNS": "120"})
    assert r.exit_code == 0, r.output
    assert "winner:" in r.stdout and "lightgbm" in r.stdout and "log-loss" in r.stdout
    assert (workdir / "store" / "artifacts" / "bakeoff-BTC_USDT-1h" / "bakeoff.json").is_file()
    r = CliRunner().invoke(app, [*args, "ETH/USDT"])
    assert r.exit_code != 0 and "ETH/USDT" in str(r.exception)
