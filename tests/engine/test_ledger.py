"""The ledger: events, projections in the same transaction, idempotency keys, recovery."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import update

from singularity.engine.ledger import (
    Ledger,
    LedgerMismatchError,
    NewEvent,
    balances_table,
    ledger_url,
)
from singularity.errors import ConfigError

T = datetime(2024, 1, 1, tzinfo=UTC)


def _trade_events(sym: str = "BTC/USDT") -> list[NewEvent]:
    return [
        NewEvent("balance", f"deposit:{sym}", {"delta": 1000.0}, sym, T),
        NewEvent("rotation", f"rotation:{sym}:1", {"strategy_id": 7, "expression": "x"}, sym, T),
        NewEvent("decision", f"decision:{sym}:t0", {"candle": "2024-01-01T00:00:00+00:00",
                                                     "close": 100.0, "target": 0.5}, sym, T),
        NewEvent("order", "order:a", {"client_order_id": "a", "status": "open", "target": 0.5}, sym, T),
        NewEvent("fill", "fill:a", {"client_order_id": "a", "price": 101.0, "quantity": 4.0,
                                     "fee": 0.5}, sym, T),
    ]


def test_append_updates_projections_and_skips_known_keys(tmp_path):
    led = Ledger(f"sqlite:///{tmp_path}/l.db")
    written = led.append(_trade_events())
    assert [e.kind for e in written] == ["balance", "rotation", "decision", "order", "fill"]
    assert [e.seq for e in written] == [1, 2, 3, 4, 5]
    (pos,) = led.positions()
    assert pos["quantity"] == 4.0 and pos["cash"] == 1000.0 - 404.0 - 0.5
    assert pos["strategy_id"] == 7 and pos["open_orders"] == {} and pos["last_price"] == 100.0
    assert pos["equity"] == 1000.0 - 404.5 + 400.0
    # the same candle decided again (a restart after a crash): nothing is recorded twice
    again = led.append(_trade_events())
    assert again == []
    assert len(led.events()) == 5
    assert led.positions() == [pos]
    # a second process sees the same and the read API filters
    other = Ledger(led.url)
    assert [e.key for e in other.events(after_seq=3)] == ["order:a", "fill:a"]
    assert [e.kind for e in other.events(kinds=["fill"])] == ["fill"]
    assert other.events(symbol="ETH/USDT") == []
    assert other.events()[4].as_dict()["payload"]["quantity"] == 4.0


def test_recovery_detects_a_projection_that_disagrees_with_the_events(tmp_path):
    led = Ledger(f"sqlite:///{tmp_path}/l.db")
    led.append(_trade_events())
    assert Ledger(led.url).open_books()["BTC/USDT"].quantity == 4.0
    with led.engine.begin() as c:
        c.execute(update(balances_table).values(cash=999.0))
    with pytest.raises(LedgerMismatchError, match=r"BTC/USDT\.cash is 999\.0 but the events give 595\.5"):
        Ledger(led.url).open_books()


def test_ledger_url_keeps_modes_apart(tmp_path):
    from singularity.config import load_settings

    s = load_settings(cwd=tmp_path, environ={}).settings
    assert ledger_url(s, "paper") != ledger_url(s, "live")
    assert ledger_url(s, "paper").endswith("ledger-paper.db")
    bad = load_settings(cwd=tmp_path, environ={"SINGULARITY_ENGINE__LEDGER_URL": "sqlite:///x.db"}).settings
    with pytest.raises(ConfigError, match=r"\{mode\}"):
        ledger_url(bad, "live")


def test_ledger_and_projections_on_postgresql(postgres_db):
    """The same events, idempotency and recovery check against a real PostgreSQL server."""
    led = Ledger(postgres_db)
    assert [e.seq for e in led.append(_trade_events())] == [1, 2, 3, 4, 5]
    assert led.append(_trade_events()) == []
    other = Ledger(postgres_db)
    books = other.open_books()
    assert books["BTC/USDT"].cash == 595.5 and books["BTC/USDT"].quantity == 4.0
    assert other.events()[0].time == T
    assert [e.key for e in other.events(after_seq=4)] == ["fill:a"]
    with led.engine.begin() as c:
        c.execute(update(balances_table).values(cash=1.0))
    with pytest.raises(LedgerMismatchError, match="cash"):
        Ledger(postgres_db).open_books()
