"""Strategies in a warm worker process: features extend and signals are computed there, never
on the event loop.

One spawned process (``StrategyWorker``) keeps, per symbol, the candles since a fixed anchor
(recorded in the ledger, so a restarted engine computes exactly the same features) and the
rule it trades. ``targets`` sends newly closed candles, the worker extends the feature set
through the factory's cache (only what the new bars affect is recomputed) and evaluates the
rule; the engine awaits the answer as a future. A worker that dies or hangs past its timeout
is replaced and primed again from the store.

Only module-level functions and plain data (frames, strings, settings objects) cross the
process boundary.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import multiprocessing as mp
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from singularity.errors import SingularityError
from singularity.runtime.process import shutdown_executor


class StrategyError(SingularityError):
    """A strategy that cannot run (unknown feature, bad expression, worker failure)."""


@dataclass(frozen=True)
class StrategySpec:
    """What the worker needs to trade one symbol (plain, picklable)."""

    strategy_id: int
    symbol: str
    expression: str
    long_only: bool
    features: Any  # FeatureSettings
    cache_dir: str | None


# -- worker side (module-level: runs in the spawned process) ----------------------------------

_STATE: dict[str, dict[str, Any]] = {}


def _worker_init(parent: int) -> None:
    import threading

    from singularity.runtime.threads import limit_threads

    limit_threads(1)
    # an engine killed with SIGKILL cannot shut its worker down: the worker notices that its
    # parent is gone (it is re-parented) and exits, so no orphan outlives a crash
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    import time

    while os.getppid() == parent:
        time.sleep(0.2)
    os._exit(0)


def _targets_for(spec: StrategySpec, candles: pd.DataFrame) -> pd.Series:
    from singularity.evolution.expressions import evaluate_expression
    from singularity.features.factory import FeatureFactory

    cache = Path(spec.cache_dir) if spec.cache_dir else None
    fs = FeatureFactory(spec.features, cache_dir=cache).build({spec.symbol: candles}, progress=False)
    inputs = fs.frames[spec.symbol][fs.feature_names]
    return evaluate_expression(spec.expression, inputs, long_only=spec.long_only)


def worker_prime(spec: StrategySpec, history: pd.DataFrame) -> int:
    """Start (or restart) ``spec.symbol`` with its candles from the anchor; checks the rule
    parses against the features the worker computes. Returns the number of candles held."""
    from singularity.evolution.evaluator import codec_for
    from singularity.features.factory import feature_catalogue

    specs, _ = feature_catalogue(spec.features)
    names = [s.name for s in specs if s.family != "graph"]
    try:
        codec_for(names).parse(spec.expression)
    except Exception as e:
        raise StrategyError(f"strategy {spec.strategy_id} ({spec.symbol}) cannot run on the engine's "
                            f"features: {e}") from None
    _STATE[spec.symbol] = {"spec": spec, "candles": history.copy()}
    return len(history)


def worker_extend(symbol: str, new: pd.DataFrame) -> list[float]:
    """Append closed candles and return the rule's target at each of them."""
    st = _STATE.get(symbol)
    if st is None:
        raise StrategyError(f"the strategy worker was not primed for {symbol}")
    candles: pd.DataFrame = st["candles"]
    if len(candles) and len(new) and new.index[0] <= candles.index[-1]:
        new = new.loc[new.index > candles.index[-1]]
    candles = pd.concat([candles, new]) if len(candles) else new
    st["candles"] = candles
    target = _targets_for(st["spec"], candles)
    return [float(x) for x in target.iloc[len(target) - len(new):]]


