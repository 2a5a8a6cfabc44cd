"""A short soak (benchmarks/soak.py): the engine trades a paced replay while real forge cycles
run beside it; a SIGKILLed cycle is failed in the registry and the next one starts, a SIGSTOPped
one is killed at its timeout, no process of either is left, and the loop never stalls."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.realdata
def test_short_soak_survives_killed_and_stopped_cycles(binance_dir) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SINGULARITY_")}
    env["PYTHONPATH"] = str(ROOT / "src")
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "soak.py"), "--cycles", "2", "--symbols", "1",
                        "--fault-at", "1,2", "--fault-stages", "data,features,bakeoff,evolution,gauntlet",
                        "--timeout", "25", "--history", "3000", "--replay", "1500",
                        "--data", str(binance_dir)],
                       capture_output=True, text=True, timeout=240, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    out = lines[-1]
    assert out["cycles"] == 2 and out["failed"] == 2 and out["failed_with_reason"] == 2 and out["hangs"] == 0
    assert out["faults"]["injected"] == 2 and out["faults"]["survived"] == 2, out["faults"]
    kill, stop = out["faults"]["detail"]
    assert kill["fault"] == "sigkill" and kill["registry_status"] == "failed" and "interrupted" in kill["registry_error"]
    assert stop["fault"] == "sigstop" and stop["error"].startswith("timed out after 25 s")
    assert out["processes_left"] == []
    assert out["candles_traded"] > kill["candles_at"]  # the engine kept trading through the faults
    assert out["loop_lag_ms"]["samples"] > 100
    assert set(out) >= {"cycles", "succeeded", "failed", "hangs", "loop_lag_ms", "rss_growth_mb", "faults", "seconds"}


@pytest.mark.slow
@pytest.mark.realdata
def test_engine_sigkill_mid_cycle_then_restart_recovers(binance_dir) -> None:
    """SIGKILL of the real engine (run --forge) while its cycle's pool is at work: the engine,
    the forge child and its pool workers are all gone within seconds; the restart on the same
    home exits 0, the ledger verifies with every replayed candle decided exactly once, and the
    orphaned cycle is failed in the registry and in the pipeline status."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SINGULARITY_")}
    env["PYTHONPATH"] = str(ROOT / "src")
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "soak.py"), "--engine-kill", "--symbols", "1",
                        "--history", "3000", "--replay", "1500", "--timeout", "120", "--kill-wait", "20",
                        "--fault-stages", "features,bakeoff,evolution,gauntlet", "--data", str(binance_dir)],
                       capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    out = json.loads([x for x in r.stdout.splitlines() if x.startswith("{")][-1])
    assert r.returncode == 0 and out["survived"], out
    assert out["pool_workers"] and set(out["pool_workers"]) <= set(out["before_kill"]) and out["left"] == []
    assert out["restart_rc"] == 0 and out["ledger_verified"] and out["candles_decided_once"] and out["candles"] == 1500
    assert out["orphan_run"]["status"] == "failed" and out["orphan_run"]["error"].startswith("interrupted")
    assert out["orphan_pipeline"]["state"] == "failed" and "orphaned" in out["orphan_pipeline"]["detail"]
