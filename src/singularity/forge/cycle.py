"""One forge cycle, end to end, with each stage's status written to the registry as it runs.

    data → split → features → labels + bake-off → GP → gauntlet → registry → report

The cycle is a function of (candles, settings, seed): the same inputs give the same champion
whatever the number of workers. The GP and the bake-off see the training window only; the
holdout is opened once, by the gauntlet.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from singularity.config import Settings
from singularity.data.store import CandleStore
from singularity.errors import DataError
from singularity.forge.split import Split, time_split
from singularity.registry import Registry

STAGES = ("data", "features", "bakeoff", "evolution", "gauntlet", "registry", "report")
MODEL_SIGNAL = "model_signal"
"""GP input: the bake-off winner's out-of-fold (then walk-forward) P(up) − P(down)."""


@dataclass(frozen=True)
class ForgeOptions:
    symbol: str
    timeframe: str
    population: int
    generations: int
    seed: int
    workers: int = 0
    exchange: str | None = None
    bars: int | None = None
    """Use only the last ``bars`` candles (None: all stored)."""
    end: str | None = None
    """Use only candles that open before this time (ISO; None: all stored). A cycle started by a
    replaying engine forges on what the replay has seen, never on the candles still to come."""
    inline: bool = False
    """Run every stage in this process, without a worker pool (a cycle inside a Dask task; also
    what ``workers=1`` does)."""
    tag: str = ""
    """Who started the cycle (the engine's id for a cluster cycle: it finds the run by it)."""
    cluster: str | None = None
    holdout_looks: int | None = None
    """Candidates whose holdout is opened (best in-sample first); None = gauntlet.holdout_looks."""
    progress: bool = True


@dataclass
class ForgeOutcome:
    run_id: int
    symbol: str
    timeframe: str
    exchange: str
    champion: dict[str, Any] | None
    best: dict[str, Any] | None
    gauntlet: list[dict[str, Any]]
    report: str
    seconds: float
    stage_seconds: dict[str, float] = field(default_factory=dict)
    bakeoff: dict[str, Any] = field(default_factory=dict)
    split: str = ""
    holdout_looks: int = 1

    def to_json_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "symbol": self.symbol, "timeframe": self.timeframe,
                "exchange": self.exchange, "champion": self.champion, "best_candidate": self.best,
                "gauntlet": self.gauntlet, "report": self.report, "seconds": round(self.seconds, 3),
                "stage_seconds": {k: round(v, 3) for k, v in self.stage_seconds.items()},
                "bakeoff": self.bakeoff, "split": self.split, "holdout_looks": self.holdout_looks}


def fingerprint(candles: pd.DataFrame | dict[str, pd.DataFrame]) -> str:
    """SHA-256 of the candles; given a universe (symbol -> candles), of every asset that feeds
    the features, by symbol in sorted order (another asset's data changes the fingerprint)."""
    frames = candles if isinstance(candles, dict) else {"": candles}
    h = hashlib.sha256()
    for sym in sorted(frames):
        c = frames[sym]
        h.update(sym.encode() + b"\0")
        h.update(c.index.asi8.tobytes())
        h.update(np.ascontiguousarray(c.to_numpy(np.float64)).tobytes())
    return h.hexdigest()


def load_candles(settings: Settings, opts: ForgeOptions) -> tuple[str, dict[str, pd.DataFrame]]:
    """The symbol's candles (last ``bars``) and, for cross-asset features, every other
    universe symbol stored on the same exchange and timeframe, cut to the same span."""
    store = CandleStore(settings.data.dir)
    exchange = opts.exchange or settings.exchange.name
    if not store.exists(exchange, opts.symbol, opts.timeframe):
        stored = sorted({(e.exchange, e.symbol) for e in store.entries() if e.timeframe == opts.timeframe})
        have = ", ".join(f"{s} ({x})" for x, s in stored[:12]) or "none"
        raise DataError(f"no {opts.timeframe} candles of {opts.symbol} on {exchange}: import or download them "
                        f"first (singularity data import/download); stored {opts.timeframe}: {have}")
    main = store.read(exchange, opts.symbol, opts.timeframe, end=opts.end or None)  # naive = UTC
    if main.empty:
        raise DataError(f"no {opts.timeframe} candles of {opts.symbol} on {exchange} before {opts.end}")
    if opts.bars:
        main = main.iloc[-opts.bars:]
    universe = {opts.symbol: main}
    for sym in settings.universe.symbols:
        if sym != opts.symbol and store.exists(exchange, sym, opts.timeframe):
            other = store.read(exchange, sym, opts.timeframe, start=main.index[0],
                               end=main.index[-1] + pd.Timedelta(seconds=1))
            if len(other) >= len(main) // 2:
                universe[sym] = other
    return exchange, universe


