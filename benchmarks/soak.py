"""The soak: the engine trades a paced replay while its scheduler runs forge cycles back to back.

The engine (numpy, pandas, LightGBM, torch and numba imported in its process) replays the core
pairs found in ../shared/data at a pace of one candle per ``--candle-s`` seconds per symbol,
each symbol trading a hand-made champion; the scheduler starts a real forge cycle
(``python -m singularity forge ... --json``, small budget, its own pool of ``--workers``)
whenever the previous one ended, one at a time, until ``--cycles`` have ended. Champions the
cycles promote are rotated in at candle boundaries.

Faults (``--faults sigkill,sigstop``, one each, on the 2nd and 3rd cycle: ``--fault-at``): SIGKILL a forge
child mid-stage (survived: the cycle is failed in the registry, the next one starts, no
process of its group is left, the engine keeps deciding candles); SIGSTOP a forge child
(survived: killed at its timeout, its group gone); SIGKILL one pool worker of a cycle in its
evolution stage (every cycle then uses one seed; survived: the cycle succeeds with the same
best candidate as its symbol's first cycle).

Measured: event-loop lag (10 ms heartbeat, every sample of the run), the engine process's RSS
growth from the end of the first cycle to the end, each cycle's outcome. Prints one JSON line
per cycle, then the summary line:

    {"cycles", "succeeded", "failed", "hangs", "loop_lag_ms": {"p50", "p99", "max"},
     "rss_growth_mb", "faults": {"injected", "survived"}, "seconds", ...}

    .venv/bin/python benchmarks/soak.py [--cycles 50] [--workers 2] [--faults sigkill,sigstop]

``--engine-kill`` runs the fourth fault instead, on the real engine: ``singularity run --mode
replay --forge`` is SIGKILLed while its cycle is mid-stage and restarted on the same home (one
JSON line; exit 1 unless it survived: nothing from before the kill left, the ledger verified
with every candle decided once, the orphaned cycle failed in the registry and the pipeline).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "binance-spot-2024-2026"
CORE = ("BTC", "ETH")
RULE = "ts_mean(macd_hist, w5)"
_DATA = [DATA]

TOML = """
[universe]
symbols = {symbols}
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
models = ["logistic", "lightgbm"]
folds = 2
[gauntlet]
noise_runs = 2
permutation_runs = 20
search_null_runs = 1
walk_forward_blocks = 2
[engine]
heartbeat_s = 0.5
[engine.scheduler]
enabled = true
every_candles = 1
timeout_s = {timeout}
nice = 10
population = {population}
generations = {generations}
workers = {workers}
bars = {bars}
"""


def _candles(base: str, tail: int) -> Any:
    from singularity.data.importers import read_freqtrade_feather

    return read_freqtrade_feather(_DATA[0] / f"{base}_USDT-1h.feather").iloc[-tail:]


def _home(root: Path, args: argparse.Namespace) -> tuple[Path, Any, list[str]]:
    from singularity.config import load_settings
    from singularity.data.store import CandleStore
    from singularity.registry import Registry

    symbols = [f"{b}/USDT" for b in CORE[: args.symbols]]
    cfg = root / "singularity.toml"
    cfg.write_text(TOML.format(symbols=json.dumps(symbols), data=(root / "data").as_posix(), timeout=args.timeout,
                               population=args.population, generations=args.generations, workers=args.workers,
                               bars=args.bars))
    settings = load_settings(cfg, environ={}).settings
    store = CandleStore(settings.data.dir)
    reg = Registry(settings.database_url)
    for sym in symbols:
        store.write(settings.exchange.name, sym, "1h", _candles(sym.split("/")[0], args.history))
        run = reg.start_run(symbol=sym, timeframe="1h", seed=0, settings={})
        sid = reg.add_strategy(run_id=run, symbol=sym, timeframe="1h", expression=RULE, readable=RULE, size=4,
                               fitness=0.0, in_sample={})
        reg.promote(sid)
        reg.finish_run(run, status="succeeded", seconds=0.0)
    reg.close()
    return cfg, settings, symbols


def _group_left(pgid: int) -> list[int]:
    import psutil

    out = []
    for p in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(p.pid) == pgid and p.info["status"] != psutil.STATUS_ZOMBIE:
                out.append(p.pid)
        except (ProcessLookupError, PermissionError):
            continue
    return out


def _pool_workers(pgid: int) -> list[int]:
    """The loky workers of a cycle (its process group, not the cycle itself)."""
    import psutil

    out = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            if p.pid != pgid and os.getpgid(p.pid) == pgid and "loky" in " ".join(p.info["cmdline"] or []) \
                    and "resource_tracker" not in " ".join(p.info["cmdline"] or []):
                out.append(p.pid)
        except (ProcessLookupError, PermissionError):
            continue
    return out


def _registry_status(url: str, pid: int) -> tuple[str | None, str]:
    from sqlalchemy import select

    from singularity.registry import Registry
    from singularity.registry.schema import ForgeRun

    reg = Registry(url)
    try:
        with reg.session() as s:
            r = s.scalars(select(ForgeRun).where(ForgeRun.pid == pid).order_by(ForgeRun.id.desc()).limit(1)).first()
            return (r.status, r.error) if r is not None else (None, "")
    finally:
        reg.close()


async def _soak(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    import psutil

    from singularity.engine.assemble import RunOptions, attach_scheduler, build_replay
    from singularity.engine.status import LagMonitor

    cfg, settings, symbols = _home(root, args)
    start = _candles("BTC", args.history).index[args.history - args.replay]
    opts = RunOptions(mode="replay", symbols=tuple(symbols), timeframe="1h", start=start,
                      speed=3600.0 / args.candle_s)
    engine = build_replay(settings, opts)
    rot = attach_scheduler(engine, settings, opts, config_path=str(cfg))
    sched = rot.scheduler
    lag = LagMonitor(0.01, keep=10_000_000)
    me = psutil.Process()
    plan = {k: v for k, v in zip(args.fault_at, ("sigkill", "sigstop", "workerkill"), strict=False)
            if v in args.faults}
    if "workerkill" in plan.values():
        # every cycle with one seed: the cycle that loses a pool worker must give the same
        # best candidate as the first cycle of its symbol
        from singularity.engine.scheduler import forge_argv

        sched.argv_for = lambda sym, _seed: forge_argv(sym, "1h", settings.engine.scheduler, seed=7,
                                                       config_path=cfg)
    faults: list[dict[str, Any]] = []
    rss: dict[str, float] = {}
    t0 = time.monotonic()
    gc_pauses: list[tuple[float, int, float]] = []
    gc_start = [0.0]

    def on_gc(phase: str, info: dict[str, Any]) -> None:  # the loop's pauses may be collections
        if phase == "start":
            gc_start[0] = time.perf_counter()
        else:
            gc_pauses.append((time.monotonic() - t0, info["generation"], (time.perf_counter() - gc_start[0]) * 1e3))

    import gc

    gc.callbacks.append(on_gc)

    async def controller(eng: Any) -> None:
        seen = 0
        injected: set[int] = set()
        while True:
            await asyncio.sleep(0.2)
            # the k-th cycle (1-based) is running: inject its fault once it is mid-stage
            k = len(sched.results) + 1
            for cyc in list(sched.running.values()):
                if k in plan and k not in injected and cyc.pid and cyc.stage in args.fault_stages:
                    if plan[k] == "workerkill":
                        if cyc.stage != "evolution":
                            continue
                        workers = await asyncio.to_thread(_pool_workers, cyc.pid)
                        if not workers:
                            continue
                        injected.add(k)
                        os.kill(workers[0], signal.SIGKILL)
                    else:
                        injected.add(k)
                        os.kill(cyc.pid, signal.SIGKILL if plan[k] == "sigkill" else signal.SIGSTOP)
                    faults.append({"cycle": k, "fault": plan[k], "pid": cyc.pid, "stage": cyc.stage,
                                   "candles_at": eng.stats["candles"], "t": time.monotonic()})
            while seen < len(sched.results):
                res = sched.results[seen]
                seen += 1
                if seen == 1:
                    rss["baseline"] = me.memory_info().rss / 2**20
                print(json.dumps({"cycle": seen, **res.as_dict(), "candles": eng.stats["candles"],
                                  "ended_at_s": round(time.monotonic() - t0, 1),
                                  "rotations": len(rot.rotations)}), flush=True)
            if len(sched.results) >= args.cycles:
                eng.request_stop()
                return

    engine.s.extra_tasks = [*engine.s.extra_tasks, controller, lambda _e: lag.run()]
    stats = await engine.run()
    rss["end"] = me.memory_info().rss / 2**20
    await asyncio.sleep(1.0)
    results = list(sched.results)
    survived = 0
    for f in faults:
        res = results[f["cycle"] - 1] if f["cycle"] <= len(results) else None
        left = _group_left(f["pid"])
        ok = res is not None and not left
        if f["fault"] == "sigkill" and res is not None:
            status, error = await asyncio.to_thread(_registry_status, settings.database_url, f["pid"])
            ok = ok and res.error == "killed by signal SIGKILL" and status == "failed" and "interrupted" in error
            ok = ok and len(results) > f["cycle"]  # the next cycle started (and ended)
            ok = ok and stats["candles"] > f["candles_at"]  # the engine kept trading
            f.update(registry_status=status, registry_error=error[:120])
        elif f["fault"] == "sigstop" and res is not None:
            ok = ok and res.error.startswith("timed out")
        elif f["fault"] == "workerkill" and res is not None:
            first = next((r for r in results if r.symbol == res.symbol and r.status == "succeeded"
                          and r is not res), None)
            best = ((res.output or {}).get("best_candidate") or {}).get("expression")
            ref = ((first.output or {}).get("best_candidate") or {}).get("expression") if first else None
            ok = ok and res.status == "succeeded" and best is not None and best == ref
            f.update(best=best, reference=ref)
        f.update(survived=bool(ok), left=left, error=res.error if res else None)
        f.pop("t", None)
        survived += bool(ok)
    stopped = {f["cycle"] for f in faults if f["fault"] == "sigstop"}
    hangs = sum(1 for i, r in enumerate(results, 1) if r.error.startswith("timed out") and i not in stopped)
    leftovers = sorted({p for r in results for p in _group_left(r.pid)})
    a = np.fromiter(lag.samples, dtype=np.float64) * 1e3
    return {
        "benchmark": "soak", "cycles": len(results),
        "succeeded": sum(r.status == "succeeded" for r in results),
        "failed": sum(r.status == "failed" for r in results),
        "failed_with_reason": sum(r.status == "failed" and bool(r.error) for r in results),
        "hangs": hangs,
        "loop_lag_ms": {"p50": round(float(np.percentile(a, 50)), 3), "p99": round(float(np.percentile(a, 99)), 3),
                        "max": round(float(a.max()), 3), "samples": int(a.size),
                        "max_at_s": lag.summary().get("max_at_s"), "over_100ms": int((a > 100).sum())},
        "rss_growth_mb": round(rss["end"] - rss.get("baseline", rss["end"]), 1),
        "rss_end_mb": round(rss["end"], 1),
        "faults": {"injected": len(faults), "survived": survived, "detail": faults},
        "seconds": round(time.monotonic() - t0, 1),
        "candles_traded": stats["candles"], "rotations": len(rot.rotations),
        "cycle_seconds_median": round(float(np.median([r.seconds for r in results])), 1) if results else None,
        "processes_left": leftovers,
        "gc_max_pause_ms": round(max((p[2] for p in gc_pauses), default=0.0), 1),
        "gc_pauses_over_100ms": [(round(t, 1), g, round(ms, 1)) for t, g, ms in gc_pauses if ms > 100],
        "workers": args.workers, "cores": os.cpu_count(), "load": [round(x, 2) for x in os.getloadavg()],
    }


def _engine_kill(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """SIGKILL the real engine (``singularity run --mode replay --forge``) while its forge cycle
    is mid-stage, then restart it on the same home. Survived when: every process from before
    the kill (the engine, the forge child, its pool workers) is gone within ``--kill-wait``
    seconds; the restart exits 0 with a verified ledger in which every replayed candle was
    decided exactly once; the orphaned cycle's run is failed in the registry and its pipeline
    row says so."""
    import subprocess
    import sys

    import psutil

    from singularity.engine.ledger import Ledger, ledger_url
    from singularity.registry import Registry

    cfg, settings, symbols = _home(root, args)
    candles = _candles("BTC", args.history)
    start = candles.index[args.history - args.replay]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SINGULARITY_")}
    base = [sys.executable, "-m", "singularity", "--config", str(cfg), "run", *symbols, "--mode", "replay",
            "--timeframe", "1h", "--from", start.isoformat(), "--forge", "--json"]
    log = open(root / "engine-1.log", "wb")  # noqa: SIM115 (held for the engine's life)
    t0 = time.monotonic()
    engine = subprocess.Popen([*base, "--speed", str(3600.0 / args.candle_s)], env=env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    run = None
    deadline = time.monotonic() + args.timeout
    try:
        while time.monotonic() < deadline and engine.poll() is None:
            time.sleep(0.3)
            with Registry(settings.database_url, recover=False) as reg:
                runs = [r for r in reg.runs(limit=5) if r.status == "running" and r.pid
                        and r.stage in args.fault_stages]
            if runs:
                run = runs[0]
                break
        if run is None:
            raise SystemExit(f"no forge cycle reached {sorted(args.fault_stages)} within {args.timeout:g} s "
                             f"(engine exit code {engine.poll()}); see {root / 'engine-1.log'}")
        workers = _pool_workers(run.pid)
        while not workers and time.monotonic() < deadline and psutil.pid_exists(run.pid):
            time.sleep(0.2)  # mid-stage with its pool's workers alive: the case that leaked them
            workers = _pool_workers(run.pid)
        with Registry(settings.database_url, recover=False) as reg:
            run = reg.run(run.id)
        before = {engine.pid, run.pid, *_group_left(run.pid)}
        group = {}
        for pid in _group_left(run.pid):
            with contextlib.suppress(psutil.Error):
                group[pid] = " ".join(psutil.Process(pid).cmdline())[-90:]
        os.kill(engine.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        engine.wait()
        left = sorted(before)
        while left and time.monotonic() - killed_at < args.kill_wait:
            time.sleep(0.2)
            left = [p for p in left if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        gone_s = time.monotonic() - killed_at
    finally:
        if engine.poll() is None:
            os.killpg(engine.pid, signal.SIGKILL)
        log.close()
    decided_before = len(Ledger(ledger_url(settings, "replay")).events(kinds=["decision"]))
    # the restart: no new cycles (the symbol has its strategy), the replay runs to its end
    env2 = {**env, "SINGULARITY_ENGINE__SCHEDULER__EVERY_CANDLES": "0"}
    r = subprocess.run(base, env=env2, capture_output=True, text=True, timeout=args.timeout)
    led = Ledger(ledger_url(settings, "replay"))
    ok_ledger, problem = True, ""
    try:
        led.verify()
    except Exception as e:  # LedgerMismatchError: reported, not raised
        ok_ledger, problem = False, str(e)[:200]
    decided = [e.payload["candle"] for e in led.events(kinds=["decision"])]
    expected = [t.isoformat() for t in candles.index[args.history - args.replay:]]
    with Registry(settings.database_url, recover=False) as reg:
        orphan = reg.run(run.id)
    row = next((p for p in led.pipeline() if p["name"] == f"forge:{symbols[0]}"), None)
    out = {
        "fault": "enginekill", "stage": run.stage, "engine_pid": engine.pid, "forge_pid": run.pid,
        "pool_workers": workers, "forge_group": group, "before_kill": sorted(before), "left": left, "gone_within_s": round(gone_s, 1),
        "decided_before_kill": decided_before, "restart_rc": r.returncode,
        "restart_error": r.stderr.strip().splitlines()[-1][:300] if r.returncode and r.stderr.strip() else "",
        "ledger_verified": ok_ledger, "ledger_problem": problem,
        "candles_decided_once": decided == expected, "candles": len(decided),
        "orphan_run": {"id": orphan.id, "status": orphan.status, "error": (orphan.error or "")[:120]},
        "orphan_pipeline": {"state": row["state"], "detail": (row["detail"] or {}).get("detail", "")[:160]} if row else None,
        "seconds": round(time.monotonic() - t0, 1), "cores": os.cpu_count(),
        "load": [round(x, 2) for x in os.getloadavg()],
    }
    out["survived"] = bool(not left and r.returncode == 0 and ok_ledger and decided == expected
                           and orphan.status == "failed" and "interrupted" in (orphan.error or "")
                           and row is not None and row["state"] == "failed" and len(workers) > 0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=50)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--population", type=int, default=8)
    ap.add_argument("--generations", type=int, default=1)
    ap.add_argument("--bars", type=int, default=1200)
    ap.add_argument("--timeout", type=float, default=300.0, help="Seconds before a cycle is killed.")
    ap.add_argument("--symbols", type=int, default=2, choices=(1, 2))
    ap.add_argument("--history", type=int, default=6000, help="Stored candles per symbol.")
    ap.add_argument("--replay", type=int, default=4000, help="Candles the engine replays (the rest is history).")
    ap.add_argument("--candle-s", type=float, default=0.25, help="Seconds between candles of one symbol.")
    ap.add_argument("--faults", default="sigkill,sigstop,workerkill",
                    help="Comma list of sigkill, sigstop, workerkill (or 'none').")
    ap.add_argument("--fault-at", default="2,3,5", help="Cycles (1-based) of the SIGKILL, the SIGSTOP and the "
                    "SIGKILL of one pool worker (with 2 symbols, an odd cycle: compared with cycle 1).")
    ap.add_argument("--fault-stages", default="bakeoff,evolution,gauntlet",
                    help="Forge stages during which a fault may be injected.")
    ap.add_argument("--data", type=Path, default=DATA, help="Folder of the freqtrade feather files.")
    ap.add_argument("--engine-kill", action="store_true",
                    help="Instead of the soak: SIGKILL the real engine mid-cycle and restart it on the same home "
                         "(one JSON line).")
    ap.add_argument("--kill-wait", type=float, default=20.0,
                    help="Seconds the processes from before the engine's SIGKILL may take to exit.")
    args = ap.parse_args()
    _DATA[0] = args.data
    args.fault_at = [int(x) for x in args.fault_at.split(",")]
    args.fault_stages = set(args.fault_stages.split(","))
    args.faults = {f for f in args.faults.split(",") if f and f != "none"}
    if args.engine_kill:
        with tempfile.TemporaryDirectory(prefix="soak-enginekill-") as tmp:
            out = _engine_kill(args, Path(tmp))
        print(json.dumps(out), flush=True)
        raise SystemExit(0 if out["survived"] else 1)
    # the engine process holds the heavy libraries a real deployment loads
    import lightgbm  # noqa: F401
    import numba  # noqa: F401
    import pandas  # noqa: F401
    import torch  # noqa: F401

    from singularity.engine.core import warm_kernel

    warm_kernel()  # as run_engine does: the kernel's compiled code is loaded before the loop
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        out = asyncio.run(_soak(args, Path(tmp)))
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
