"""Champion rotation in a replay: a new champion takes over at a candle boundary (at once, or
after a shadow probation), a decayed one is retired; each a ``rotation`` event with evidence."""

from __future__ import annotations

import numpy as np
import pytest
from engine_home import EXPRESSION, SYMBOL, make_home

from singularity.engine.assemble import RunOptions, attach_scheduler, build_replay, run_engine
from singularity.engine.ledger import Ledger, ledger_url
from singularity.engine.scheduler import CycleResult
from singularity.evolution.expressions import evaluate_expression
from singularity.features.factory import FeatureFactory
from singularity.registry import Registry

NEW = "sub(rsi_14, ts_mean(rsi_14, w20))"
HANDOFF_AFTER = 200


def _home(tmp_path, load_feather, scheduler: str):
    return make_home(tmp_path, load_feather("BTC", "1h", tail=1000), chunk=50,
                     extra=f"[engine.scheduler]\n{scheduler}\n")


def _new_strategy(home) -> int:
    reg = Registry(home.settings.database_url)
    run = reg.start_run(symbol=SYMBOL, timeframe="1h", seed=2, settings={})
    sid = reg.add_strategy(run_id=run, symbol=SYMBOL, timeframe="1h", expression=NEW, readable=NEW, size=5,
                           fitness=1.0, in_sample={})
    reg.finish_run(run, status="succeeded", seconds=0.0)
    reg.close()
    return sid


def _replay(home, *, candidate: int | None):
    start = home.candles.index[400]
    opts = RunOptions(mode="replay", symbols=(SYMBOL,), timeframe="1h", start=start)
    engine = build_replay(home.settings, opts)
    rot = attach_scheduler(engine, home.settings, opts, start=False)
    if candidate is not None:
        handed = []

        async def hand_over(sym, decisions):  # a forge cycle ends mid-replay
            if not handed and engine.stats["candles"] >= HANDOFF_AFTER:
                handed.append(engine.books[sym].last_candle)
                await rot.on_result(CycleResult(SYMBOL, "succeeded", 9, {"id": candidate, "expression": NEW,
                                                "holdout": {"sharpe": 1.5, "bars": 900}}, "", 12.0, 0, 1234,
                                                {"gauntlet": [{"test": "holdout", "passed": True}]}))

        engine.after_batch.append(hand_over)
    run_engine(engine)
    return rot, Ledger(ledger_url(home.settings, "replay"))


def test_new_champion_rotates_at_the_next_candle_boundary(tmp_path, load_feather) -> None:
    home = _home(tmp_path, load_feather, "")
    sid = _new_strategy(home)
    _rot, led = _replay(home, candidate=sid)
    rotations = [e for e in led.events(kinds=["rotation"]) if e.payload.get("action") == "rotate"]
    assert len(rotations) == 1
    ev = rotations[0].payload
    assert (ev["strategy_id"], ev["previous"], ev["expression"]) == (sid, home.strategy_id, NEW)
    assert ev["evidence"]["run_id"] == 9 and ev["evidence"]["probation"] == {"candles": 0}
    assert ev["evidence"]["gauntlet"] == [{"test": "holdout", "passed": True}]
    decisions = led.events(kinds=["decision"])
    ids = [d.payload["strategy_id"] for d in decisions]
    k = ids.index(sid)
    # the handover happens at the batch boundary after the 200th candle (batches of 50)
    assert k == HANDOFF_AFTER and set(ids[:k]) == {home.strategy_id} and set(ids[k:]) == {sid}
    assert ev["candle"] == decisions[k - 1].payload["candle"]
    assert rotations[0].seq < decisions[k].seq
    # from there on the engine trades exactly the new rule's targets on the full history
    fs = FeatureFactory(home.settings.features).build({SYMBOL: home.candles}, progress=False)
    target = evaluate_expression(NEW, fs.frames[SYMBOL][fs.feature_names], long_only=True)  # spot
    after = [d.payload for d in decisions[k:]]
    expected = target.loc[[d["candle"] for d in after]].to_numpy()
    np.testing.assert_array_equal([d["target"] for d in after], expected)
    assert led.verify()[SYMBOL].strategy_id == sid


