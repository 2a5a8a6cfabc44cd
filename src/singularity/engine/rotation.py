"""Champion rotation and retirement, at candle boundaries, each a ``rotation`` ledger event.

- A cycle that promotes a champion hands it here as a candidate. At the next candle boundary
  of its symbol (before the next batch is decided) it replaces the running strategy: at once
  when the probation is zero (the default in paper and replay), or after ``probation`` candles
  of shadow trading in which its annualised Sharpe (net of costs, on candles that closed after
  it was chosen) is not below ``probation_min_sharpe``; otherwise it is rejected.
- The running champion is judged on its last ``decay_candles`` decided candles (or, with
  ``decay_window = "trades"``, on every candle since its ``decay_trades``-th last trade): when its live
  Sharpe falls below the lower 95 % bound of its holdout Sharpe (Lo's standard error over the
  holdout's bars) by more than ``decay_margin``, it is retired: the symbol goes flat, the
  registry marks it retired, and a new cycle is scheduled.
- A pinned symbol (``strategy pin``) keeps its strategy until unpinned: a cycle's new champion
  is recorded (the registry, and a ``held`` event), not traded; a decayed pinned strategy is
  reported once (``held``), not retired.

Event payloads (``kind = "rotation"``): ``action`` is ``rotate``, ``rejected``, ``retire`` or ``held``;
``strategy_id`` is always the strategy the symbol trades afterwards (the projection reads it);
``evidence`` holds the figures behind the decision.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from singularity.engine.ledger import NewEvent
from singularity.engine.scheduler import CycleResult, Scheduler
from singularity.engine.settings import SchedulerSettings
from singularity.engine.strategy import StrategySpec

if TYPE_CHECKING:
    from singularity.engine.core import Engine

log = logging.getLogger(__name__)


def annual_sharpe(r: np.ndarray, ppy: float) -> float:
    r = np.asarray(r, dtype=np.float64)
    if r.size < 2:
        return 0.0
    sd = float(r.std(ddof=1))
    return 0.0 if sd == 0.0 else float(r.mean()) / sd * math.sqrt(ppy)


def sharpe_lower_bound(sharpe: float, bars: int, ppy: float, z: float = 1.96) -> float:
    """Lower bound of an annualised Sharpe ratio measured on ``bars`` bars (Lo 2002: the
    per-bar ratio's standard error is sqrt((1 + SR²/2) / n))."""
    if bars <= 1:
        return -math.inf
    sr = sharpe / math.sqrt(ppy)
    return (sr - z * math.sqrt((1.0 + 0.5 * sr * sr) / bars)) * math.sqrt(ppy)


def shadow_returns(targets: np.ndarray, close: np.ndarray, cost_rate: float) -> np.ndarray:
    """Per-candle returns of holding ``targets[t-1]`` from close t-1 to close t, less the cost
    of each change of position (``cost_rate`` per unit turned over)."""
    t = np.nan_to_num(np.asarray(targets, dtype=np.float64))
    c = np.asarray(close, dtype=np.float64)
    ret = t[:-1] * (c[1:] / c[:-1] - 1.0)
    turn = np.abs(np.diff(t))
    return ret - cost_rate * turn


def shadow_targets(spec: StrategySpec, candles: pd.DataFrame, n: int) -> list[float]:
    """The rule's targets at the last ``n`` candles (runs in the strategy worker)."""
    from singularity.engine.strategy import _targets_for

    out = _targets_for(spec, candles)
    return [float(x) for x in out.iloc[-n:]]


def decay_window(equity: list[float], trades: list[bool], kind: str, k: int) -> list[float] | None:
    """The equity marks the decay check judges, or None while there are too few.

    ``equity[i]`` is the account after decided candle i, ``trades[i]`` whether that candle's
    target changed. ``candles``: the last ``k`` candles (k + 1 marks). ``trades``: from the mark
    before the ``k``-th last trade to now (None until ``k`` trades are in the window)."""
    if kind == "candles":
        return equity[-(k + 1):] if len(equity) > k else None
    idx = [i for i, t in enumerate(trades) if t]
    if len(idx) < k or idx[-k] == 0:
        return None
    return equity[idx[-k] - 1:]


def decay_verdict(window: list[float], holdout_sharpe: float, holdout_bars: int, ppy: float,
                  margin: float) -> tuple[float, float] | None:
    """(live Sharpe, holdout lower bound) when the live Sharpe over ``window``'s per-candle
    returns is below the lower 95 % bound of the holdout Sharpe minus ``margin``; else None."""
    a = np.asarray(window, dtype=np.float64)
    live = annual_sharpe(a[1:] / a[:-1] - 1.0, ppy)
    lower = sharpe_lower_bound(holdout_sharpe, holdout_bars, ppy)
    return (live, lower) if live < lower - margin else None


@dataclass
class Candidate:
    spec: StrategySpec
    evidence: dict[str, Any]
    waited: int = 0


class Rotation:
    """The engine side of background forging: cadence counting, candidates, probation,
    rotation and retirement. ``attach`` wires it into an engine and a scheduler."""

    def __init__(self, engine: Engine, scheduler: Scheduler, settings: SchedulerSettings, *,
                 registry_url: str, ppy: float, cost_rate: float) -> None:
        self.engine, self.scheduler, self.s = engine, scheduler, settings
        self.registry_url = registry_url
        self.ppy, self.cost_rate = ppy, cost_rate
        mode = engine.s.mode
        if settings.probation_candles is not None:
            self.probation = settings.probation_candles
        else:
            self.probation = settings.live_probation_candles if mode == "live" else 0
        if mode == "live":
            self.probation = max(self.probation, 1)  # live never swaps without a shadow run
        self.candidates: dict[str, Candidate] = {}
        self.equity: dict[str, deque[float]] = {}
        self.holdout: dict[int, dict[str, Any]] = {}
        self.rotations: list[dict[str, Any]] = []
        self.trades: dict[str, deque[bool]] = {}
        """Per decided candle in ``equity``: whether its target changed (a trade)."""
        self.last_target: dict[str, float] = {}
        self.decay_held: set[int] = set()

    def attach(self) -> None:
        self.engine.before_batch.append(self.boundary)
        self.engine.after_batch.append(self.after)
        self.engine.control_hooks.append(self.control)
        self.scheduler.on_result = self.on_result

        async def pipeline(rows: list[dict[str, Any]]) -> None:
            await self.engine.db(self.engine.ledger.write_pipeline, rows)

        self.scheduler.write_status = pipeline

    # -- a cycle ended ---------------------------------------------------------------------

    async def on_result(self, res: CycleResult) -> None:
        sym = res.symbol
        notifier = getattr(self.engine, "notifier", None)
        if res.status != "succeeded" and notifier is not None:
            notifier.notify("cycle_failed", sym, res.as_dict())
        if res.status != "succeeded" or not res.champion or sym not in self.engine.s.specs:
            return
        champ = res.champion
        old = self.engine.s.specs[sym]
        if int(champ["id"]) == old.strategy_id:
            return
        pin = await self.engine.db(_pinned_id, self.registry_url, sym)
        if pin is not None:  # a pin holds until unpinned: the champion is recorded, not traded
            book = self.engine.books[sym]
            await self._event(sym, "held", f"held:{sym}:{book.last_seq}:{champ['id']}", {
                "strategy_id": old.strategy_id, "candidate_id": int(champ["id"]),
                "reason": f"{sym} is pinned to strategy {pin}: the new champion is recorded, not traded "
                          "('singularity strategy unpin' to let champions rotate)",
                "evidence": {"run_id": res.run_id, "holdout": champ.get("holdout"), "pinned": pin}})
            return
        expression = champ.get("expression") or await self.engine.db(_expression, self.registry_url, int(champ["id"]))
        spec = dataclasses.replace(old, strategy_id=int(champ["id"]), expression=expression)
        gauntlet = (res.output or {}).get("gauntlet") or []
        self.candidates[sym] = Candidate(spec, {
            "run_id": res.run_id, "holdout": champ.get("holdout"),
            "gauntlet": [{"test": v.get("test"), "passed": v.get("passed")} for v in gauntlet],
            "cycle_seconds": round(res.seconds, 1)})

    # -- candle boundaries -------------------------------------------------------------------

    async def boundary(self, sym: str) -> None:
        cand = self.candidates.get(sym)
        if cand is None:
            return
        if self.probation == 0:
            del self.candidates[sym]
            await self._rotate(sym, cand, {"candles": 0})
            return
        if cand.waited < self.probation:
            return
        del self.candidates[sym]
        e = self.engine
        book = e.books[sym]
        history = await self._decided_history(sym)
        n = self.probation + 1
        targets = np.asarray(await e.s.worker.call(shadow_targets, cand.spec, history, n))
        r = shadow_returns(targets, history["close"].to_numpy()[-n:], self.cost_rate)
        sharpe = annual_sharpe(r, self.ppy)
        probation = {"candles": self.probation, "sharpe": round(sharpe, 4),
                     "min_sharpe": self.s.probation_min_sharpe, "return": round(float(np.prod(1 + r) - 1), 6)}
        if sharpe >= self.s.probation_min_sharpe:
            await self._rotate(sym, cand, probation)
        else:
            await self._event(sym, "rejected", f"reject:{sym}:{book.last_seq}:{cand.spec.strategy_id}", {
                "strategy_id": e.s.specs[sym].strategy_id, "candidate_id": cand.spec.strategy_id,
                "reason": f"probation Sharpe {sharpe:.2f} < {self.s.probation_min_sharpe:.2f}",
                "evidence": {**cand.evidence, "probation": probation}})

    async def _decided_history(self, sym: str) -> pd.DataFrame:
        """The symbol's candles from its anchor through its last decided one."""
        last = self.engine.books[sym].last_candle
        return await self.engine._history_through(sym, pd.Timestamp(last) if last else None)

    async def _rotate(self, sym: str, cand: Candidate, probation: dict[str, Any]) -> None:
        e = self.engine
        book = e.books[sym]
        previous = e.s.specs[sym].strategy_id
        await e.s.worker.prime(cand.spec, await self._decided_history(sym))
        e.s.specs[sym] = cand.spec
        e.flat.discard(sym)
        self.equity.pop(sym, None)
        self.trades.pop(sym, None)
        await self._event(sym, "rotate", f"rotation:{sym}:{book.last_seq}:{cand.spec.strategy_id}", {
            "strategy_id": cand.spec.strategy_id, "expression": cand.spec.expression, "previous": previous,
            "reason": "new champion from a forge cycle", "evidence": {**cand.evidence, "probation": probation}})

    async def after(self, sym: str, decisions: list[dict[str, Any]]) -> None:
        if not decisions:
            return
        self.scheduler.candles(sym, len(decisions))
        if sym in self.candidates:
            self.candidates[sym].waited += len(decisions)
        k = self.s.decay_candles if self.s.decay_window == "candles" else self.s.decay_trades
        if not k or sym in self.engine.flat:
            return
        # candles: the last k decided candles; trades: every candle since the k-th last change
        # of position (its equity just before it), at most decay_max_candles
        size = k + 1 if self.s.decay_window == "candles" else self.s.decay_max_candles + 1
        eq = self.equity.setdefault(sym, deque(maxlen=size))
        tr = self.trades.setdefault(sym, deque(maxlen=size))
        for d in decisions:
            eq.append(float(d["equity"]))
            prev = self.last_target.get(sym)
            tr.append(prev is not None and float(d["target"]) != prev)
            self.last_target[sym] = float(d["target"])
        window = decay_window(list(eq), list(tr), self.s.decay_window, k)
        if window is None:
            return
        sid = self.engine.s.specs[sym].strategy_id
        if sid in self.decay_held:
            return
        if sid not in self.holdout:
            self.holdout[sid] = await self.engine.db(_holdout, self.registry_url, sid)
        ho = self.holdout[sid]
        if not ho or "sharpe" not in ho:
            return
        verdict = decay_verdict(window, float(ho["sharpe"]), int(ho.get("bars", 0)), self.ppy, self.s.decay_margin)
        if verdict is None:
            return
        live, lower = verdict
        span = (f"{len(window) - 1} candles" if self.s.decay_window == "candles"
                else f"its last {k} trades ({len(window) - 1} candles)")
        evidence = {"live_sharpe": round(live, 4), "window": self.s.decay_window,
                    "candles": len(window) - 1, "holdout_sharpe": ho["sharpe"], "holdout_bars": ho.get("bars"),
                    "holdout_lower": round(lower, 4), "margin": self.s.decay_margin}
        if self.s.decay_window == "trades":
            evidence["trades"] = k
        reason = (f"live Sharpe {live:.2f} over {span} below the holdout's lower bound {lower:.2f} minus "
                  f"margin {self.s.decay_margin:.2f}")
        pin = await self.engine.db(_pinned_id, self.registry_url, sym)
        if pin is not None:  # pinned: held (said once), not retired
            self.decay_held.add(sid)
            book = self.engine.books[sym]
            await self._event(sym, "held", f"decay-held:{sym}:{book.last_seq}:{sid}", {
                "strategy_id": sid, "reason": f"{reason}; pinned: kept until unpinned", "evidence": evidence})
            return
        await self._retire(sym, sid, reason, evidence)

    async def _retire(self, sym: str, sid: int, reason: str, evidence: dict[str, Any], *,
                      by_hand: bool = False) -> None:
        """Retire the strategy ``sym`` trades: an event, flat until a new one, the registry
        marks it retired (by hand: whatever its status, and its pin is removed), a new cycle."""
        book = self.engine.books[sym]
        await self._event(sym, "retire", f"retire:{sym}:{book.last_seq}:{sid}", {
            "strategy_id": sid, "reason": reason, "evidence": evidence})
        self.engine.flat.add(sym)
        self.equity.pop(sym, None)
        self.trades.pop(sym, None)
        await self.engine.db(_retire, self.registry_url, sid, by_hand)
        self.scheduler.request(sym, "champion retired")

    # -- controls from other processes (the dashboard) ----------------------------------------

    async def control(self, sym: str, action: str, p: dict[str, Any]) -> None:
        """forge: queue a cycle now; pin: trade that strategy from the next boundary (after the
        probation, as a new champion; recorded as the symbol's pin, so a restart keeps it);
        retire: retire the strategy the symbol trades now."""
        who = p.get("source", "another process")
        if action == "forge":
            queued = self.scheduler.request(sym, f"forge from the {who}")
            log.warning("%s: forge from the %s: %s", sym, who, "queued" if queued else "one is queued or running")
            return
        sid = int(p.get("strategy_id", -1))
        current = self.engine.s.specs[sym].strategy_id
        if action == "retire":
            if sid != current:
                log.warning("%s: retire %d from the %s ignored: the symbol trades %d", sym, sid, who, current)
                return
            await self._retire(sym, sid, f"retired from the {who}", {"source": who}, by_hand=True)
        elif action == "pin" and sid != current:
            row = await self.engine.db(_pin, self.registry_url, sid)
            if row["paper_only"] and self.engine.s.mode == "live":
                book = self.engine.books[sym]
                await self._event(sym, "rejected", f"reject:{sym}:{book.last_seq}:{sid}", {
                    "strategy_id": current, "candidate_id": sid,
                    "reason": f"pinned from the {who} but it did not pass the gauntlet: paper only"})
                return
            spec = dataclasses.replace(self.engine.s.specs[sym], strategy_id=sid, expression=row["expression"])
            self.candidates[sym] = Candidate(spec, {"pinned": who})

    async def _event(self, sym: str, action: str, key: str, payload: dict[str, Any]) -> None:
        e = self.engine
        book = e.books[sym]
        if e.s.mode == "replay" and book.last_candle:
            when = (pd.Timestamp(book.last_candle) + e.bar).to_pydatetime()
        else:
            when = datetime.now(UTC)
        body = {"action": action, "candle": book.last_candle, **payload}
        await e.append([NewEvent("rotation", key, body, sym, when)])
        self.rotations.append({"symbol": sym, **body})
        log.warning("%s: rotation %s: %s", sym, action, payload.get("reason", ""))


def _expression(url: str, sid: int) -> str:
    from singularity.registry import Registry

    with Registry(url, recover=False) as reg:
        return reg.strategy(sid).expression


def _holdout(url: str, sid: int) -> dict[str, Any]:
    from singularity.registry import Registry

    with Registry(url, recover=False) as reg:
        return dict(reg.strategy(sid).holdout or {})


def _pinned_id(url: str, symbol: str) -> int | None:
    from singularity.engine.pins import pinned
    from singularity.registry import Registry

    with Registry(url, recover=False) as reg:
        p = pinned(reg, symbol)
    return int(p["strategy_id"]) if p is not None else None


def _retire(url: str, sid: int, by_hand: bool = False) -> None:
    from sqlalchemy import update

    from singularity.engine.pins import unpin
    from singularity.registry import Registry
    from singularity.registry.schema import Strategy

    which = Strategy.id == sid if by_hand else (Strategy.id == sid) & (Strategy.status == "champion")
    with Registry(url, recover=False) as reg:
        with reg.write() as s:
            s.execute(update(Strategy).where(which).values(status="retired"))
        if by_hand:
            unpin(reg, sid)


def _pin(url: str, sid: int) -> dict[str, Any]:
    from singularity.engine.pins import pin
    from singularity.registry import Registry

    with Registry(url, recover=False) as reg:
        return {**pin(reg, sid), "expression": reg.strategy(sid).expression}
