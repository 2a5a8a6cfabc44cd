"""Which strategy the engine trades per symbol: a pinned one (``strategy pin``), else the
registry's champion. Pins live beside the registry, in its database."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Boolean, Column, DateTime, Integer, MetaData, String, Table, select

from singularity.db import create_schema, writer
from singularity.errors import ConfigError, DataError
from singularity.registry import Registry

pins_metadata = MetaData()
pins_table = Table(
    "engine_pins", pins_metadata,
    Column("symbol", String(64), primary_key=True),
    Column("timeframe", String(8), nullable=False),
    Column("strategy_id", Integer, nullable=False),
    Column("paper_only", Boolean, nullable=False),
    Column("pinned_at", DateTime(timezone=True), nullable=False),
)


def passed_gauntlet(gauntlet: list) -> bool:
    return bool(gauntlet) and all(bool(v.get("passed")) for v in gauntlet)


def pin(registry: Registry, strategy_id: int) -> dict:
    st = registry.strategy(strategy_id)
    create_schema(registry.engine, pins_metadata)
    row = {"symbol": st.symbol, "timeframe": st.timeframe, "strategy_id": st.id,
           "paper_only": not passed_gauntlet(st.gauntlet), "pinned_at": datetime.now(UTC)}
    with writer(registry.engine).begin() as c:
        c.execute(pins_table.delete().where(pins_table.c.symbol == st.symbol))
        c.execute(pins_table.insert().values(**row))
    return row


def unpin(registry: Registry, strategy_id: int) -> None:
    """Remove any pin of ``strategy_id`` (a retired strategy is not traded again at a restart)."""
    create_schema(registry.engine, pins_metadata)
    with writer(registry.engine).begin() as c:
        c.execute(pins_table.delete().where(pins_table.c.strategy_id == strategy_id))


def pinned(registry: Registry, symbol: str) -> dict | None:
    create_schema(registry.engine, pins_metadata)
    with registry.engine.connect() as c:
        r = c.execute(select(pins_table).where(pins_table.c.symbol == symbol)).first()
    return dict(r._mapping) if r else None


def resolve(registry: Registry, symbol: str, timeframe: str, mode: str):  # type: ignore[no-untyped-def]
    """The strategy row to trade, or None when the symbol has neither pin nor champion."""
    p = pinned(registry, symbol)
    if p is not None:
        if p["paper_only"] and mode == "live":
            raise ConfigError(f"strategy {p['strategy_id']} is pinned for {symbol} but did not pass "
                              "the gauntlet: it may trade on paper only")
        try:
            return registry.strategy(p["strategy_id"])
        except DataError:
            return None
    champs = [s for s in registry.strategies(symbol=symbol, status="champion", limit=20)
              if s.timeframe == timeframe]
    if champs and mode == "live" and not passed_gauntlet(champs[0].gauntlet):
        return None
    return champs[0] if champs else None