class _Stages:
    """Times each stage and writes its status to the registry as it starts."""

    def __init__(self, registry: Registry, run_id: int, say: Callable[[str], None]) -> None:
        self.registry, self.run_id, self.say = registry, run_id, say
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str, detail: str = "") -> Iterator[None]:
        self.registry.set_stage(self.run_id, name, detail, stage_seconds=self.seconds)
        self.say(f"[bold]{name}[/] {detail}")
        t0 = time.perf_counter()
        yield
        self.seconds[name] = time.perf_counter() - t0


def run_forge(settings: Settings, opts: ForgeOptions, *, say: Callable[[str], None] = print,
              registry: Registry | None = None) -> ForgeOutcome:
    """Run one forge cycle; the registry records it whether it succeeds or fails."""
    from singularity.runtime.pool import WorkerPool, resolve_workers

    if registry is None:  # ours: closed at the end (a long-lived caller would leak its files)
        registry = Registry(settings.database_url)
        try:
            return run_forge(settings, opts, say=say, registry=registry)
        finally:
            registry.close()
    t_start = time.perf_counter()
    exchange, universe = load_candles(settings, opts)
    candles = universe[opts.symbol]
    # one worker: in this process (a pool of one would only add a process and its imports).
    # Started now: the workers start and import while this process does its bookkeeping.
    pool = None if opts.inline or resolve_workers(opts.workers) == 1 else WorkerPool(opts.workers)
    try:
        if pool is not None:
            pool.preload(_worker_modules(settings))
        # the market's champion now (the run's parent in the lineage; a seed only if its data allows)
        same_market = registry.run_windows(exchange=exchange, symbol=opts.symbol, timeframe=opts.timeframe)
        current = registry.reborn_seeds(opts.symbol, opts.timeframe, run_ids=same_market, limit=1)
        run_id = registry.start_run(
            symbol=opts.symbol, timeframe=opts.timeframe, seed=opts.seed,
            settings={"settings": settings.public_dump(), "options": _jsonable(opts.__dict__)},
            dataset_id=registry.upsert_dataset(
                fingerprint=fingerprint(universe), exchange=exchange, symbol=opts.symbol, timeframe=opts.timeframe,
                first=candles.index[0].to_pydatetime(), last=candles.index[-1].to_pydatetime(), rows=len(candles)),
            parent_champion_id=next((s.id for s in current if s.status == "champion"), None))
    except BaseException:
        if pool is not None:
            pool.shutdown(kill=True)
        raise
    st = _Stages(registry, run_id, say)
    try:
        if pool is None:
            outcome = _cycle(settings, opts, exchange, universe, registry, run_id, st, None)
        else:
            with pool:
                outcome = _cycle(settings, opts, exchange, universe, registry, run_id, st, pool)
        outcome.seconds = time.perf_counter() - t_start
        outcome.stage_seconds = dict(st.seconds)
        registry.finish_run(run_id, status="succeeded", seconds=outcome.seconds, stage_seconds=st.seconds,
                            champion_id=outcome.champion["id"] if outcome.champion else None,
                            report_path=outcome.report)
        return outcome
    except BaseException as e:
        registry.finish_run(run_id, status="failed", seconds=time.perf_counter() - t_start, stage_seconds=st.seconds,
                            error=f"{type(e).__name__}: {e}"[:2000])
        raise


def _worker_modules(settings: Settings) -> list[str]:
    """What the workers import first: CEEMDAN's windows are the pool's first tasks, and torch
    (about 1.5 CPU-s per process) comes with the GNN's and the Transformer's fits. Loaded while
    this process records the run and computes the symbol's indicators and particle filter."""
    mods = ["singularity.features.ceemdan"] if settings.features.ceemdan.enabled else []
    if (settings.features.graph.enabled and settings.features.graph.gnn_enabled) or "transformer" in settings.bakeoff.models:
        mods.append("torch")
    return mods


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(d, default=str))


