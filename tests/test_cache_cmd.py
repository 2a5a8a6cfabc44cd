"""``singularity cache``: sizes of generated files, and pruning by the retention settings."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from singularity.features.cache import FeatureCache
from singularity.features.catalogue import FeatureSpec
from singularity.features.settings import FeatureSettings
from singularity.registry import Registry

EXE = [sys.executable, "-m", "singularity"]
OLD = time.time() - 100 * 86_400


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SINGULARITY_")}
    env["COLUMNS"] = "200"
    return subprocess.run([*EXE, "--data-dir", str(cwd / "data"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def _age(p: Path, t: float) -> None:
    for root, _d, files in os.walk(p):
        for f in files:
            os.utime(os.path.join(root, f), (t, t))
    os.utime(p, (t, t))


def test_show_and_prune(tmp_path: Path) -> None:
    data = tmp_path / "data"
    idx = pd.date_range("2024-01-01", periods=50, freq="1h", tz="UTC")
    candles = pd.DataFrame({c: np.arange(50.0) + 1 for c in ("open", "high", "low", "close", "volume")},
                           index=idx)
    frame = pd.DataFrame({"f": np.arange(50.0)}, index=idx)
    FeatureCache(data / "features").store(FeatureSettings(), {"A/USDT": candles}, {"A/USDT": frame},
                                          [FeatureSpec(name="f", family="x")])
    reg = Registry(f"sqlite:///{data / 'singularity.db'}")
    run = reg.start_run(symbol="A/USDT", timeframe="1h", seed=1, settings={})
    champ = reg.add_strategy(run_id=run, symbol="A/USDT", timeframe="1h", expression="x", readable="x",
                             size=1, fitness=1.0, in_sample={})
    reg.promote(champ)
    reg.close()
    for name in (f"run-{run}", "run-999"):
        (data / "artifacts" / name).mkdir(parents=True)
        (data / "artifacts" / name / "model.txt").write_bytes(b"m" * 1000)
        _age(data / "artifacts" / name, OLD)
    (data / "reports").mkdir()
    (data / "reports" / f"strategy-{champ}.parquet").write_bytes(b"r" * 10)
    (data / "reports" / "strategy-998.parquet").write_bytes(b"r" * 10)
    (data / "runs").mkdir()
    (data / "runs" / "new.log").write_text("fresh\n")
    for p in [*(data / "reports").iterdir()]:
        _age(p, OLD)
    tmp = data / "ohlcv" / ".x.parquet.abc.tmp"
    tmp.parent.mkdir(parents=True)
    tmp.write_bytes(b"t")
    _age(tmp, time.time() - 7200)

    shown = _cli(["cache"], tmp_path)
    assert shown.returncode == 0, shown.stderr
    lines = {ln.split("│")[1].strip(): [c.strip() for c in ln.split("│")[2:]]
             for ln in shown.stdout.splitlines() if ln.count("│") >= 6}
    assert lines["feature cache"][1] == "1"  # one entry
    assert lines["artifacts"][1] == "2" and lines["reports"][1] == "2" and lines["runs"][1] == "1"
    assert lines["stale temp files"][1] == "1"

    dry = _cli(["cache", "prune", "--dry-run"], tmp_path)
    assert dry.returncode == 0 and "would remove 3 item(s)" in dry.stdout
    assert (data / "artifacts" / "run-999").exists()
    pruned = _cli(["cache", "prune"], tmp_path)
    assert pruned.returncode == 0, pruned.stderr
    assert sorted(p.name for p in (data / "artifacts").iterdir()) == [f"run-{run}"]  # the champion's
    assert sorted(p.name for p in (data / "reports").iterdir()) == [f"strategy-{champ}.parquet"]
    assert (data / "runs" / "new.log").exists() and not tmp.exists()
    assert len(FeatureCache(data / "features").entries()) == 1  # in use, small: kept