@pytest.mark.parametrize("bound,action", [(1e9, "rejected"), (-1e9, "rotate")])
def test_probation_shadow_trades_first(tmp_path, load_feather, bound: float, action: str) -> None:
    home = _home(tmp_path, load_feather, f"probation_candles = 60\nprobation_min_sharpe = {bound}")
    sid = _new_strategy(home)
    _rot, led = _replay(home, candidate=sid)
    events = [e for e in led.events(kinds=["rotation"]) if e.payload.get("action") in ("rotate", "rejected")]
    assert [e.payload["action"] for e in events] == [action]
    ev = events[0].payload
    prob = ev["evidence"]["probation"]
    assert prob["candles"] == 60 and np.isfinite(prob["sharpe"]) and prob["min_sharpe"] == bound
    decisions = led.events(kinds=["decision"])
    ids = [d.payload["strategy_id"] for d in decisions]
    if action == "rejected":
        assert set(ids) == {home.strategy_id} and ev["candidate_id"] == sid and ev["strategy_id"] == home.strategy_id
    else:
        # shadow-traded on the 60 candles after the handover (two batches of 50 reach it: 300)
        assert ids.index(sid) == HANDOFF_AFTER + 100


def test_decayed_champion_is_retired_and_a_cycle_is_queued(tmp_path, load_feather) -> None:
    home = _home(tmp_path, load_feather, "decay_candles = 48\ndecay_margin = 0.0")
    reg = Registry(home.settings.database_url)
    from sqlalchemy import update

    from singularity.registry.schema import Strategy

    with reg.write() as s:  # a holdout no live run can match
        s.execute(update(Strategy).where(Strategy.id == home.strategy_id).values(holdout={"sharpe": 80.0, "bars": 900}))
    reg.close()
    rot, led = _replay(home, candidate=None)
    retired = [e for e in led.events(kinds=["rotation"]) if e.payload.get("action") == "retire"]
    assert len(retired) == 1
    ev = retired[0].payload["evidence"]
    assert ev["holdout_sharpe"] == 80.0 and ev["candles"] == 48 and ev["live_sharpe"] < ev["holdout_lower"]
    # the lower bound: Lo's standard error over the holdout's 900 bars, annualised (8760 bars a year)
    sr = 80.0 / np.sqrt(8760)
    assert ev["holdout_lower"] == pytest.approx((sr - 1.96 * np.sqrt((1 + sr * sr / 2) / 900)) * np.sqrt(8760), abs=1e-4)
    decisions = led.events(kinds=["decision"])
    after = [d.payload["target"] for d in decisions if d.seq > retired[0].seq]
    assert after and set(after) == {0.0}  # held flat until a new champion
    assert rot.scheduler.queued == {SYMBOL}
    assert Registry(home.settings.database_url).strategy(home.strategy_id).status == "retired"
    assert EXPRESSION  # the retired rule is the home's champion


@pytest.mark.parametrize("mode,setting,expected", [("paper", None, 0), ("replay", None, 0), ("live", None, 24),
                                                    ("live", 0, 1), ("paper", 12, 12)])
def test_probation_is_zero_on_paper_and_required_live(mode, setting, expected) -> None:
    from types import SimpleNamespace

    from singularity.engine.rotation import Rotation
    from singularity.engine.settings import SchedulerSettings

    engine = SimpleNamespace(s=SimpleNamespace(mode=mode))
    rot = Rotation(engine, None, SchedulerSettings(probation_candles=setting), registry_url="", ppy=8760.0,
                   cost_rate=0.0)
    assert rot.probation == expected


def test_shadow_returns_hold_the_previous_target_and_pay_turnover() -> None:
    from singularity.engine.rotation import shadow_returns

    r = shadow_returns(np.array([0.0, 1.0, 1.0, 0.0]), np.array([100.0, 110.0, 121.0, 133.1]), 0.001)
    np.testing.assert_allclose(r, [0.0 - 0.001, 0.1, 0.1 - 0.001])