def _cycle(settings: Settings, opts: ForgeOptions, exchange: str, universe: dict[str, pd.DataFrame],
           registry: Registry, run_id: int, st: _Stages, pool: Any) -> ForgeOutcome:
    from singularity.features.factory import FeatureFactory
    from singularity.forge import champion as ch
    from singularity.forge.reborn import data_window, plan_reborn
    from singularity.models.bakeoff import run_bakeoff

    sym, tf = opts.symbol, opts.timeframe
    data_dir = Path(settings.data.dir)
    with st.stage("data", f"{sym} {tf} on {exchange}: {len(universe[sym])} candles, "
                          f"{len(universe) - 1} other assets for cross-asset features"):
        candles = universe[sym]

    with st.stage("features", f"{len(universe)} assets"):
        # the symbol's own families only: the other assets feed the cross-asset graph through
        # their candles, and their own features (CEEMDAN above all) would be computed unread
        fs = FeatureFactory(settings.features, pool=pool, cache_dir=data_dir / "features",
                            cache_max_bytes=settings.retention.feature_cache_mb * 2**20,
                            cache_max_age_s=settings.retention.feature_cache_days * 86_400).build(
            universe, progress=opts.progress, targets=[sym])
        ready = fs.ready(sym)
        candles = candles.loc[ready.index]
        split = time_split(len(candles), holdout_fraction=settings.forge.holdout_fraction,
                           embargo=settings.forge.embargo_bars)
        st.say(f"  split: {split.describe(candles.index)}")
        window = data_window(exchange, sym, tf, universe[sym].index[0], candles.index, split)
        plan = plan_reborn(registry, window)
        reborn = plan.seeds
        for line in plan.messages():
            st.say(f"  reborn: {line}")
    train_c, train_f = candles.iloc[split.train], ready.iloc[split.train]

    with st.stage("bakeoff", f"models {', '.join(settings.bakeoff.models)}"):
        bake = run_bakeoff(train_f, train_c, labels_settings=settings.labels, bakeoff_settings=settings.bakeoff,
                           costs=settings.costs, timeframe=tf, pool=pool,
                           artifacts_dir=data_dir / "artifacts" / f"run-{run_id}")
        for s in bake.scores:
            registry.add_model(run_id=run_id, name=s.name, artifact_path=str(data_dir / "artifacts" / f"run-{run_id}" / s.name),
                               metrics=s.to_dict(), winner=s.name == bake.winner)
        inputs = ready.copy()
        inputs[MODEL_SIGNAL] = bake.predict_walk_forward(ready).to_numpy()
        st.say(f"  winner: {bake.winner}")
    train_x = inputs.iloc[split.train]

    with st.stage("evolution", f"population {opts.population}, {opts.generations} generations"):
        evo = ch.evolve_training(settings, opts, train_x, train_c, pool,
                                 reborn=[s.expression for s in reborn],
                                 stats_path=data_dir / "runs" / f"run-{run_id}-gp.jsonl")
        registry.add_generation_stats(run_id, [g.to_dict() for g in evo.generations])
        registry.record_window(run_id, {**window, "trials": int(evo.distinct_trials)})

    looks = opts.holdout_looks or settings.gauntlet.holdout_looks
    with st.stage("gauntlet", f"{looks} holdout look{'s' if looks > 1 else ''}"):
        chosen = ch.choose_candidates(evo, looks)
        ctx = ch.gauntlet_context(settings, opts, evo, candles, inputs, split, universe, fs, bake, pool,
                                  candidates=chosen, prior_trials=plan.prior_trials)
        picked, reports = ch.run_candidates(ctx, chosen, say=st.say)

    with st.stage("registry"):
        ids = ch.record(registry, run_id, settings, opts, evo, reports, picked, ctx, fs,
                        parents=[s.id for s in reborn])
    best_id = ids[reports[0].expression] if reports else None
    champion_id = ids[picked.expression] if picked is not None else None

    with st.stage("report"):
        report_path = ""
        shown = champion_id or best_id
        if shown is not None:
            from singularity.forge.reporting import write_strategy_report

            report_path = str(write_strategy_report(settings, registry, shown, candles, inputs, split,
                                                    synthetic=exchange == "synthetic",
                                                    holdout_looks=ctx.holdout_looks))
    show_report = picked or (reports[0] if reports else None)
    return ForgeOutcome(
        run_id=run_id, symbol=sym, timeframe=tf, exchange=exchange,
        champion=ch.strategy_summary(registry, champion_id) if champion_id else None,
        best=ch.strategy_summary(registry, best_id) if best_id else None,
        gauntlet=show_report.as_list() if show_report else [], report=report_path, seconds=0.0,
        bakeoff=bake.to_json_dict(), split=split.describe(candles.index), holdout_looks=ctx.holdout_looks)


__all__ = ["STAGES", "ForgeOptions", "ForgeOutcome", "Split", "run_forge"]
