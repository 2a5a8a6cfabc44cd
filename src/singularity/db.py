"""Database engines shared by the registry and the engine's ledger.

Several processes (forge cycles, the engine, the CLI, the dashboard) open one database at once,
often a fresh one. Three rules make that safe:

- SQLite: the busy timeout is set before anything else on a connection (switching to WAL needs
  a lock; without the timeout a second opener fails at once with "database is locked").
- Write transactions take the write lock when they begin (``BEGIN IMMEDIATE`` on SQLite, an
  advisory lock per key on PostgreSQL, see :func:`write_lock`), so check-then-insert and
  read-then-insert sequences cannot interleave between processes.
- The schema is created once, inside a transaction that holds the write lock
  (:func:`create_schema`); concurrent openers wait and then find the tables there.

Timestamps are stored and returned as aware UTC datetimes (:class:`UTCDateTime`): SQLite keeps
no time zone, and a naive value read back cannot be compared with ``datetime.now(UTC)``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, DateTime, MetaData, Table, create_engine, event, inspect, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert
from sqlalchemy.types import TypeDecorator

BUSY_TIMEOUT_MS = 30_000
"""How long a SQLite connection waits for another process's lock before failing."""

_BEGIN_OPTION = "singularity_begin"
_SCHEMA_LOCK = "singularity-schema"


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back as an aware UTC datetime."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        # A naive value is taken to be UTC already (what every caller here passes).
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        # SQLite has no zone: store the UTC wall time so that text order is time order.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    # Autocommit at the driver level: the "begin" hook below emits BEGIN itself, so that a
    # write transaction can take the lock at its start (pysqlite's implicit BEGIN cannot).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")  # first: everything below may wait
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            mode = cur.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                cur.execute("PRAGMA journal_mode=WAL")
            break
        except Exception as exc:  # sqlite3.OperationalError: locked during another's switch
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    mode = conn.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url`` with the pragmas and transaction hooks above (any SQLAlchemy URL).

    Reads use it directly; write transactions use :func:`writer` of it.
    """
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
    return engine


def writer(engine: Engine) -> Engine:
    """The same engine (same pool) whose transactions take SQLite's write lock as they begin."""
    return engine.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})


def _lock_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def write_lock(conn: Connection | Session, name: str) -> None:
    """Serialise write transactions on ``name`` across processes until this transaction ends.

    SQLite: a no-op, the transaction already holds the database's write lock (:func:`writer`).
    PostgreSQL: a transaction-scoped advisory lock on a hash of ``name``.
    """
    bind = conn.get_bind() if isinstance(conn, Session) else conn
    if bind.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key(name)})


def insert_ignore(table: Table, dialect_name: str) -> Insert:
    """``INSERT ... ON CONFLICT DO NOTHING`` for SQLite and PostgreSQL."""
    if dialect_name == "postgresql":
        return pg_insert(table).on_conflict_do_nothing()
    if dialect_name == "sqlite":
        return sqlite_insert(table).on_conflict_do_nothing()
    raise ValueError(f"insert-or-ignore is not implemented for database '{dialect_name}'")


def _add_missing_columns(conn: Connection, metadata: MetaData) -> None:
    """Add columns that the models gained since the database was created (additive only)."""
    insp = inspect(conn)
    for table in metadata.sorted_tables:
        if not insp.has_table(table.name):
            continue
        have = {c["name"] for c in insp.get_columns(table.name)}
        for col in table.columns:
            if col.name in have:
                continue
            if not col.nullable and col.server_default is None:
                raise ValueError(f"cannot add required column {table.name}.{col.name} to an old database")
            ddl = col.type.compile(dialect=conn.dialect)
            conn.exec_driver_sql(f'ALTER TABLE "{table.name}" ADD COLUMN "{col.name}" {ddl}')


def create_schema(engine: Engine, metadata: MetaData) -> None:
    """Create the tables of ``metadata`` (and add new nullable columns) once, race-free.

    The check and the creation run in one transaction that holds the write lock, so of several
    processes opening a fresh database at once exactly one creates the tables.
    """
    with writer(engine).begin() as conn:
        write_lock(conn, _SCHEMA_LOCK)
        metadata.create_all(conn, checkfirst=True)
        _add_missing_columns(conn, metadata)


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """One write transaction (locks taken at begin), committed on success."""
    with Session(writer(engine), expire_on_commit=False) as s, s.begin():
        yield s


def utcnow() -> datetime:
    return datetime.now(UTC)
