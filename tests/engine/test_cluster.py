"""Forge cycles on a Dask cluster (``--cluster``): whole cycles, one per task, give the same
champions as the local child processes for the same seeds, report to the pipeline status like
local cycles, carry no secret (the database URL goes without its password; a worker takes its
own), and a task past its timeout is killed and its run failed."""

from __future__ import annotations

import asyncio
import pickle
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from singularity.config import load_settings
from singularity.data.store import CandleStore
from singularity.engine.cluster import (
    ClusterRunner,
    cluster_settings_doc,
    forge_task,
    worker_settings,
)
from singularity.engine.scheduler import CycleResult, Scheduler
from singularity.engine.settings import SchedulerSettings
from singularity.registry import Registry

SYMBOLS = ("BTC/USDT", "ETH/USDT")
TOML = """
[universe]
symbols = ["BTC/USDT", "ETH/USDT"]
[data]
dir = "{data}"
[features.indicators]
ma_periods = [10, 30]
vol_horizons = [24]
[features.ceemdan]
enabled = false
[features.particle_filter]
enabled = false
[features.graph]
enabled = false
[bakeoff]
models = ["logistic"]
folds = 2
[gauntlet]
tests = ["holdout"]
min_holdout_sharpe = -100.0
[engine.notify]
telegram_token = "tg-secret-token"
"""
KEYS = {"SINGULARITY_EXCHANGE__API_KEY": "key-abc-123", "SINGULARITY_EXCHANGE__SECRET": "secret-xyz-789"}
# the engine's registry URL with a password (a host that cannot resolve: a worker that used the
# task's URL as it came could not record its cycle)
PG_URL = "postgresql+psycopg://forge:db-pass-456@registry.invalid:5432/singularity?connect_timeout=5"


def _home(root: Path, load_feather: Any) -> tuple[Path, Any]:
    root.mkdir(parents=True)
    cfg = root / "singularity.toml"
    cfg.write_text(TOML.format(data=(root / "data").as_posix()))
    s = load_settings(cfg, environ=dict(KEYS)).settings
    store = CandleStore(s.data.dir)
    for sym in SYMBOLS:
        store.write(s.exchange.name, sym, "1h", load_feather(sym.split("/")[0], "1h", tail=1300))
    return cfg, s


def _champions(url: str) -> dict[str, int]:
    with Registry(url, recover=False) as reg:
        return {sym: reg.strategies(symbol=sym, status="champion", limit=5)[0].id for sym in SYMBOLS}


@pytest.mark.slow
@pytest.mark.realdata
def test_cluster_cycles_equal_local_cycles_and_a_timed_out_task_is_failed(tmp_path, load_feather) -> None:
    from distributed import LocalCluster

    # local cycles: child processes of one worker each (two at once, while the cluster starts)
    s_cycle = SchedulerSettings(population=8, generations=1, workers=1, bars=1200, timeout_s=300, max_concurrent=2)
    cfg_l, st_l = _home(tmp_path / "local", load_feather)
    cfg_c, st_c = _home(tmp_path / "cluster", load_feather)
    # the engine's settings name its registry with a password; the task carries the URL without
    # it, and the workers record with their own SINGULARITY_DATABASE_URL (the operator's setting)
    doc = cluster_settings_doc(load_settings(cfg_c, environ={**KEYS, "SINGULARITY_DATABASE_URL": PG_URL}).settings)
    assert st_c.exchange.api_key is not None  # the keys were set: none may reach the cluster
    assert doc["database"]["url"] == "postgresql+psycopg://forge@registry.invalid:5432/singularity?connect_timeout=5"
    wire = pickle.dumps((forge_task, doc, {"symbol": "BTC/USDT"}))
    for secret in (*KEYS.values(), "tg-secret-token", "db-pass-456"):
        assert secret.encode() not in wire

    async def main() -> dict[str, Any]:
        out: dict[str, Any] = {"local": [], "cluster": [], "rows": []}
        local = Scheduler(s_cycle, registry_url=st_l.database_url, timeframe="1h", log_dir=tmp_path / "logs-l",
                          config_path=cfg_l, env=KEYS)
        remote = Scheduler(s_cycle, registry_url=st_c.database_url, timeframe="1h", log_dir=tmp_path / "logs-c")

        async def to_local(r: CycleResult) -> None:
            out["local"].append(r)

        async def to_cluster(r: CycleResult) -> None:
            out["cluster"].append(r)

        async def rows(r: list[dict[str, Any]]) -> None:
            out["rows"].append(r)

        local.on_result, remote.on_result, remote.write_status = to_local, to_cluster, rows
        tasks = [asyncio.ensure_future(local.run())]
        for sym in SYMBOLS:  # the local cycles run while the cluster starts
            local.request(sym, "test")
        lc = await asyncio.to_thread(LocalCluster, n_workers=2, threads_per_worker=1, processes=True,
                                     dashboard_address=None, env={"SINGULARITY_DATABASE_URL": st_c.database_url})
        try:
            remote.cluster = ClusterRunner(lc.scheduler_address, doc)
            tasks.append(asyncio.ensure_future(remote.run()))
            for sym in SYMBOLS:
                remote.request(sym, "test")
            t0 = time.monotonic()
            while (len(out["local"]) < 2 or len(out["cluster"]) < 2) and time.monotonic() - t0 < 300:
                await asyncio.sleep(0.2)
            out["promoted"] = await asyncio.to_thread(_champions, st_c.database_url)
            # a cycle past its timeout: cancelled, its worker process restarted, its run failed. Its
            # budget must outlast the timeout on a quiet machine too: the GP stops after 8 stale
            # generations, and 2,000 trees finished inside 4 s there; 50,000 trees per generation
            # take seconds each, so at least nine generations cannot end in time.
            seen: dict[str, str] = {}
            out["timeout"] = await remote.cluster.run("BTC/USDT", {**remote.cluster_options("BTC/USDT", 99),
                                                                 "population": 50_000, "generations": 50},
                                                      timeout_s=4.0, registry_url=st_c.database_url,
                                                      on_start=lambda tag: seen.update(tag=tag))
            out["tag"] = seen["tag"]
            await remote.cluster.close()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.to_thread(lc.close)
        return out

    out = asyncio.run(main())
    local = {r.symbol: r for r in out["local"]}
    remote = {r.symbol: r for r in out["cluster"]}
    for sym in SYMBOLS:
        a, b = local[sym], remote[sym]
        assert (a.status, b.status) == ("succeeded", "succeeded"), (a.error, b.error)
        assert a.champion is not None and b.champion is not None
        assert (b.champion["expression"], b.champion["fitness"]) == (a.champion["expression"], a.champion["fitness"])
        assert b.champion["holdout"] == a.champion["holdout"]
    with Registry(st_c.database_url, recover=False) as reg:
        for sym in SYMBOLS:  # the cluster's runs are in the engine's registry, champions promoted
            run = next(r for r in reg.runs(symbol=sym) if r.id == remote[sym].run_id)
            assert run.status == "succeeded" and run.champion_id == remote[sym].champion["id"]
        assert out["promoted"] == {sym: remote[sym].champion["id"] for sym in SYMBOLS}
        failed = [r for r in reg.runs(symbol="BTC/USDT")
                  if ((r.settings or {}).get("options") or {}).get("tag") == out["tag"]]
    # the pipeline status saw the cycles on the cluster: stages while running, then the end
    flat = [row for batch in out["rows"] for row in batch]
    forge = [r for r in flat if r["kind"] == "forge"]
    assert {r["symbol"] for r in forge if r["state"] == "succeeded"} == set(SYMBOLS)
    assert any(r["state"] == "running" and r["stage"] not in ("starting", "") for r in forge)
    assert any(r["name"] == "cluster" and r["state"] == "busy" and r["detail"]["cluster"] for r in flat)
    res = out["timeout"]
    assert res.status == "failed" and res.error.startswith("timed out after 4 s on the cluster")
    assert len(failed) == 1 and res.run_id == failed[0].id, [(r.id, r.status, r.error) for r in failed]
    assert failed[0].status == "failed", (failed[0].status, failed[0].error, failed[0].stage)
    assert not psutil.pid_exists(failed[0].pid) or psutil.Process(failed[0].pid).status() == psutil.STATUS_ZOMBIE


