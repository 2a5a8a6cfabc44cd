"""Transactional access to the registry.

SQLite runs in WAL mode with a busy timeout, so the forge (writer) and the CLI or dashboard
(readers) in other processes can use it at once (see singularity.db). Every method is one
transaction; writing ones take the write lock when they begin, so concurrent writers queue
instead of interleaving a read and the insert that depends on it. A run
whose process died is never left "running": ``Registry(...)`` marks such runs failed when it
opens (crash-only recovery).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from singularity.db import create_schema, insert_ignore, make_engine, write_lock, writer
from singularity.errors import DataError
from singularity.registry.schema import (
    Base,
    Dataset,
    ForgeRun,
    GenerationStat,
    Model,
    Strategy,
    utcnow,
)
from singularity.runtime.process import ProcessIdentity, is_gone

__all__ = ["Registry", "make_engine"]


class Registry:
    def __init__(self, url: str, *, recover: bool = True) -> None:
        self.url = url
        self.engine = make_engine(url, future=True)
        create_schema(self.engine, Base.metadata)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._writes = sessionmaker(writer(self.engine), expire_on_commit=False)
        if recover:
            self.fail_interrupted_runs()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A read transaction (it takes no write lock; SQLite readers never wait for writers)."""
        with self._sessions.begin() as s:
            yield s

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction: it holds the write lock from its first statement."""
        with self._writes.begin() as s:
            yield s

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- recovery ------------------------------------------------------------------------
    def fail_interrupted_runs(self) -> list[int]:
        """Mark failed every 'running' run of this machine whose process is gone.

        A process is (machine id, boot id, pid, start time): a reused pid or a renamed host
        does not keep a dead run 'running'. Runs recorded before these ids existed fall back to
        the host name and pid.
        """
        host = socket.gethostname()
        failed: list[int] = []
        with self.write() as s:
            for run in s.scalars(select(ForgeRun).where(ForgeRun.status == "running")):
                if run.machine_id:
                    gone = is_gone(machine=run.machine_id, boot=run.boot_id or "", pid=run.pid,
                                   started=run.pid_started)
                else:
                    gone = None if run.host != host else is_gone(machine="", boot="", pid=run.pid,
                                                                 started=None)
                if gone:
                    run.status = "failed"
                    run.error = f"interrupted: process {run.pid} ended during stage '{run.stage}'"
                    run.finished_at = utcnow()
                    failed.append(run.id)
        return failed

    # -- datasets --------------------------------------------------------------------------
    def upsert_dataset(self, *, fingerprint: str, exchange: str, symbol: str, timeframe: str,
                       first: datetime, last: datetime, rows: int) -> int:
        # Insert-or-ignore, then select: two processes registering one dataset both get its id.
        with self.write() as s:
            s.execute(insert_ignore(Dataset.__table__, self.engine.dialect.name).values(
                fingerprint=fingerprint, exchange=exchange, symbol=symbol, timeframe=timeframe,
                first=first, last=last, rows=rows, created_at=utcnow()))
            return int(s.scalar(select(Dataset.id).where(Dataset.fingerprint == fingerprint)))

    # -- runs ------------------------------------------------------------------------------
    def start_run(self, *, symbol: str, timeframe: str, seed: int, settings: dict[str, Any],
                  dataset_id: int | None = None, agent_id: str = "",
                  parent_champion_id: int | None = None) -> int:
        me = ProcessIdentity.current()
        with self.write() as s:
            write_lock(s, f"forge-generation:{symbol}")  # read-then-insert of the next number
            prev = s.scalar(select(ForgeRun.generation).where(ForgeRun.symbol == symbol)
                            .order_by(ForgeRun.generation.desc()).limit(1))
            run = ForgeRun(symbol=symbol, timeframe=timeframe, seed=seed, settings=settings,
                           dataset_id=dataset_id, agent_id=agent_id or f"{socket.gethostname()}:{os.getpid()}",
                           parent_champion_id=parent_champion_id, generation=(prev or 0) + 1,
                           host=socket.gethostname(), pid=me.pid, machine_id=me.machine,
                           boot_id=me.boot, pid_started=me.started, status="running")
            s.add(run)
            s.flush()
            return run.id

    def set_stage(self, run_id: int, stage: str, detail: str = "", *,
                  stage_seconds: dict[str, float] | None = None) -> None:
        values: dict[str, Any] = {"stage": stage, "stage_detail": detail, "updated_at": utcnow()}
        if stage_seconds is not None:
            values["stage_seconds"] = dict(stage_seconds)
        with self.write() as s:
            s.execute(update(ForgeRun).where(ForgeRun.id == run_id).values(**values))

    def finish_run(self, run_id: int, *, status: str, seconds: float, error: str = "",
                   champion_id: int | None = None, report_path: str = "",
                   stage_seconds: dict[str, float] | None = None) -> None:
        if status not in ("succeeded", "failed"):
            raise ValueError(f"bad final status {status!r}")
        extra = {"stage_seconds": dict(stage_seconds)} if stage_seconds is not None else {}
        with self.write() as s:
            s.execute(update(ForgeRun).where(ForgeRun.id == run_id).values(
                **extra, status=status, seconds=seconds, error=error, champion_id=champion_id,
                report_path=report_path, finished_at=utcnow(), updated_at=utcnow(),
                stage="done" if status == "succeeded" else "failed"))

    def run(self, run_id: int) -> ForgeRun:
        with self.session() as s:
            run = s.get(ForgeRun, run_id)
            if run is None:
                raise DataError(f"no forge run with id {run_id}")
            return run

    def runs(self, *, symbol: str | None = None, limit: int = 50) -> list[ForgeRun]:
        q = select(ForgeRun).order_by(ForgeRun.id.desc()).limit(limit)
        if symbol:
            q = q.where(ForgeRun.symbol == symbol)
        with self.session() as s:
            return list(s.scalars(q))

    # -- strategies --------------------------------------------------------------------------
    def add_strategy(self, *, run_id: int, symbol: str, timeframe: str, expression: str,
                     readable: str, size: int, fitness: float, in_sample: dict[str, Any],
                     holdout: dict[str, Any] | None = None, gauntlet: list[Any] | None = None,
                     explanation: str = "", parents: Iterable[int] = (),
                     status: str = "candidate") -> int:
        with self.write() as s:
            st = Strategy(run_id=run_id, symbol=symbol, timeframe=timeframe, expression=expression,
                          readable=readable, size=size, fitness=fitness, in_sample=in_sample,
                          holdout=holdout or {}, gauntlet=gauntlet or [], explanation=explanation,
                          parents=list(parents), status=status)
            s.add(st)
            s.flush()
            return st.id

    def promote(self, strategy_id: int) -> None:
        """Make a strategy its symbol's champion; the previous champion is retired."""
        with self.write() as s:
            st = s.get(Strategy, strategy_id)
            if st is None:
                raise DataError(f"no strategy with id {strategy_id}")
            s.execute(update(Strategy).where(Strategy.symbol == st.symbol, Strategy.timeframe == st.timeframe,
                                             Strategy.status == "champion").values(status="retired"))
            st.status = "champion"

    def strategy(self, strategy_id: int) -> Strategy:
        with self.session() as s:
            st = s.get(Strategy, strategy_id)
            if st is None:
                raise DataError(f"no strategy with id {strategy_id}: see 'singularity registry list'")
            return st

    def strategies(self, *, symbol: str | None = None, status: str | None = None,
                   limit: int = 100) -> list[Strategy]:
        q = select(Strategy).order_by(Strategy.id.desc()).limit(limit)
        if symbol:
            q = q.where(Strategy.symbol == symbol)
        if status:
            q = q.where(Strategy.status == status)
        with self.session() as s:
            return list(s.scalars(q))

    def reborn_seeds(self, symbol: str, timeframe: str, *, limit: int = 10,
                     run_ids: Iterable[int] | None = None) -> list[Strategy]:
        """Champions first, then the best candidates by fitness (ties: the newest first, so the
        order never depends on the database's row order): the next cycle's seeds. ``run_ids``
        limits them to strategies of those runs (see ``forge.reborn``)."""
        where = [Strategy.symbol == symbol, Strategy.timeframe == timeframe]
        if run_ids is not None:
            where.append(Strategy.run_id.in_(list(run_ids)))
        with self.session() as s:
            champs = list(s.scalars(select(Strategy).where(
                *where, Strategy.status == "champion").order_by(Strategy.id.desc())))
            rest = list(s.scalars(select(Strategy).where(
                *where, Strategy.status != "champion").order_by(Strategy.fitness.desc(), Strategy.id.desc())
                .limit(limit)))
        seen: set[str] = set()
        out: list[Strategy] = []
        for st in champs + rest:
            if st.expression not in seen:
                seen.add(st.expression)
                out.append(st)
        return out[:limit]

    def record_window(self, run_id: int, window: dict[str, Any]) -> None:
        """Store the run's data window (exchange, symbol, timeframe, training and holdout spans,
        distinct trials searched) in its settings record, for ``run_windows``."""
        with self.write() as s:
            run = s.get(ForgeRun, run_id)
            if run is None:
                raise DataError(f"no forge run with id {run_id}")
            run.settings = {**(run.settings or {}), "window": dict(window)}

    def run_windows(self, *, exchange: str, symbol: str, timeframe: str) -> dict[int, dict[str, Any]]:
        """Run id -> recorded window, for the runs on this exchange, symbol and timeframe."""
        with self.session() as s:
            rows = s.execute(select(ForgeRun.id, ForgeRun.settings).where(
                ForgeRun.symbol == symbol, ForgeRun.timeframe == timeframe).order_by(ForgeRun.id))
            out: dict[int, dict[str, Any]] = {}
            for rid, settings in rows:
                w = (settings or {}).get("window")
                if w and w.get("exchange") == exchange:
                    out[int(rid)] = w
            return out

    def runs_without_window(self, *, symbol: str, timeframe: str) -> list[int]:
        """Runs on this symbol and timeframe that hold strategies but recorded no data window
        (made before windows were recorded): their data cannot be checked against a holdout."""
        with self.session() as s:
            rows = s.execute(select(ForgeRun.id, ForgeRun.settings).where(
                ForgeRun.symbol == symbol, ForgeRun.timeframe == timeframe,
                ForgeRun.id.in_(select(Strategy.run_id).where(Strategy.symbol == symbol,
                                                              Strategy.timeframe == timeframe)))
                .order_by(ForgeRun.id))
            return [int(rid) for rid, settings in rows if not (settings or {}).get("window")]

    def lineage(self, strategy_id: int) -> list[Strategy]:
        """The strategy and its ancestors, breadth first, each once."""
        out: list[Strategy] = []
        seen: set[int] = set()
        frontier = [strategy_id]
        with self.session() as s:
            while frontier:
                sid = frontier.pop(0)
                if sid in seen:
                    continue
                seen.add(sid)
                st = s.get(Strategy, sid)
                if st is None:
                    continue
                out.append(st)
                frontier.extend(int(p) for p in st.parents)
        return out

    # -- models and GP statistics ---------------------------------------------------------------
    def add_model(self, *, run_id: int, name: str, artifact_path: str, metrics: dict[str, Any],
                  winner: bool) -> int:
        with self.write() as s:
            m = Model(run_id=run_id, name=name, artifact_path=artifact_path, metrics=metrics, winner=winner)
            s.add(m)
            s.flush()
            return m.id

    def models(self, run_id: int) -> list[Model]:
        with self.session() as s:
            return list(s.scalars(select(Model).where(Model.run_id == run_id)))

    def add_generation_stats(self, run_id: int, rows: Iterable[dict[str, Any]]) -> None:
        with self.write() as s:
            s.add_all(GenerationStat(run_id=run_id, generation=int(r.get("generation", i)), stats=dict(r))
                      for i, r in enumerate(rows))

    def generation_stats(self, run_id: int) -> list[dict[str, Any]]:
        with self.session() as s:
            return [g.stats for g in s.scalars(select(GenerationStat).where(GenerationStat.run_id == run_id)
                                                .order_by(GenerationStat.generation))]
