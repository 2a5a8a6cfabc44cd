"""Registry under concurrent writers: four processes open a fresh database at once and write."""

from __future__ import annotations

import multiprocessing as mp
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from registry_storm import storm_worker
from sqlalchemy import update

from singularity.registry import Registry
from singularity.registry.schema import ForgeRun

WORKERS = 4
CALLS = 25  # per worker: 100 upserts over 25 fingerprints, 100 runs of one symbol


def _storm(url: str) -> tuple[list[str], list[list[int]], list[int]]:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(WORKERS)
    results = ctx.Queue()
    procs = [ctx.Process(target=storm_worker, args=(url, barrier, results, w, CALLS))
             for w in range(WORKERS)]
    for p in procs:
        p.start()
    got = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    errors = [e for _, errs, _, _ in got for e in errs]
    datasets = [ds for _, _, ds, _ in got]
    runs = [r for _, _, _, rs in got for r in rs]
    return errors, datasets, runs


def _check_storm(url: str) -> None:
    errors, datasets, runs = _storm(url)
    assert errors == []
    # every worker got the same id for the same fingerprint
    assert all(ds == datasets[0] for ds in datasets) and len(set(datasets[0])) == CALLS
    reg = Registry(url, recover=False)
    try:
        gens = sorted(reg.run(r).generation for r in runs)
        assert gens == list(range(1, WORKERS * CALLS + 1))
    finally:
        reg.close()


def test_four_process_storm_sqlite(tmp_path: Path) -> None:
    _check_storm(f"sqlite:///{tmp_path / 'fresh.db'}")


def test_four_process_storm_postgres(postgres_db: str) -> None:
    _check_storm(postgres_db)


def test_timestamps_read_back_are_aware_utc(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'reg.db'}"
    reg = Registry(url)
    rid = reg.start_run(symbol="BTC/USDT", timeframe="1h", seed=1, settings={})
    reg.close()
    run = Registry(url).run(rid)  # a fresh engine: the value comes from the database
    assert run.started_at.tzinfo is not None and run.started_at.utcoffset() == timedelta(0)
    age = datetime.now(UTC) - run.started_at
    assert timedelta(0) <= age < timedelta(minutes=5)


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_dead_run_is_failed_despite_pid_reuse_and_host_rename(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'reg.db'}"
    reg = Registry(url)
    reused = reg.start_run(symbol="A", timeframe="1h", seed=1, settings={})
    renamed = reg.start_run(symbol="B", timeframe="1h", seed=1, settings={})
    alive = reg.start_run(symbol="C", timeframe="1h", seed=1, settings={})
    with reg.write() as s:
        # 'reused': its pid now belongs to a live process (ours) that started later than the run's
        s.execute(update(ForgeRun).where(ForgeRun.id == reused).values(
            pid=os.getpid(), pid_started=(reg.run(alive).pid_started or 0) - 3600))
        # 'renamed': the host name changed since, and its process is gone
        s.execute(update(ForgeRun).where(ForgeRun.id == renamed).values(
            host="old-name", pid=_dead_pid()))
    reg.close()
    assert sorted(Registry(url).fail_interrupted_runs()) == []  # the constructor already did it
    again = Registry(url, recover=False)
    assert (again.run(reused).status, again.run(renamed).status, again.run(alive).status) == (
        "failed", "failed", "running")
    assert "interrupted" in again.run(reused).error


def test_old_database_gains_the_new_columns(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "old.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE forge_runs (id INTEGER PRIMARY KEY, symbol VARCHAR(64), "
                "timeframe VARCHAR(8), settings JSON, seed INTEGER, status VARCHAR(16), "
                "stage VARCHAR(32), stage_detail TEXT, agent_id VARCHAR(64), generation INTEGER, "
                "parent_champion_id INTEGER, champion_id INTEGER, dataset_id INTEGER, "
                "host VARCHAR(255), pid INTEGER, started_at DATETIME, updated_at DATETIME, "
                "finished_at DATETIME, seconds FLOAT, stage_seconds JSON, error TEXT, "
                "report_path TEXT)")
    con.execute("INSERT INTO forge_runs (symbol, timeframe, settings, seed, status, stage, "
                "stage_detail, agent_id, generation, host, pid, started_at, updated_at, "
                "stage_seconds, error, report_path) VALUES ('A', '1h', '{}', 1, 'succeeded', "
                "'done', '', '', 1, 'h', 1, '2024-01-01 00:00:00.000000', "
                "'2024-01-01 00:00:00.000000', '{}', '', '')")
    con.commit()
    con.close()
    reg = Registry(f"sqlite:///{db}")
    assert reg.run(1).started_at == datetime(2024, 1, 1, tzinfo=UTC)
    assert reg.run(1).pid_started is None
    assert reg.run(reg.start_run(symbol="A", timeframe="1h", seed=1, settings={})).generation == 2