def test_dashboard_controls_forge_pin_and_retire(tmp_path, load_feather) -> None:
    """The controls the core leaves to the rotation: forge queues a cycle, pin trades the
    pinned rule from the next boundary (and records the pin), retire flattens and retires it."""
    from singularity.engine.pins import pinned

    home = _home(tmp_path, load_feather, "")
    sid = _new_strategy(home)
    start = home.candles.index[400]
    opts = RunOptions(mode="replay", symbols=(SYMBOL,), timeframe="1h", start=start)
    engine = build_replay(home.settings, opts)
    rot = attach_scheduler(engine, home.settings, opts, start=False)
    seen: dict[str, object] = {}

    async def dashboard(sym, decisions):  # what the engine's command loop hands to _control
        n = engine.stats["candles"]
        if n >= 100 and "forge" not in seen:
            await engine._control(1, {"symbol": SYMBOL, "action": "forge", "source": "dashboard"})
            seen["forge"] = set(rot.scheduler.queued)
        elif n >= 200 and "pin" not in seen:
            await engine._control(2, {"symbol": SYMBOL, "action": "pin", "strategy_id": sid, "source": "dashboard"})
            seen["pin"] = n
        elif n >= 400 and "retire" not in seen:
            await engine._control(3, {"symbol": SYMBOL, "action": "retire", "strategy_id": sid, "source": "dashboard"})
            seen["retire"] = n

    engine.after_batch.append(dashboard)
    run_engine(engine)
    assert seen["forge"] == {SYMBOL}
    led = Ledger(ledger_url(home.settings, "replay"))
    rot_events = [e.payload for e in led.events(kinds=["rotation"]) if e.payload.get("action") in ("rotate", "retire")]
    assert [(e["action"], e["strategy_id"]) for e in rot_events] == [("rotate", sid), ("retire", sid)]
    assert rot_events[0]["evidence"]["pinned"] == "dashboard"
    assert rot_events[1]["reason"] == "retired from the dashboard"
    ids = [d.payload["strategy_id"] for d in led.events(kinds=["decision"])]
    assert ids.index(sid) == 200  # the batch boundary after the pin (batches of 50)
    targets = [d.payload["target"] for d in led.events(kinds=["decision"])]
    assert set(targets[400:]) == {0.0}  # flat after the retirement, until a new champion
    reg = Registry(home.settings.database_url)
    assert reg.strategy(sid).status == "retired" and pinned(reg, SYMBOL) is None  # unpinned


def test_a_pinned_symbol_keeps_its_strategy_until_unpinned(tmp_path, load_feather) -> None:
    """A cycle's new champion on a pinned symbol is recorded (registry, a 'held' event), not
    traded; once unpinned, the next cycle's champion rotates in at the next boundary."""
    from singularity.engine.pins import pin, unpin

    home = _home(tmp_path, load_feather, "")
    sid = _new_strategy(home)
    later = _new_strategy(home)
    with Registry(home.settings.database_url) as reg:
        pin(reg, home.strategy_id)
    opts = RunOptions(mode="replay", symbols=(SYMBOL,), timeframe="1h", start=home.candles.index[400])
    engine = build_replay(home.settings, opts)
    rot = attach_scheduler(engine, home.settings, opts, start=False)
    done: list[int] = []

    def result(cid: int) -> CycleResult:
        return CycleResult(SYMBOL, "succeeded", 9, {"id": cid, "expression": NEW, "holdout": {"sharpe": 1.5, "bars": 900}},
                           "", 12.0, 0, 1234, {"gauntlet": [{"test": "holdout", "passed": True}]})

    async def cycles(sym, decisions):
        n = engine.stats["candles"]
        if n >= 100 and not done:
            done.append(n)
            await rot.on_result(result(sid))  # pinned: held
        elif n >= 300 and len(done) == 1:
            done.append(n)
            await engine.db(_unpin, home.settings.database_url, home.strategy_id, unpin)
            await rot.on_result(result(later))  # unpinned: rotates

    engine.after_batch.append(cycles)
    run_engine(engine)
    led = Ledger(ledger_url(home.settings, "replay"))
    acts = [(e.payload["action"], e.payload["strategy_id"], e.payload.get("candidate_id"))
            for e in led.events(kinds=["rotation"]) if "action" in e.payload]
    assert acts == [("held", home.strategy_id, sid), ("rotate", later, None)]
    ids = [d.payload["strategy_id"] for d in led.events(kinds=["decision"])]
    assert ids.index(later) == 300 and set(ids[:300]) == {home.strategy_id}  # never traded sid
    assert sid not in ids