def worker_warm() -> None:
    """Load what the first real call needs (the feature and rule modules, NumPy/pandas, Numba
    and the interpreter's cached kernels: seconds in a fresh process) while the engine itself
    is still starting. On a tiny frame: it must cost nothing when already warm."""
    import numpy as np

    from singularity.evolution.evaluator import codec_for
    from singularity.evolution.expressions import evaluate_expression
    from singularity.features import factory  # noqa: F401  (TA-Lib and the families' modules)

    x = pd.DataFrame({"x": np.linspace(1.0, 2.0, 16)},
                     index=pd.date_range("2020-01-01", periods=16, freq="h", tz="UTC"))
    codec_for(["x"]).parse("ts_mean(x, w5)")
    evaluate_expression("ts_mean(x, w5)", x)


def worker_env() -> dict[str, str]:
    """The worker's environment (tests check that no secret reached it)."""
    return dict(os.environ)


def worker_pid() -> int:
    return os.getpid()


# -- engine side -------------------------------------------------------------------------------


class StrategyWorker:
    """One warm spawned process; every call is awaited as a future (the loop never computes)."""

    def __init__(self, *, timeout_s: float = 120.0,
                 history: Any = None) -> None:
        self.timeout_s = timeout_s
        self._history = history
        """async (symbol, last candle or None) -> candles from the anchor through it."""
        self._executor: cf.ProcessPoolExecutor | None = None
        self._primed: dict[str, tuple[StrategySpec, pd.Timestamp | None]] = {}

    def _start(self) -> cf.ProcessPoolExecutor:
        if self._executor is None:
            # spawn: a fresh interpreter, never a fork of a process holding a loop and threads
            self._executor = cf.ProcessPoolExecutor(
                max_workers=1, mp_context=mp.get_context("spawn"), initializer=_worker_init,
                initargs=(os.getpid(),))
        return self._executor

    def start_early(self) -> None:
        """Spawn the process now and let it warm up (``worker_warm``) while the engine's own
        start-up runs: on a restart the two overlap instead of adding up. Call it outside the
        event loop (spawning blocks for milliseconds), after secrets left the environment."""
        self._start().submit(worker_warm)  # a failed warm-up shows again in the first real call

    async def _started(self) -> cf.ProcessPoolExecutor:
        """The executor with its process running: spawning happens in a thread (starting a
        process takes tens of milliseconds the loop must not spend)."""
        if self._executor is None:
            ex = self._start()
            await asyncio.to_thread(lambda: ex.submit(worker_pid).result())
        assert self._executor is not None
        return self._executor

    async def call(self, fn: Any, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            ex = await self._started()
            try:
                fut = loop.run_in_executor(ex, fn, *args)
                return await asyncio.wait_for(fut, self.timeout_s)
            except (cf.process.BrokenProcessPool, TimeoutError) as e:
                self.close(kill=True)
                if attempt == 2:
                    raise StrategyError(f"the strategy worker failed twice ({type(e).__name__})") from e
                await self._reprime()
        raise AssertionError("unreachable")

    async def _reprime(self) -> None:
        """A fresh worker after a death or a hang: primed again with everything up to the
        newest candle it had seen (``history`` reads the store in the database thread)."""
        loop = asyncio.get_running_loop()
        ex = await self._started()
        for spec, last in self._primed.values():
            history = await self._history(spec.symbol, last)
            await loop.run_in_executor(ex, worker_prime, spec, history)

    async def prime(self, spec: StrategySpec, history: pd.DataFrame) -> None:
        await self.call(worker_prime, spec, history)
        self._primed[spec.symbol] = (spec, history.index[-1] if len(history) else None)

    async def targets(self, symbol: str, candles: pd.DataFrame) -> list[float]:
        out = await self.call(worker_extend, symbol, candles)
        spec, _last = self._primed[symbol]
        self._primed[symbol] = (spec, candles.index[-1])
        return out

    def pids(self) -> list[int]:
        ex = self._executor
        return [p.pid for p in list(getattr(ex, "_processes", {}).values())] if ex is not None else []

    def close(self, *, kill: bool = False) -> None:
        ex, self._executor = self._executor, None
        shutdown_executor(ex, kill=kill)