def test_database_password_stays_off_the_cluster_and_a_worker_fills_its_own(tmp_path) -> None:
    from singularity.errors import ConfigError

    cfg = tmp_path / "singularity.toml"
    cfg.write_text(TOML.format(data=(tmp_path / "data").as_posix()))
    s = load_settings(cfg, environ={"SINGULARITY_DATABASE_URL": PG_URL}).settings
    doc = cluster_settings_doc(s)
    bare = "postgresql+psycopg://forge@registry.invalid:5432/singularity?connect_timeout=5"
    assert doc["database"]["url"] == bare and s.database_url == PG_URL
    assert b"db-pass-456" not in pickle.dumps((forge_task, doc, {"symbol": "BTC/USDT"}))
    # the worker: its operator's URL when set, else the bare one (the driver's PGPASSWORD/.pgpass)
    assert worker_settings(doc, {"SINGULARITY_DATABASE_URL": PG_URL}).database_url == PG_URL
    assert worker_settings(doc, {}).database_url == bare
    # no password, nothing changed; the default SQLite registry has no URL to carry
    plain = load_settings(cfg, environ={"SINGULARITY_DATABASE_URL": bare}).settings
    assert cluster_settings_doc(plain)["database"]["url"] == bare
    assert cluster_settings_doc(load_settings(cfg, environ={}).settings)["database"]["url"] is None
    with pytest.raises(ConfigError, match=r"database\.url is not a database URL"):
        cluster_settings_doc(load_settings(cfg, environ={"SINGULARITY_DATABASE_URL": "registry"}).settings)


def test_cluster_setting_and_flag_reach_the_scheduler(btc_home) -> None:
    from typer.testing import CliRunner

    from singularity.cli import app
    from singularity.engine.assemble import RunOptions, attach_scheduler, build_replay
    from singularity.errors import ConfigError

    s = load_settings(btc_home.config, environ={"SINGULARITY_ENGINE__SCHEDULER__CLUSTER": "tcp://127.0.0.1:8786",
                                                **KEYS}).settings
    opts = RunOptions(mode="replay", symbols=("BTC/USDT",), timeframe="1h", start=btc_home.candles.index[400])
    rot = attach_scheduler(build_replay(s, opts), s, opts, start=False)
    runner = rot.scheduler.cluster
    assert runner is not None and runner.address == "tcp://127.0.0.1:8786" and runner._client is None
    assert not any(v.encode() in pickle.dumps(runner.settings_doc) for v in KEYS.values())
    assert rot.scheduler.cluster_options("BTC/USDT", 7)["workers"] == 1
    r = CliRunner().invoke(app, ["run", "--mode", "replay", "--forge", "--cluster", "localhost:8786"],
                           env={"SINGULARITY_CONFIG": str(btc_home.config)})
    assert isinstance(r.exception, ConfigError) and "tcp://HOST:8786" in str(r.exception)
