"""Forge cycles in the background: supervised child processes the event loop only waits on.

A cycle is ``python -m singularity forge SYMBOL ... --json`` started with
``asyncio.create_subprocess_exec`` (a fresh interpreter, never a fork of the engine), in its
own process group (``start_new_session``), at a lower CPU priority, with every secret removed
from its environment (exchange keys, the live-trading confirmation). It owns the machine's one
worker pool while it runs; one cycle at a time by default. Its stderr goes to its own log file
(no two processes write one file), its result is the JSON line it prints, its progress is the
stage it writes to the registry. A cycle past its timeout is killed with its whole process
group; whatever way it ends, the group is killed afterwards (no pool worker outlives it) and
the registry's crash recovery marks a run whose process is gone failed at once.

Every step the scheduler takes is awaited (subprocess pipes, timers, the database in a thread):
nothing here blocks the engine's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from singularity.engine.settings import SchedulerSettings
from singularity.forge.cycle import STAGES

log = logging.getLogger(__name__)

SECRET_MARKERS = ("API_KEY", "APIKEY", "SECRET", "TOKEN", "PASSWORD", "PASSPHRASE", "PRIVATE_KEY")
"""Environment variables whose name contains one of these never reach a forge child."""


def child_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """``environ`` (default: this process's) without the exchange keys, the live-trading
    confirmation or anything named like a secret; the database URL loses its password (the
    child's driver finds it itself, e.g. PostgreSQL's ``~/.pgpass`` or ``PGPASSFILE``)."""
    from singularity.config import DATABASE_URL_VARS, SECRET_ENV_VARS, url_without_password
    from singularity.engine.guard import CONFIRM_VAR
    from singularity.errors import ConfigError

    env = dict(os.environ if environ is None else environ)
    for k in list(env):
        up = k.upper()
        if (k in SECRET_ENV_VARS or k == CONFIRM_VAR or up.startswith("SINGULARITY_EXCHANGE__")
                or any(m in up for m in SECRET_MARKERS)):
            del env[k]
    for k in DATABASE_URL_VARS:
        if k in env:
            try:
                env[k] = url_without_password(env[k])
            except ConfigError:  # not a URL: nothing of it is passed on
                del env[k]
    return env


@dataclass(frozen=True)
class CycleResult:
    symbol: str
    status: str
    """``succeeded`` or ``failed``."""
    run_id: int | None
    champion: dict[str, Any] | None
    error: str
    seconds: float
    returncode: int | None
    pid: int
    output: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"symbol": self.symbol, "status": self.status, "run_id": self.run_id,
                "champion_id": (self.champion or {}).get("id"), "error": self.error,
                "seconds": round(self.seconds, 3), "returncode": self.returncode, "pid": self.pid}


def _last_json(stdout: bytes) -> dict[str, Any] | None:
    for line in reversed(stdout.decode("utf-8", "replace").splitlines()):
        line = line.strip()
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                out = json.loads(line)
                return out if isinstance(out, dict) else None
    return None


def _tail(path: Path | None, n: int = 400) -> str:
    if path is None or not path.exists():
        return ""
    data = path.read_bytes()[-4000:].decode("utf-8", "replace").strip().splitlines()
    return (data[-1] if data else "")[:n]


def _spawn(argv: list[str], env: dict[str, str], log_path: Path | None, out_path: Path) -> subprocess.Popen[bytes]:
    with open(out_path, "wb") as out, (open(log_path, "ab") if log_path is not None
                                       else open(os.devnull, "wb")) as err:
        # the child holds its own descriptors; ours close here
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                                start_new_session=True)


async def _exited(proc: subprocess.Popen[bytes]) -> None:
    """Until the process has exited (``poll`` is a non-blocking ``waitpid``)."""
    while proc.poll() is None:
        await asyncio.sleep(0.1)


def kill_group(pgid: int) -> None:
    """SIGKILL every process of the group (the cycle and its pool workers); gone is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


async def run_cycle(symbol: str, argv: Sequence[str], *, env: dict[str, str], timeout_s: float,
                    nice: int = 10, log_path: Path | None = None,
                    on_start: Callable[[int], None] | None = None) -> CycleResult:
    """Run one cycle's child process to its end (or its timeout) without blocking the loop.

    The child is started from a thread (fork and exec, and the wait for the exec, are off the
    loop), its stdout goes to a file (no pipe a surviving grandchild could hold open), and its
    exit is polled with a non-blocking ``waitpid``."""
    t0 = time.monotonic()
    out_path = (log_path.with_suffix(".out") if log_path is not None
                else Path(tempfile.mkstemp(prefix="forge-", suffix=".out")[1]))
    spawn = asyncio.ensure_future(asyncio.to_thread(_spawn, list(argv), env, log_path, out_path))
    try:
        proc = await asyncio.shield(spawn)
    except asyncio.CancelledError:  # stopping while the child starts: it must not run on
        spawn.add_done_callback(lambda f: None if f.cancelled() or f.exception() else kill_group(f.result().pid))
        raise
    pid = proc.pid
    with contextlib.suppress(OSError):  # its pool workers inherit the priority
        os.setpriority(os.PRIO_PROCESS, pid, min(19, os.getpriority(os.PRIO_PROCESS, 0) + nice))
    if on_start is not None:
        on_start(pid)
    timed_out = False
    try:
        await asyncio.wait_for(_exited(proc), timeout_s)
    except TimeoutError:
        timed_out = True
    finally:
        # whatever happened (success, crash, timeout, the engine stopping): nothing of the
        # cycle's process group is left running
        kill_group(pid)
        if proc.poll() is None:
            with contextlib.suppress(BaseException):
                await asyncio.shield(asyncio.wait_for(_exited(proc), 10.0))
    stdout = await asyncio.to_thread(out_path.read_bytes) if out_path.exists() else b""
    if log_path is None:
        out_path.unlink(missing_ok=True)
    rc = proc.returncode
    out = _last_json(stdout)
    seconds = time.monotonic() - t0
    if rc == 0 and out is not None and not timed_out:
        return CycleResult(symbol, "succeeded", out.get("run_id"), out.get("champion"), "", seconds, rc,
                           pid, out)
    if timed_out:
        error = f"timed out after {timeout_s:g} s: process group killed"
    elif rc is not None and rc < 0:
        error = f"killed by signal {signal.Signals(-rc).name}"
    else:
        error = f"exit code {rc}: {_tail(log_path)}"
    return CycleResult(symbol, "failed", None, None, error, seconds, rc, pid, out)


def forge_argv(symbol: str, timeframe: str, s: SchedulerSettings, *, seed: int,
               config_path: str | Path | None = None, exchange: str | None = None,
               end: str | None = None, python: str = sys.executable) -> list[str]:
    argv = [python, "-m", "singularity"]
    if config_path is not None:
        argv += ["--config", str(config_path)]
    argv += ["forge", symbol, "--timeframe", timeframe, "--population", str(s.population),
             "--generations", str(s.generations), "--workers", str(s.workers), "--seed", str(seed),
             "--json"]
    if s.bars is not None:
        argv += ["--bars", str(s.bars)]
    if exchange is not None:
        argv += ["--exchange", exchange]
    if end is not None:
        argv += ["--to", end]
    return argv


@dataclass
class _Cycle:
    symbol: str
    reason: str
    seed: int
    pid: int = 0
    started: float = 0.0
    started_wall: float = 0.0
    run_id: int | None = None
    stage: str = "starting"
    detail: str = ""
    progress: float = 0.0
    eta_s: float | None = None
    procs: dict[int, Any] = field(default_factory=dict)
    tag: str = ""
    """Set for a cycle on the cluster (its registry run carries it)."""


class Scheduler:
    """Decides when a symbol needs a cycle and runs cycles one (or ``max_concurrent``) at a
    time. ``on_result`` receives each finished cycle (the engine's rotation logic);
    ``write_status`` receives pipeline rows (the status table)."""

    def __init__(self, settings: SchedulerSettings, *, registry_url: str, timeframe: str,
                 log_dir: Path, config_path: str | Path | None = None, exchange: str | None = None,
                 argv_for: Callable[[str, int], list[str]] | None = None,
                 env: dict[str, str] | None = None, poll_s: float = 1.0) -> None:
        self.s = settings
        self.registry_url = registry_url
        self.timeframe = timeframe
        self.exchange = exchange
        self.cluster: Any = None
        """A ``ClusterRunner``: cycles go to the Dask cluster instead of child processes."""
        self.log_dir = Path(log_dir)
        self.end_for: Callable[[str], str | None] = lambda _sym: None
        """The time before which a cycle of the symbol may read candles (a replay: the end of
        what it has decided), None = all stored."""
        self.argv_for = argv_for or (lambda sym, seed: forge_argv(
            sym, timeframe, settings, seed=seed, config_path=config_path, exchange=exchange,
            end=self.end_for(sym)))
        from singularity.runtime.process import PARENT_ENV

        self.env = child_env(env)
        self.env[PARENT_ENV] = str(os.getpid())
        self.poll_s = poll_s
        self.queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self.queued: set[str] = set()
        self.running: dict[str, _Cycle] = {}
        self.results: list[CycleResult] = []
        self.candles_since: dict[str, int] = {}
        self.cycles_started: dict[str, int] = {}
        self.on_result: Callable[[CycleResult], Awaitable[None]] | None = None
        self.write_status: Callable[[list[dict[str, Any]]], Awaitable[None]] | None = None
        self.to_thread: Callable[..., Awaitable[Any]] = asyncio.to_thread

    # -- when ------------------------------------------------------------------------------

    def request(self, symbol: str, reason: str) -> bool:
        """Queue a cycle for ``symbol`` unless one is queued or running; True if queued."""
        if symbol in self.queued or symbol in self.running:
            return False
        self.queued.add(symbol)
        self.queue.put_nowait((symbol, reason))
        return True

    def candles(self, symbol: str, n: int) -> None:
        """``n`` more candles of ``symbol`` were decided: a cycle every ``every_candles``."""
        if not self.s.every_candles or n <= 0:
            return
        seen = self.candles_since.get(symbol, 0) + n
        if seen >= self.s.every_candles and self.request(symbol, f"every {self.s.every_candles} candles"):
            seen = 0
        self.candles_since[symbol] = seen

    # -- how -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Take queued symbols forever, ``max_concurrent`` cycles at a time."""
        slots = asyncio.Semaphore(self.s.max_concurrent if self.cluster is None
                                  else (self.s.cluster_max_concurrent or 1_000_000))
        tasks: set[asyncio.Task[Any]] = set()
        try:
            while True:
                sym, reason = await self.queue.get()
                await slots.acquire()
                task = asyncio.ensure_future(self._one(sym, reason, slots))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        finally:
            for t in list(tasks):
                t.cancel()
            for t in list(tasks):
                with contextlib.suppress(BaseException):
                    await t

    async def _one(self, sym: str, reason: str, slots: asyncio.Semaphore) -> None:
        k = self.cycles_started.get(sym, 0)
        self.cycles_started[sym] = k + 1
        cyc = _Cycle(sym, reason, self.s.seed + k)
        self.queued.discard(sym)
        self.running[sym] = cyc
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"forge-{sym.replace('/', '-')}-{int(time.time())}-{k}.log"
        watcher: asyncio.Task[Any] | None = None

        def started(pid: int) -> None:
            nonlocal watcher
            cyc.pid, cyc.started, cyc.started_wall = pid, time.monotonic(), time.time()
            watcher = asyncio.ensure_future(self._watch(cyc))

        def submitted(tag: str) -> None:
            nonlocal watcher
            cyc.tag, cyc.started, cyc.started_wall = tag, time.monotonic(), time.time()
            watcher = asyncio.ensure_future(self._watch(cyc))

        try:
            log.info("forge cycle for %s (%s) starting%s", sym, reason,
                     f" on the cluster {self.cluster.address}" if self.cluster is not None else "")
            if self.cluster is not None:
                res = await self.cluster.run(sym, self.cluster_options(sym, cyc.seed), timeout_s=self.s.timeout_s,
                                             registry_url=self.registry_url, on_start=submitted)
            else:
                res = await run_cycle(sym, self.argv_for(sym, cyc.seed), env=self.env, timeout_s=self.s.timeout_s,
                                      nice=self.s.nice, log_path=log_path, on_start=started)
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(BaseException):
                    await watcher
            if res.status == "failed" and self.cluster is None:
                # the registry's crash recovery marks the child's run failed (its process is gone)
                run_id = await self.to_thread(_recover, self.registry_url, res.pid)
                res = CycleResult(res.symbol, res.status, run_id, None, res.error, res.seconds,
                                  res.returncode, res.pid, res.output)
            self.results.append(res)
            log.log(logging.INFO if res.status == "succeeded" else logging.WARNING,
                    "forge cycle for %s %s in %.1f s%s", sym, res.status, res.seconds,
                    f": {res.error}" if res.error else "")
            cyc.stage, cyc.progress, cyc.eta_s = res.status, 1.0, 0.0
            cyc.detail = res.error or (f"champion {res.champion['id']}" if res.champion else "no champion")
            cyc.run_id = res.run_id
            await self._publish(cyc, state=res.status)
            if self.on_result is not None:
                await self.on_result(res)
        except asyncio.CancelledError:  # the engine stops: run_cycle killed the cycle's group
            cyc.stage, cyc.detail = "stopped", "the engine stopped; cycle killed"
            with contextlib.suppress(BaseException):
                if cyc.tag:
                    from singularity.engine.cluster import fail_run

                    cyc.run_id = await self.to_thread(fail_run, self.registry_url, sym, cyc.tag,
                                                      "the engine stopped; cluster task cancelled")
                elif cyc.pid:
                    cyc.run_id = await self.to_thread(_recover, self.registry_url, cyc.pid)
                await self._publish(cyc, state="stopped")
            raise
        finally:
            if watcher is not None and not watcher.done():
                watcher.cancel()
            self.running.pop(sym, None)
            slots.release()

    def cluster_options(self, sym: str, seed: int) -> dict[str, Any]:
        """The ForgeOptions of a cycle on the cluster: the local cycle's, one process, no pool."""
        return {"symbol": sym, "timeframe": self.timeframe, "population": self.s.population,
                "generations": self.s.generations, "seed": seed, "workers": 1, "exchange": self.exchange,
                "bars": self.s.bars, "end": self.end_for(sym)}

    async def _watch(self, cyc: _Cycle) -> None:
        """Progress from the registry and the pool's processes, every ``poll_s``."""
        typical = await self.to_thread(_typical_stage_seconds, self.registry_url, cyc.symbol)
        while True:
            if cyc.tag:
                from singularity.engine.cluster import run_of_tag

                row = await self.to_thread(run_of_tag, self.registry_url, cyc.symbol, cyc.tag)
                if row is not None:
                    cyc.pid = int(row["pid"])
            else:
                row = await self.to_thread(_run_of, self.registry_url, cyc.pid)
            if row is not None:
                cyc.run_id, cyc.stage, cyc.detail = row["id"], row["stage"], row["stage_detail"]
                cyc.progress, cyc.eta_s = _progress(row, typical, time.time() - cyc.started_wall)
            await self._publish(cyc, state="running")
            await asyncio.sleep(self.poll_s)

    async def _publish(self, cyc: _Cycle, *, state: str) -> None:
        if self.write_status is None:
            return
        if self.cluster is not None:  # the cluster's workers are the pool
            pool = {"workers": 0, "cpu_percent": None, "cluster": self.cluster.address}
            if state == "running":
                with contextlib.suppress(Exception):
                    pool["workers"] = await self.cluster.workers()
        else:
            pool = (await self.to_thread(_pool_usage, cyc) if state == "running"
                    else {"workers": 0, "cpu_percent": 0.0})
        rows = [{"name": f"forge:{cyc.symbol}", "kind": "forge", "symbol": cyc.symbol, "state": state,
                 "stage": cyc.stage, "progress": round(cyc.progress, 3),
                 "eta_s": None if cyc.eta_s is None else round(cyc.eta_s, 1), "pid": cyc.pid,
                 "detail": {"run_id": cyc.run_id, "reason": cyc.reason, "seed": cyc.seed, "detail": cyc.detail,
                            "elapsed_s": round(time.monotonic() - cyc.started, 1) if cyc.started else 0.0}},
                {"name": "pool", "kind": "pool", "symbol": None, "state": "busy" if state == "running" else "idle",
                 "stage": "", "progress": None, "eta_s": None, "pid": cyc.pid if state == "running" else None,
                 "detail": {**pool, "owner": f"forge:{cyc.symbol}" if state == "running" else None}}]
        if self.cluster is not None:  # many cycles at once: the row names them all
            busy = sorted(f"forge:{c.symbol}" for c in self.running.values()
                          if c is not cyc or state == "running")
            rows[1].update(name="cluster", state="busy" if busy else "idle", pid=None,
                           detail={**pool, "owner": ", ".join(busy) or None, "cycles": len(busy)})
        with contextlib.suppress(Exception):
            await self.write_status(rows)


# -- helpers run in a thread (they touch the registry database or /proc) -----------------------


def _recover(url: str, pid: int) -> int | None:
    """Mark the dead child's run failed (crash recovery) and return its id."""
    from sqlalchemy import select

    from singularity.registry import Registry
    from singularity.registry.schema import ForgeRun

    reg = Registry(url)  # opening recovers: runs whose process is gone are marked failed
    try:
        with reg.session() as s:
            return s.scalar(select(ForgeRun.id).where(ForgeRun.pid == pid).order_by(ForgeRun.id.desc()).limit(1))
    finally:
        reg.close()


def _run_of(url: str, pid: int) -> dict[str, Any] | None:
    from sqlalchemy import select

    from singularity.registry import Registry
    from singularity.registry.schema import ForgeRun

    with Registry(url, recover=False) as reg, reg.session() as s:
        r = s.scalars(select(ForgeRun).where(ForgeRun.pid == pid).order_by(ForgeRun.id.desc()).limit(1)).first()
        if r is None:
            return None
        return {"id": r.id, "stage": r.stage, "stage_detail": r.stage_detail,
                "stage_seconds": dict(r.stage_seconds or {}), "status": r.status}


def _typical_stage_seconds(url: str, symbol: str) -> dict[str, float]:
    """Mean seconds per stage of the symbol's last succeeded cycles (for the ETA)."""
    from singularity.registry import Registry

    with Registry(url, recover=False) as reg:
        done = [r for r in reg.runs(symbol=symbol, limit=20) if r.status == "succeeded" and r.stage_seconds][:5]
    out: dict[str, float] = {}
    for r in done:
        for k, v in r.stage_seconds.items():
            out[k] = out.get(k, 0.0) + float(v) / len(done)
    return out


def _progress(row: dict[str, Any], typical: dict[str, float], elapsed: float) -> tuple[float, float | None]:
    """(fraction done, seconds left): from the typical stage durations when earlier cycles
    exist, else the share of stages finished (and no ETA)."""
    stage = row["stage"]
    if stage == "done":
        return 1.0, 0.0
    idx = STAGES.index(stage) if stage in STAGES else 0
    total = sum(typical.get(s, 0.0) for s in STAGES)
    if total <= 0:
        return idx / len(STAGES), None
    done_s = sum(typical.get(s, 0.0) for s in STAGES[:idx])
    in_stage = max(0.0, elapsed - sum(float(v) for v in row["stage_seconds"].values()))
    done_s += min(in_stage, typical.get(stage, 0.0))
    return min(1.0, done_s / total), max(0.0, total - elapsed)


def _pool_usage(cyc: _Cycle) -> dict[str, Any]:
    """Processes of the cycle's group besides the cycle itself (its pool workers), and their
    CPU use summed (percent of one core since the last poll)."""
    import psutil

    workers, cpu = 0, 0.0
    seen: dict[int, Any] = {}
    for p in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(p.pid) != cyc.pid:
                continue
            proc = cyc.procs.get(p.pid, p)
            cpu += proc.cpu_percent(None)
            seen[p.pid] = proc
            workers += p.pid != cyc.pid
        except (psutil.Error, ProcessLookupError, PermissionError):
            continue
    cyc.procs = seen
    return {"workers": workers, "cpu_percent": round(cpu, 1)}
