"""The ledger: an append-only table of events and the projections they imply.

Tables (names are stable: the dashboard reads them through this module):

- ``ledger_events``: ``seq`` (increasing), ``time`` (the event's time: a candle's close in
  replay, the wall clock otherwise), ``recorded_at``, ``kind``, ``symbol``, ``key`` (unique
  idempotency key) and ``payload`` (JSON). Rows are only ever inserted.
- ``ledger_positions``, ``ledger_balances``, ``ledger_cursors``: one row per symbol, updated in
  the same transaction as the events that change them (see ``projection``).
- ``engine_status``: the running engine's heartbeat (mode, pid, loop lag, feed health, one
  summary per symbol); ``pipeline_status``: one row per thing at work (``engine``, each
  symbol, each forge cycle with its stage, progress and ETA, the worker pool), written by the
  process doing it; ``engine_commands``: requests from other processes (``stop``).

``Ledger.append`` writes a batch of events in one transaction; an event whose key is already
there is skipped (with its projection effect), so re-deciding a candle after a crash cannot
record anything twice. ``Ledger.verify`` is start-up recovery: it rebuilds the projections
from the events and raises ``LedgerMismatchError`` if the stored ones disagree.
"""

from __future__ import annotations

import copy
import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    select,
    update,
)

from singularity.db import UTCDateTime, create_schema, make_engine, write_lock, writer
from singularity.engine.projection import Book, apply
from singularity.errors import DataError

metadata = MetaData()

events_table = Table(
    "ledger_events", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("time", UTCDateTime(), nullable=False),
    Column("recorded_at", UTCDateTime(), nullable=False),
    Column("kind", String(16), nullable=False, index=True),
    Column("symbol", String(64), index=True),
    Column("key", String(255), nullable=False, unique=True),
    Column("payload", JSON, nullable=False),
)

positions_table = Table(
    "ledger_positions", metadata,
    Column("symbol", String(64), primary_key=True),
    Column("quantity", Float, nullable=False),
    Column("target", Float, nullable=False),
    Column("strategy_id", Integer),
    Column("paused", Boolean, nullable=False),
    Column("pause_reason", Text, nullable=False),
    Column("open_orders", JSON, nullable=False),
    Column("fills", Integer, nullable=False),
)

balances_table = Table(
    "ledger_balances", metadata,
    Column("symbol", String(64), primary_key=True),
    Column("cash", Float, nullable=False),
    Column("fees", Float, nullable=False),
    Column("peak_equity", Float, nullable=False),
    Column("day", String(10), nullable=False),
    Column("day_start_equity", Float, nullable=False),
    Column("last_equity", Float, nullable=False),
)

cursors_table = Table(
    "ledger_cursors", metadata,
    Column("symbol", String(64), primary_key=True),
    Column("last_candle", String(40)),
    Column("last_price", Float),
    Column("last_seq", Integer, nullable=False),
)

