"""The forge scheduler's supervision of child processes: secrets stay out of their
environment, a cycle's result is its JSON line, a timeout (or a stopped child) kills the whole
process group, a dead cycle is failed in the registry at once, and the next one starts."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import psutil
import pytest

from singularity.engine.scheduler import Scheduler, child_env, run_cycle
from singularity.engine.settings import SchedulerSettings


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_child_env_has_no_secrets() -> None:
    env = {"PATH": "/bin", "SINGULARITY_CONFIG": "/x.toml", "SINGULARITY_EXCHANGE__API_KEY": "k",
           "SINGULARITY_EXCHANGE__SECRET": "s", "SINGULARITY_LIVE_CONFIRM": "binance",
           "SINGULARITY_EXCHANGE__PASSWORD": "p", "TELEGRAM_BOT_TOKEN": "t", "AWS_SECRET_ACCESS_KEY": "a",
           "SINGULARITY_FORGE__POPULATION": "8"}
    assert child_env(env) == {"PATH": "/bin", "SINGULARITY_CONFIG": "/x.toml", "SINGULARITY_FORGE__POPULATION": "8"}


def test_child_env_gets_the_database_url_without_its_password() -> None:
    env = {"PATH": "/bin",
           "SINGULARITY_DATABASE_URL": "postgresql+psycopg://forge:db-pass-789@db.example:5432/singularity"}
    assert child_env(env) == {"PATH": "/bin",
                              "SINGULARITY_DATABASE_URL": "postgresql+psycopg://forge@db.example:5432/singularity"}
    sqlite = {"SINGULARITY_DATABASE_URL": "sqlite:////tmp/x/singularity.db"}
    assert child_env(sqlite) == sqlite  # nothing to remove
    assert child_env({"SINGULARITY_DATABASE_URL": "forge:db-pass-789"}) == {}  # not a URL: dropped
    nested = {"SINGULARITY_DATABASE__URL": "postgresql+psycopg://forge:db-pass-789@db/singularity"}
    assert child_env(nested) == {"SINGULARITY_DATABASE__URL": "postgresql+psycopg://forge@db/singularity"}


# A child that starts a grandchild in its group, prints noise then a JSON line.
_OK = ("import subprocess, sys, json; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
       "print('progress...'); print(json.dumps({'run_id': 7, 'champion': {'id': 3}})); sys.stdout.flush()")
_HANG = ("import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
         "print(p.pid, flush=True); time.sleep(60)")
_STOP = ("import os, signal, subprocess, sys; p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
         "print(p.pid, flush=True); os.kill(os.getpid(), signal.SIGSTOP)")


def test_result_is_the_json_line_and_the_group_is_killed_after(tmp_path: Path) -> None:
    res = asyncio.run(run_cycle("BTC/USDT", [sys.executable, "-c", _OK], env=dict(os.environ), timeout_s=60,
                                log_path=tmp_path / "c.log"))
    assert (res.status, res.run_id, res.champion, res.returncode) == ("succeeded", 7, {"id": 3}, 0)
    time.sleep(0.2)
    left = [p for p in psutil.process_iter() if _pgid(p.pid) == res.pid and not _gone(p.pid)]
    assert left == []  # the grandchild (a pool worker's stand-in) did not outlive the cycle


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


@pytest.mark.parametrize("script", [_HANG, _STOP], ids=["hung", "sigstopped"])
def test_timeout_kills_the_whole_process_group(tmp_path: Path, script: str) -> None:
    pids: list[int] = []
    t0 = time.monotonic()
    res = asyncio.run(run_cycle("BTC/USDT", [sys.executable, "-c", script], env=dict(os.environ), timeout_s=3.0,
                                nice=5, log_path=tmp_path / "c.log", on_start=pids.append))
    assert res.status == "failed" and res.error.startswith("timed out after 3 s")
    assert time.monotonic() - t0 < 20
    assert _gone(pids[0])
    survivors = [p.pid for p in psutil.process_iter() if _pgid(p.pid) == pids[0] and not _gone(p.pid)]
    assert survivors == []


def test_lower_priority_and_killed_child_reported(tmp_path: Path) -> None:
    async def main() -> tuple:
        seen: dict[str, int] = {}

        def started(pid: int) -> None:
            seen["pid"] = pid
            seen["nice"] = psutil.Process(pid).nice()
            os.kill(pid, signal.SIGKILL)

        res = await run_cycle("X/USDT", [sys.executable, "-c", "import time; time.sleep(30)"], env=dict(os.environ),
                              timeout_s=30, nice=7, log_path=tmp_path / "c.log", on_start=started)
        return res, seen

    res, seen = asyncio.run(main())
    assert seen["nice"] == min(19, os.nice(0) + 7)
    assert (res.status, res.error, res.returncode) == ("failed", "killed by signal SIGKILL", -9)


def test_one_cycle_at_a_time_in_queue_order(tmp_path: Path) -> None:
    """Two symbols queued: the second cycle starts only after the first ended; a symbol
    already queued is not queued twice; the cadence counts decided candles."""
    spans: dict[str, list[float]] = {}
    s = SchedulerSettings(enabled=True, every_candles=10, timeout_s=30)
    sched = Scheduler(s, registry_url=f"sqlite:///{tmp_path / 'r.db'}", timeframe="1h", log_dir=tmp_path,
                      argv_for=lambda sym, seed: [sys.executable, "-c", "import time; time.sleep(0.5); print('{}')"])

    async def main() -> None:
        async def done(res) -> None:
            spans[res.symbol] = [time.monotonic() - res.seconds, time.monotonic()]

        sched.on_result = done
        task = asyncio.ensure_future(sched.run())
        assert sched.request("A/USDT", "no champion") and not sched.request("A/USDT", "again")
        sched.candles("B/USDT", 6)
        assert "B/USDT" not in sched.queued
        sched.candles("B/USDT", 4)  # the 10th candle: due
        while len(spans) < 2:
            await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())
    assert [r.symbol for r in sched.results] == ["A/USDT", "B/USDT"]
    assert [r.status for r in sched.results] == ["succeeded", "succeeded"]
    assert spans["B/USDT"][0] >= spans["A/USDT"][1] - 0.05
    assert sched.cycles_started == {"A/USDT": 1, "B/USDT": 1} and sched.candles_since["B/USDT"] == 0


def test_pipeline_rows_reach_status(tmp_path: Path) -> None:
    """A forge cycle's progress, the pool and the engine in one table; ``status`` shows it."""
    import json

    from typer.testing import CliRunner

    from singularity.cli import app
    from singularity.engine.ledger import Ledger

    led = Ledger(f"sqlite:///{tmp_path / 'ledger-replay.db'}")
    led.write_pipeline([{"name": "forge:BTC/USDT", "kind": "forge", "symbol": "BTC/USDT", "state": "running",
                         "stage": "evolution", "progress": 0.5, "eta_s": 40.0, "pid": 4242,
                         "detail": {"run_id": 3, "reason": "no champion", "detail": "gen 2/5"}},
                        {"name": "pool", "kind": "pool", "state": "busy", "detail": {"workers": 2, "cpu_percent": 190.0}}])
    led.write_pipeline([{"name": "forge:BTC/USDT", "kind": "forge", "symbol": "BTC/USDT", "state": "succeeded",
                         "stage": "succeeded", "progress": 1.0, "eta_s": 0.0, "pid": 4242, "detail": {"run_id": 3}}])
    rows = {r["name"]: r for r in led.pipeline()}
    assert set(rows) == {"forge:BTC/USDT", "pool"}
    assert (rows["forge:BTC/USDT"]["state"], rows["forge:BTC/USDT"]["progress"]) == ("succeeded", 1.0)
    assert rows["pool"]["detail"] == {"workers": 2, "cpu_percent": 190.0}
    env = {"SINGULARITY_DATA_DIR": str(tmp_path)}
    r = CliRunner().invoke(app, ["status", "--mode", "replay", "--json"], env=env)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert [p["name"] for p in doc["pipeline"]] == ["forge:BTC/USDT", "pool"]
    r = CliRunner().invoke(app, ["status", "--mode", "replay"], env=env)
    assert "forge:BTC/USDT" in r.output and "succeeded" in r.output and "workers 2, CPU 190.0 %" in r.output


