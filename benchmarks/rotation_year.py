"""A year of BTC/USDT 1h replayed with forge cycles running: are champions rotated, and why.

The engine replays the last ``--days`` days of ../shared/data's BTC/USDT 1h candles, starting
with a hand-made rule (``--rule``, not forged: the stand-in for "the strategy the account traded
before"). By default (``--start-from add``) the rule first goes through ``singularity strategy
add`` on the candles before the replay only (the gauntlet with one trial, holdout figures
stored), so its decay can be judged; ``--start-from rule`` stores it without figures (it can
then never be retired on decay). Its scheduler starts a real forge cycle at the start and then every
``--every`` decided candles (``python -m singularity forge ... --to T --json``: each cycle sees
only the candles that open before the replay's current candle, the last ``--bars`` of them).
While a cycle runs the replay waits at the next candle boundary (lock-step: a replay is faster
than any cycle, and a champion should trade from where it was forged, not hours later). A cycle
whose champion passes the gauntlet is rotated in at the next boundary (no probation on replay);
a champion whose live Sharpe over the last ``--decay-candles`` candles falls below its holdout's
lower bound minus ``--decay-margin`` is retired (flat until the next champion).

Prints the starting rule's gauntlet, one JSON line per cycle, one per ``rotation`` ledger event
(with its evidence), the decay check's closest approach (lowest live Sharpe over any
``--decay-candles`` window while the starting rule traded, against its bound), then a summary
line ``{"benchmark": "rotation_year", "candles", "cycles", "succeeded", "champions",
"decay_check", "gate_failures" (cycles failing each gauntlet test), "cycle_reasons", "start_strategy", "rotations": {"rotate", "retire", "rejected"}, "seconds",
"cores", "load"}``.

    nice -n 10 .venv/bin/python benchmarks/rotation_year.py [--days 365] [--every 720]

The year that shows a rotation (the starting rule retired on decay, a cycle queued for it):
``--rule "sub(30.0, rsi_14)" --start-holdout 0.5`` (the rule's figures on the last half of the
history before the replay: 1,598 holdout bars, a 95 % bound 4.6 Sharpe below its holdout Sharpe,
where the default 20 % gives 639 bars and 7.3).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "binance-spot-2024-2026"
SYMBOL = "BTC/USDT"

TOML = """
[universe]
symbols = ["BTC/USDT"]
[data]
dir = "{data}"
[features.ceemdan]
enabled = false
[features.particle_filter]
enabled = false
[features.graph]
enabled = false
[bakeoff]
models = ["logistic", "lightgbm"]
[engine]
replay_chunk = {chunk}
[engine.scheduler]
enabled = true
every_candles = {every}
timeout_s = {timeout}
nice = 10
population = {population}
generations = {generations}
workers = {workers}
{bars}
seed = {seed}
decay_candles = {decay_candles}
decay_margin = {decay_margin}
"""


def _candles(data: Path) -> Any:
    from singularity.data.importers import read_freqtrade_feather

    return read_freqtrade_feather(data / "BTC_USDT-1h.feather")


def _decay_margin_seen(engine: Any, added: dict[str, Any], args: argparse.Namespace) -> dict[str, Any] | None:
    """How close the starting strategy came to being retired: its lowest live Sharpe over any
    ``--decay-candles`` window of its decided candles (the engine's equity marks, the rotation
    module's arithmetic) against the bound the engine judged it by."""
    import numpy as np

    from singularity.engine.rotation import annual_sharpe, sharpe_lower_bound

    if not added or not args.decay_candles:
        return None
    ho, k = added["holdout"], args.decay_candles
    ends = [e.payload["candle"] for e in engine.s.ledger.events(kinds=["rotation"])
            if e.payload.get("strategy_id") == added["id"] and e.payload.get("action") == "retire"]
    rows = [e.payload for e in engine.s.ledger.events(kinds=["decision"])  # while it traded (flat after)
            if e.payload.get("strategy_id") == added["id"] and (not ends or e.payload["candle"] <= ends[0])]
    eq = np.array([float(r["equity"]) for r in rows])
    lower = sharpe_lower_bound(float(ho["sharpe"]), int(ho["bars"]), 8760.0)
    out: dict[str, Any] = {"strategy_id": added["id"], "candles": len(rows), "window": k,
                           "holdout_lower": round(lower, 4), "margin": args.decay_margin,
                           "bound": round(lower - args.decay_margin, 4)}
    if len(eq) > k:
        live = [annual_sharpe(eq[i - k + 1: i + 1] / eq[i - k: i] - 1.0, 8760.0) for i in range(k, len(eq))]
        i = int(np.argmin(live))
        out.update({"min_live_sharpe": round(live[i], 4), "at": rows[i + k]["candle"],
                    "windows_below": int(sum(x < lower - args.decay_margin for x in live))})
    return out


async def _replay(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    import pandas as pd

    from singularity.config import load_settings
    from singularity.data.store import CandleStore
    from singularity.engine.assemble import RunOptions, attach_scheduler, build_replay
    from singularity.registry import Registry

    cfg = root / "singularity.toml"
    cfg.write_text(TOML.format(data=(root / "data").as_posix(), chunk=args.chunk, every=args.every,
                               timeout=args.timeout, population=args.population, generations=args.generations,
                               workers=args.workers, bars=f"bars = {args.bars}" if args.bars else "", seed=args.seed,
                               decay_candles=args.decay_candles, decay_margin=args.decay_margin))
    settings = load_settings(cfg, environ={}).settings
    candles = _candles(args.data)
    start = candles.index[-1] - pd.Timedelta(days=args.days) + pd.Timedelta(hours=1)
    store = CandleStore(settings.data.dir)
    added: dict[str, Any] = {}
    if args.start_from == "add":
        # 'singularity strategy add' on the candles before the replay only: the gauntlet (one
        # trial) and the holdout figures the decay check judges the rule against
        from singularity.engine.manual import add_manual_strategy

        store.write(settings.exchange.name, SYMBOL, "1h", candles[candles.index < start])
        # --start-holdout: the share of that history the rule's figures are measured on (the user's
        # forge.holdout_fraction when they ran 'strategy add'); a longer holdout narrows the bound
        # its decay is judged by (the default 20 % of ~3,200 bars leaves a 95 % bound ~7 Sharpe wide)
        add_settings = settings if args.start_holdout is None else settings.model_copy(update={
            "forge": settings.forge.model_copy(update={"holdout_fraction": args.start_holdout})})
        added = add_manual_strategy(add_settings, SYMBOL, args.rule, "1h")
        shutil.rmtree(settings.data_dir / "features", ignore_errors=True)  # built on the shorter history
        print(json.dumps({"start_strategy": {k: added[k] for k in ("id", "expression", "passed", "holdout")},
                          "gauntlet_failed": [g.get("test") for g in added["gauntlet"] if not g.get("passed")],
                          "history": [str(candles.index[0]), str(start - pd.Timedelta(hours=1))]},
                         default=str), flush=True)
    store.write(settings.exchange.name, SYMBOL, "1h", candles)
    with Registry(settings.database_url) as reg:
        if added:
            sid = int(added["id"])
        else:
            run = reg.start_run(symbol=SYMBOL, timeframe="1h", seed=0, settings={"hand-made": True})
            sid = reg.add_strategy(run_id=run, symbol=SYMBOL, timeframe="1h", expression=args.rule,
                                   readable=args.rule, size=4, fitness=0.0, in_sample={})
            reg.finish_run(run, status="succeeded", seconds=0.0)
        reg.promote(sid)
    opts = RunOptions(mode="replay", symbols=(SYMBOL,), timeframe="1h", start=start)
    engine = build_replay(settings, opts)
    rot = attach_scheduler(engine, settings, opts, config_path=str(cfg))
    sched = rot.scheduler
    reasons: list[tuple[str, int]] = []  # why each cycle was queued (FIFO, one at a time: the n-th is cycle n)
    queue_request = sched.request

    def request(sym: str, reason: str) -> bool:
        queued = queue_request(sym, reason)
        if queued:
            reasons.append((reason, int(engine.stats["candles"])))
        return queued

    sched.request = request  # type: ignore[method-assign]
    sched.request(SYMBOL, "replay start")
    t0 = time.monotonic()

    async def lockstep(sym: str) -> None:
        while sym in sched.queued or sym in sched.running:
            await asyncio.sleep(0.5)

    engine.before_batch.insert(0, lockstep)  # before the rotation's boundary hook

    printed = [0]

    def report(eng: Any) -> None:
        while printed[0] < len(sched.results):
            res = sched.results[printed[0]]
            printed[0] += 1
            champ = res.champion or {}
            why, at = reasons[printed[0] - 1] if printed[0] <= len(reasons) else (None, None)
            print(json.dumps({"cycle": printed[0], **res.as_dict(), "reason": why, "requested_at_candle": at,
                              "candles": eng.stats["candles"],
                              "champion_expression": champ.get("expression"),
                              "holdout": champ.get("holdout"),
                              "gauntlet_failed": [g.get("test") for g in (res.output or {}).get("gauntlet", [])
                                                  if not g.get("passed")],
                              "details": {g.get("test"): g.get("detail") for g in (res.output or {}).get("gauntlet", [])},
                              "t_s": round(time.monotonic() - t0, 1)}, default=str), flush=True)

    async def reporter(eng: Any) -> None:
        while True:
            await asyncio.sleep(1.0)
            report(eng)

    engine.s.extra_tasks = [*engine.s.extra_tasks, reporter]
    stats = await engine.run()
    report(engine)  # the cycles that ended after the reporter's last look
    events = [e for e in engine.s.ledger.events(kinds=["rotation"])]
    for e in events:
        print(json.dumps({"rotation": e.payload, "time": e.time.isoformat(), "seq": e.seq}, default=str),
              flush=True)
    decay = _decay_margin_seen(engine, added, args)
    if decay:
        print(json.dumps({"decay_check": decay}, default=str), flush=True)
    acts = [e.payload.get("action") for e in events]  # the first event (no action) is the starting strategy
    results = list(sched.results)
    return {"benchmark": "rotation_year", "symbol": SYMBOL, "from": str(start), "candles": stats["candles"],
            "cycles": len(results), "succeeded": sum(r.status == "succeeded" for r in results),
            "champions": sum(bool(r.champion) for r in results), "decay_check": decay,
            "gate_failures": dict(Counter(g.get("test") for r in results for g in (r.output or {}).get("gauntlet", [])
                                          if not g.get("passed"))),
            "cycle_reasons": dict(Counter(why for why, _ in reasons[: len(results)])),
            "start_strategy": {k: added.get(k) for k in ("id", "expression", "passed", "holdout")} if added else
            {"expression": args.rule, "holdout": None},
            "rotations": {a: acts.count(a) for a in ("rotate", "retire", "rejected")},
            "seconds": round(time.monotonic() - t0, 1), "cores": os.cpu_count(),
            "load": [round(x, 2) for x in os.getloadavg()],
            "start_holdout": args.start_holdout,
            "budget": {"population": args.population, "generations": args.generations, "bars": args.bars,
                       "every": args.every, "workers": args.workers}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--every", type=int, default=720, help="Candles between two cycles.")
    ap.add_argument("--population", type=int, default=40)
    ap.add_argument("--generations", type=int, default=3)
    ap.add_argument("--bars", type=int, default=3000, help="Candles each cycle forges on (the last before it; 0 = all before it).")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--chunk", type=int, default=24, help="Replay candles per batch (the boundaries).")
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--decay-candles", type=int, default=720)
    ap.add_argument("--decay-margin", type=float, default=0.5)
    ap.add_argument("--rule", default="ts_mean(macd_hist, w5)", help="The hand-made starting strategy.")
    ap.add_argument("--start-from", choices=("add", "rule"), default="add",
                    help="add: the starting rule goes through 'strategy add' (gauntlet, holdout figures) on the "
                         "candles before the replay, so decay can be judged; rule: stored without figures.")
    ap.add_argument("--start-holdout", type=float, default=None,
                    help="Holdout fraction of the 'strategy add' step (default: the settings' forge.holdout_fraction, 0.2).")
    ap.add_argument("--data", type=Path, default=DATA, help="Folder of the freqtrade feather files.")
    args = ap.parse_args()
    from singularity.engine.core import warm_kernel

    warm_kernel()
    with tempfile.TemporaryDirectory(prefix="rotation-year-") as tmp:
        out = asyncio.run(_replay(args, Path(tmp)))
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