status_table = Table(
    "engine_status", metadata,
    Column("name", String(32), primary_key=True),
    Column("mode", String(16), nullable=False),
    Column("running", Boolean, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("host", String(255), nullable=False),
    Column("started_at", UTCDateTime()),
    Column("heartbeat_at", UTCDateTime()),
    Column("loop_lag_ms", JSON, nullable=False),
    Column("feeds", JSON, nullable=False),
    Column("symbols", JSON, nullable=False),
    Column("message", Text, nullable=False),
)

pipeline_table = Table(
    "pipeline_status", metadata,
    Column("name", String(96), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("symbol", String(64)),
    Column("state", String(32), nullable=False),
    Column("stage", String(32), nullable=False),
    Column("progress", Float),
    Column("eta_s", Float),
    Column("pid", Integer),
    Column("detail", JSON, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

commands_table = Table(
    "engine_commands", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("command", String(32), nullable=False),
    Column("args", JSON, nullable=False),
    Column("taken_at", UTCDateTime()),
)

_POSITION_COLS = ("quantity", "target", "strategy_id", "paused", "pause_reason", "open_orders",
                  "fills")
_BALANCE_COLS = ("cash", "fees", "peak_equity", "day", "day_start_equity", "last_equity")
_CURSOR_COLS = ("last_candle", "last_price", "last_seq")
_PROJECTIONS = ((positions_table, _POSITION_COLS), (balances_table, _BALANCE_COLS),
                (cursors_table, _CURSOR_COLS))


class LedgerMismatchError(DataError):
    """The stored projections disagree with the events (corruption or a foreign writer)."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def _utc(t: datetime | None) -> datetime | None:
    if t is None:
        return None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


@dataclass(frozen=True)
class NewEvent:
    """An event to append; ``key`` makes it idempotent."""

    kind: str
    key: str
    payload: dict[str, Any]
    symbol: str | None = None
    time: datetime = field(default_factory=utcnow)


@dataclass(frozen=True)
class Event:
    seq: int
    time: datetime
    kind: str
    symbol: str | None
    key: str
    payload: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """The ``ledger --json`` shape."""
        return {"seq": self.seq, "time": self.time.isoformat(), "kind": self.kind,
                "symbol": self.symbol, "key": self.key, "payload": self.payload}


class Ledger:
    """Read and write access to one ledger database (any SQLAlchemy URL).

    Readers (``status``, ``ledger``, the dashboard) use ``events``, ``positions``,
    ``status``; the engine, the only writer of events, uses ``open_books`` then ``append``.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        create_schema(self.engine, metadata)
        self._books: dict[str, Book] | None = None

    def close(self) -> None:
        self.engine.dispose()

    # -- reading ------------------------------------------------------------------------------

    def events(self, *, after_seq: int = 0, symbol: str | None = None,
               kinds: Iterable[str] | None = None, limit: int | None = None) -> list[Event]:
        """Events with ``seq > after_seq`` in order (a poller passes the last seq it saw)."""
        q = select(events_table).where(events_table.c.seq > after_seq).order_by(events_table.c.seq)
        if symbol is not None:
            q = q.where(events_table.c.symbol == symbol)
        if kinds is not None:
            q = q.where(events_table.c.kind.in_(list(kinds)))
        if limit is not None:
            q = q.limit(limit)
        with self.engine.connect() as c:
            return [Event(r.seq, _utc(r.time), r.kind, r.symbol, r.key, r.payload)  # type: ignore[arg-type]
                    for r in c.execute(q)]

    def last_seq(self) -> int:
        with self.engine.connect() as c:
            return int(c.execute(select(func.max(events_table.c.seq))).scalar() or 0)

    def has_key(self, key: str) -> bool:
        with self.engine.connect() as c:
            return c.execute(select(events_table.c.seq).where(events_table.c.key == key)).first() is not None

    def stored_books(self) -> dict[str, Book]:
        """The projection tables as they are stored."""
        books: dict[str, Book] = {}
        with self.engine.connect() as c:
            for table, cols in _PROJECTIONS:
                for r in c.execute(select(table)):
                    b = books.setdefault(r.symbol, Book(r.symbol))
                    for col in cols:
                        setattr(b, col, getattr(r, col))
        for b in books.values():
            b.open_orders = dict(b.open_orders or {})
        return books

    def positions(self) -> list[dict[str, Any]]:
        """One row per symbol: position, cash, equity at the last price, cursor, strategy."""
        out = []
        for _sym, b in sorted(self.stored_books().items()):
            row = b.as_dict()
            row["equity"] = b.equity()
            out.append(row)
        return out

    def rebuild(self) -> dict[str, Book]:
        """The projections recomputed from every event, in order."""
        books: dict[str, Book] = {}
        q = select(events_table.c.seq, events_table.c.kind, events_table.c.symbol,
                   events_table.c.payload).order_by(events_table.c.seq)
        with self.engine.connect() as c:
            for r in c.execute(q):
                if r.symbol is not None:
                    apply(books.setdefault(r.symbol, Book(r.symbol)), r.kind, r.payload, r.seq)
        return books

    def verify(self) -> dict[str, Book]:
        """Recovery check: rebuilt projections must equal the stored ones, field by field."""
        rebuilt, stored = self.rebuild(), self.stored_books()
        for sym in sorted(set(rebuilt) | set(stored)):
            a, b = rebuilt.get(sym), stored.get(sym)
            if a is None or b is None:
                raise LedgerMismatchError(
                    f"ledger {self.url}: {sym} has {'events' if a else 'no events'} but "
                    f"{'a' if b else 'no'} stored projection; refusing to trade on it")
            for k, v in a.as_dict().items():
                if b.as_dict()[k] != v:
                    raise LedgerMismatchError(
                        f"ledger {self.url}: projection {sym}.{k} is {b.as_dict()[k]!r} but the "
                        f"events give {v!r}; refusing to trade on it (restore the database)")
        return rebuilt

    # -- writing (the engine) -------------------------------------------------------------------

    def open_books(self) -> dict[str, Book]:
        """Verify and keep the projections in memory: ``append`` updates them."""
        self._books = self.verify()
        return copy.deepcopy(self._books)

    def book(self, symbol: str) -> Book:
        if self._books is None:
            self.open_books()
        assert self._books is not None
        return copy.deepcopy(self._books.get(symbol) or Book(symbol))

    def append(self, batch: Sequence[NewEvent]) -> list[Event]:
        """Append ``batch`` in one transaction with the projections; returns the events
        written (those whose key was already recorded are skipped)."""
        if self._books is None:
            self.open_books()
        assert self._books is not None
        if not batch:
            return []
        keys = [e.key for e in batch]
        if len(set(keys)) != len(keys):
            raise ValueError(f"duplicate idempotency keys in one batch: {keys}")
        books: dict[str, Book] = {}
        written: list[Event] = []
        now = utcnow()
        with writer(self.engine).begin() as c:
            write_lock(c, "ledger-append")  # PostgreSQL: one appender at a time (seq = max + 1)
            known: set[str] = set()
            for i in range(0, len(keys), 500):
                known.update(c.execute(select(events_table.c.key).where(
                    events_table.c.key.in_(keys[i:i + 500]))).scalars())
            # the engine is the only writer: sequence numbers are assigned here, in order
            seq = int(c.execute(select(func.max(events_table.c.seq))).scalar() or 0)
            rows = []
            for e in batch:
                if e.key in known:
                    continue
                seq += 1
                rows.append({"seq": seq, "time": e.time, "recorded_at": now, "kind": e.kind,
                             "symbol": e.symbol, "key": e.key, "payload": e.payload})
                written.append(Event(seq, e.time, e.kind, e.symbol, e.key, e.payload))
                if e.symbol is not None:
                    if e.symbol not in books:
                        books[e.symbol] = copy.deepcopy(self._books.get(e.symbol) or Book(e.symbol))
                    apply(books[e.symbol], e.kind, e.payload, seq)
            if rows:
                c.execute(insert(events_table), rows)
            for sym in sorted(books):
                row = books[sym].as_dict()
                for table, cols in _PROJECTIONS:
                    values = {col: row[col] for col in cols}
                    res = c.execute(update(table).where(table.c.symbol == sym).values(**values))
                    if res.rowcount == 0:
                        c.execute(insert(table).values(symbol=sym, **values))
        self._books.update(books)
        return written

    # -- status and commands -------------------------------------------------------------------

    def write_status(self, *, mode: str, running: bool, started_at: datetime | None,
                     loop_lag_ms: dict[str, float], feeds: dict[str, Any],
                     symbols: list[dict[str, Any]], message: str = "", name: str = "engine") -> None:
        values = dict(mode=mode, running=running, pid=os.getpid(), host=socket.gethostname(),
                      started_at=started_at, heartbeat_at=utcnow(), loop_lag_ms=loop_lag_ms,
                      feeds=feeds, symbols=symbols, message=message)
        with writer(self.engine).begin() as c:
            res = c.execute(update(status_table).where(status_table.c.name == name).values(**values))
            if res.rowcount == 0:
                c.execute(insert(status_table).values(name=name, **values))

    def status_row(self, name: str = "engine") -> dict[str, Any] | None:
        with self.engine.connect() as c:
            r = c.execute(select(status_table).where(status_table.c.name == name)).first()
        if r is None:
            return None
        d = dict(r._mapping)
        d["started_at"], d["heartbeat_at"] = _utc(d["started_at"]), _utc(d["heartbeat_at"])
        return d

    def write_pipeline(self, rows: Sequence[dict[str, Any]]) -> None:
        """Upsert pipeline rows by ``name`` (keys: name, kind, symbol, state, stage, progress,
        eta_s, pid, detail)."""
        now = utcnow()
        with writer(self.engine).begin() as c:
            for r in rows:
                values = {"kind": r["kind"], "symbol": r.get("symbol"), "state": r.get("state", ""),
                          "stage": r.get("stage", ""), "progress": r.get("progress"), "eta_s": r.get("eta_s"),
                          "pid": r.get("pid"), "detail": r.get("detail") or {}, "updated_at": now}
                res = c.execute(update(pipeline_table).where(pipeline_table.c.name == r["name"]).values(**values))
                if res.rowcount == 0:
                    c.execute(insert(pipeline_table).values(name=r["name"], **values))

    def pipeline(self) -> list[dict[str, Any]]:
        """Every pipeline row, ordered by kind then name."""
        with self.engine.connect() as c:
            rows = [dict(r._mapping) for r in c.execute(
                select(pipeline_table).order_by(pipeline_table.c.kind, pipeline_table.c.name))]
        for r in rows:
            r["updated_at"] = _utc(r["updated_at"]).isoformat() if r["updated_at"] else None  # type: ignore[union-attr]
        return rows

    def add_command(self, command: str, args: dict[str, Any] | None = None) -> int:
        with writer(self.engine).begin() as c:
            return int(c.execute(insert(commands_table).values(
                created_at=utcnow(), command=command, args=args or {})).inserted_primary_key[0])

    def take_commands(self) -> list[dict[str, Any]]:
        """Pending commands, oldest first, marked taken in the same transaction."""
        with writer(self.engine).begin() as c:
            rows = [dict(r._mapping) for r in c.execute(
                select(commands_table).where(commands_table.c.taken_at.is_(None))
                .order_by(commands_table.c.id))]
            if rows:
                c.execute(update(commands_table).where(
                    commands_table.c.id.in_([r["id"] for r in rows])).values(taken_at=utcnow()))
        return rows

    def clear_commands(self) -> None:
        """Drop commands nobody took (left by a ``stop`` sent while no engine ran)."""
        with writer(self.engine).begin() as c:
            c.execute(delete(commands_table).where(commands_table.c.taken_at.is_(None)))


MODES = ("replay", "paper", "live")


def ledger_url(settings: Any, mode: str) -> str:
    """The ledger of ``mode``: ``engine.ledger_url`` with ``{mode}`` filled in, or
    ``ledger-<mode>.db`` in the data directory. Paper and live never share a database."""
    from singularity.errors import ConfigError

    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r}: expected one of {', '.join(MODES)}")
    template = settings.engine.ledger_url
    if template is None:
        return f"sqlite:///{(settings.data.dir / f'ledger-{mode}.db').as_posix()}"
    if "{mode}" not in template:
        raise ConfigError("engine.ledger_url must contain '{mode}' (e.g. sqlite:///data/ledger-{mode}.db) "
                          "so that paper, live and replay never share a ledger")
    return template.replace("{mode}", mode)