@pytest.mark.slow
def test_forge_child_ends_with_a_killed_engine(tmp_path: Path) -> None:
    """SIGKILL of the engine: its forge cycle (started with the engine's pid in its environment)
    exits by itself within seconds, and the registry marks its run failed on the next open."""
    import json as _json
    import subprocess

    import numpy as np
    import pandas as pd

    from singularity.config import load_settings
    from singularity.data.store import CandleStore
    from singularity.registry import Registry

    s = load_settings(environ={}, cwd=tmp_path, overrides={"data.dir": str(tmp_path / "data")}).settings
    rng = np.random.default_rng(3)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 3000)))
    idx = pd.date_range("2024-01-01", periods=close.size, freq="1h", tz="UTC", name="timestamp")
    CandleStore(s.data.dir).write("synthetic", "BTC/USDT", "1h", pd.DataFrame(
        {"open": close, "high": close * 1.001, "low": close * 0.999, "close": close, "volume": 1.0}, index=idx))
    cfg = tmp_path / "singularity.toml"
    cfg.write_text("[features.ceemdan]\nenabled = false\n[features.graph]\nenabled = false\n"
                   "[bakeoff]\nmodels = [\"logistic\"]\n")
    argv = [sys.executable, "-m", "singularity", "--config", str(cfg), "forge", "BTC/USDT", "--exchange", "synthetic",
            "--population", "2000", "--generations", "50", "--workers", "1", "--json"]
    # a stand-in engine: starts the cycle as the scheduler does, prints its pid, then waits
    engine_src = ("import json, os, subprocess, sys, time\n"
                  "from singularity.engine.scheduler import child_env\n"
                  "from singularity.runtime.process import PARENT_ENV\n"
                  "env = child_env(); env[PARENT_ENV] = str(os.getpid())\n"
                  f"p = subprocess.Popen({argv!r}, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,"
                  " start_new_session=True)\n"
                  "print(p.pid, flush=True); time.sleep(600)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SINGULARITY_")}
    env["SINGULARITY_DATA_DIR"] = str(tmp_path / "data")
    engine = subprocess.Popen([sys.executable, "-c", engine_src], env=env, stdout=subprocess.PIPE, text=True)
    try:
        child = int(engine.stdout.readline())
        reg = Registry(s.database_url, recover=False)
        deadline = time.time() + 180
        while time.time() < deadline and not (reg.runs() and reg.runs()[0].stage in ("features", "bakeoff", "evolution")):
            time.sleep(0.5)
        assert reg.runs() and not _gone(child)
        engine.kill()
        engine.wait()
        t0 = time.time()
        while time.time() - t0 < 15 and not _gone(child):
            time.sleep(0.2)
        assert _gone(child), "the forge child outlived the engine"
        run = Registry(s.database_url).runs()[0]
        assert run.status == "failed" and run.error.startswith("interrupted")
        assert _json  # (imported for symmetry with the soak's output parsing)
    finally:
        engine.kill()
        with __import__("contextlib").suppress(ProcessLookupError):
            os.killpg(child, signal.SIGKILL)


