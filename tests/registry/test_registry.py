from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from singularity.errors import DataError
from singularity.registry import Registry


@pytest.fixture()
def reg(tmp_path: Path) -> Registry:
    return Registry(f"sqlite:///{tmp_path / 'reg.db'}")


def _run(reg: Registry, symbol: str = "BTC/USDT") -> int:
    return reg.start_run(symbol=symbol, timeframe="1h", seed=1, settings={"forge": {"seed": 1}})


def _strat(reg: Registry, run_id: int, expr: str, fitness: float, parents=()) -> int:
    return reg.add_strategy(run_id=run_id, symbol="BTC/USDT", timeframe="1h", expression=expr,
                            readable=expr, size=3, fitness=fitness, in_sample={"sharpe": fitness},
                            parents=parents)


def test_run_lifecycle_and_generations(reg: Registry) -> None:
    r1 = _run(reg)
    reg.set_stage(r1, "features", "8 assets", stage_seconds={"data": 0.5})
    got = reg.run(r1)
    assert (got.status, got.stage, got.stage_detail, got.generation) == ("running", "features", "8 assets", 1)
    reg.finish_run(r1, status="succeeded", seconds=3.0, stage_seconds={"data": 0.5, "features": 2.0})
    done = reg.run(r1)
    assert (done.status, done.stage, done.stage_seconds) == ("succeeded", "done", {"data": 0.5, "features": 2.0})
    assert reg.run(_run(reg)).generation == 2
    assert reg.run(_run(reg, "ETH/USDT")).generation == 1


def test_promote_retires_previous_champion_and_lineage(reg: Registry) -> None:
    run = _run(reg)
    a = _strat(reg, run, "gt(rsi_14, 0.5)", 1.0)
    b = _strat(reg, run, "lt(rsi_14, 0.3)", 2.0, parents=[a])
    c = _strat(reg, run, "x", 0.5, parents=[b, a])
    reg.promote(a)
    reg.promote(b)
    assert reg.strategy(a).status == "retired"
    assert reg.strategy(b).status == "champion"
    assert [s.id for s in reg.lineage(c)] == [c, b, a]
    assert [s.id for s in reg.reborn_seeds("BTC/USDT", "1h")] == [b, a, c]
    assert [s.id for s in reg.strategies(status="champion")] == [b]
    with pytest.raises(DataError, match="no strategy with id 999"):
        reg.strategy(999)


def test_dataset_upsert_is_idempotent(reg: Registry) -> None:
    kw = dict(fingerprint="abc", exchange="binance", symbol="BTC/USDT", timeframe="1h",
              first=pd.Timestamp("2024-01-01", tz="UTC").to_pydatetime(),
              last=pd.Timestamp("2024-02-01", tz="UTC").to_pydatetime(), rows=744)
    assert reg.upsert_dataset(**kw) == reg.upsert_dataset(**kw)


def test_models_and_generation_stats(reg: Registry) -> None:
    run = _run(reg)
    reg.add_model(run_id=run, name="lightgbm", artifact_path="/x", metrics={"log_loss": 0.69}, winner=True)
    reg.add_generation_stats(run, [{"generation": 0, "best": 1.0}, {"generation": 1, "best": 1.5}])
    assert [m.name for m in reg.models(run)] == ["lightgbm"]
    assert [g["best"] for g in reg.generation_stats(run)] == [1.0, 1.5]


def test_killed_run_is_marked_failed_at_next_start(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'reg.db'}"
    code = (
        "import os, signal\n"
        "from singularity.registry import Registry\n"
        f"r = Registry({url!r})\n"
        "rid = r.start_run(symbol='BTC/USDT', timeframe='1h', seed=0, settings={})\n"
        "r.set_stage(rid, 'evolution')\n"
        "print(rid, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == -9
    rid = int(p.stdout.strip())
    reg = Registry(url)
    run = reg.run(rid)
    assert run.status == "failed"
    assert "interrupted" in run.error and "evolution" in run.error


def test_live_run_is_not_failed(reg: Registry, tmp_path: Path) -> None:
    rid = _run(reg)
    Registry(reg.url)  # another process opening the registry while this one runs
    assert reg.run(rid).status == "running"
    assert os.getpid() == reg.run(rid).pid