def _unpin(url, sid, unpin) -> None:
    with Registry(url) as reg:
        unpin(reg, sid)


def test_decay_window_over_candles_or_trades() -> None:
    from singularity.engine.rotation import decay_window

    eq = [100.0 + i for i in range(10)]
    trades = [False, False, True, False, False, True, False, False, True, False]
    assert decay_window(eq, trades, "candles", 3) == eq[-4:]
    assert decay_window(eq, trades, "candles", 10) is None  # 10 marks hold 9 returns
    assert decay_window(eq, trades, "candles", 9) == eq
    # trades: from the mark before the k-th last trade (index 5 for k=2, 2 for k=3)
    assert decay_window(eq, trades, "trades", 1) == eq[7:]
    assert decay_window(eq, trades, "trades", 2) == eq[4:]
    assert decay_window(eq, trades, "trades", 3) == eq[1:]
    assert decay_window(eq, trades, "trades", 4) is None
    assert decay_window(eq, [True] + [False] * 9, "trades", 1) is None  # no mark before it


def test_decay_verdict_threshold_is_exact() -> None:
    from singularity.engine.rotation import decay_verdict

    window = [100.0, 99.0, 99.5, 98.0, 99.0, 98.5]
    r = np.diff(window) / np.asarray(window[:-1])
    ppy = 8760.0
    live = r.mean() / r.std(ddof=1) * np.sqrt(ppy)
    sr = 3.0 / np.sqrt(ppy)
    lower = (sr - 1.96 * np.sqrt((1 + sr * sr / 2) / 900)) * np.sqrt(ppy)
    gap = lower - live  # the margin at which the verdict flips
    assert gap > 0
    got = decay_verdict(window, 3.0, 900, ppy, gap - 1e-9)
    assert got is not None and got[0] == pytest.approx(live, rel=1e-12) and got[1] == pytest.approx(lower, rel=1e-12)
    assert decay_verdict(window, 3.0, 900, ppy, gap + 1e-9) is None


def test_decayed_champion_is_retired_over_its_last_trades(tmp_path, load_feather) -> None:
    home = _home(tmp_path, load_feather, 'decay_window = "trades"\ndecay_trades = 3\ndecay_margin = 0.0')
    from sqlalchemy import update

    from singularity.registry.schema import Strategy

    with Registry(home.settings.database_url) as reg, reg.write() as s:
        s.execute(update(Strategy).where(Strategy.id == home.strategy_id).values(holdout={"sharpe": 80.0, "bars": 900}))
    _rot, led = _replay(home, candidate=None)
    retired = [e for e in led.events(kinds=["rotation"]) if e.payload.get("action") == "retire"]
    assert len(retired) == 1
    ev = retired[0].payload["evidence"]
    assert ev["window"] == "trades" and ev["trades"] == 3 and ev["live_sharpe"] < ev["holdout_lower"]
    # the window: from the mark before the 3rd-last change of target up to the retiring batch
    decided = [d.payload for d in led.events(kinds=["decision"]) if d.seq < retired[0].seq]
    changes = [i for i in range(1, len(decided)) if decided[i]["target"] != decided[i - 1]["target"]]
    assert len(changes) >= 3 and ev["candles"] == len(decided) - changes[-3]
    eq = [d["equity"] for d in decided[changes[-3] - 1:]]
    r = np.diff(eq) / np.asarray(eq[:-1])
    assert ev["live_sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * np.sqrt(8760), abs=1e-4)