def test_an_unreaped_process_is_gone() -> None:
    """A cycle that ended but is not reaped yet (an orphan waits for init) is gone: its run is
    failed at the next registry open, not left 'running'."""
    import subprocess

    from singularity.runtime.process import boot_id, is_gone, machine_id, process_start_time

    p = subprocess.Popen([sys.executable, "-c", "pass"])
    started = process_start_time(p.pid)
    while psutil.Process(p.pid).status() != psutil.STATUS_ZOMBIE:
        time.sleep(0.05)
    try:
        assert is_gone(machine=machine_id(), boot=boot_id(), pid=p.pid, started=started) is True
    finally:
        p.wait()


def test_progress_and_eta_from_earlier_cycles() -> None:
    from singularity.engine.scheduler import _progress

    typical = {"data": 1.0, "features": 3.0, "bakeoff": 4.0, "evolution": 10.0, "gauntlet": 2.0}
    row = {"stage": "evolution", "stage_seconds": {"data": 1.0, "features": 3.0, "bakeoff": 4.0}}
    # 8 s of earlier stages, 5 s into evolution: 13 of 20 typical seconds, 7 left
    assert _progress(row, typical, 13.0) == (0.65, 7.0)
    assert _progress({"stage": "done", "stage_seconds": {}}, typical, 30.0) == (1.0, 0.0)
    assert _progress({"stage": "bakeoff", "stage_seconds": {}}, {}, 5.0) == (2 / 7, None)


def test_stopping_kills_the_running_cycle_and_says_so(tmp_path: Path) -> None:
    rows: list[dict] = []
    s = SchedulerSettings(enabled=True, timeout_s=60)
    sched = Scheduler(s, registry_url=f"sqlite:///{tmp_path / 'r.db'}", timeframe="1h", log_dir=tmp_path,
                      argv_for=lambda sym, seed: [sys.executable, "-c", "import time; time.sleep(60)"], poll_s=0.1)

    async def write(batch: list[dict]) -> None:
        rows.extend(batch)

    sched.write_status = write

    async def main() -> int:
        task = asyncio.ensure_future(sched.run())
        sched.request("A/USDT", "no champion")
        while not (sched.running.get("A/USDT") and sched.running["A/USDT"].pid):
            await asyncio.sleep(0.05)
        pid = sched.running["A/USDT"].pid
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return pid

    pid = asyncio.run(main())
    assert _gone(pid)
    last = [r for r in rows if r["name"] == "forge:A/USDT"][-1]
    assert (last["state"], last["stage"]) == ("stopped", "stopped")
