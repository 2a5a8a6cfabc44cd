"""On-disk layout of one candle series: monthly Parquet partitions, a manifest, an append log.

    <series>/manifest.json          the committed state: partitions (file, rows, first, last,
                                    gaps) and the name of the current append log
    <series>/2024-09.<id>.parquet   the candles of one UTC month (sorted, unique, validated)
    <series>/log.<id>.bin           candles appended after the last partition, in batches

A write that changes stored candles writes NEW partition files (unique names), then replaces
the manifest atomically: that rename is the commit; the superseded files are deleted after
it. Until then every reader sees the previous manifest and its files, and a crash leaves only
unreferenced files, swept by the next writer. So a rejected or interrupted write changes
nothing that is read.

Appends strictly after the last candle (the live engine's one candle per bar) go to the log:
one batch record (row count, CRC-32, rows) appended and fsynced, O(new rows). A torn batch
at the end of the log (a crash mid-append) fails its length or CRC check and is ignored.
The next write that does not append folds the log into the partitions.
"""

from __future__ import annotations

import json
import os
import struct
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
LOG_MAX_ROWS = 4096
"""Rows the append log may hold before a write folds it into the partitions."""
_HEADER = struct.Struct("<II")  # rows in the batch, CRC-32 of the batch's bytes
ROW = np.dtype([("t", "<i8"), ("open", "<f8"), ("high", "<f8"), ("low", "<f8"),
                ("close", "<f8"), ("volume", "<f8")])


@dataclass(frozen=True)
class Partition:
    key: str
    """UTC month, ``YYYY-MM``."""
    file: str
    rows: int
    first: int
    """Open time of the first candle (ns since the epoch); ``last`` likewise."""
    last: int
    gaps: tuple[tuple[int, int], ...] = ()
    """(first missing, last missing) open times (ns) of the runs of missing candles inside."""

    def to_json(self) -> dict:
        return {"key": self.key, "file": self.file, "rows": self.rows, "first": self.first,
                "last": self.last, "gaps": [list(g) for g in self.gaps]}

    @staticmethod
    def from_json(d: dict) -> Partition:
        return Partition(d["key"], d["file"], int(d["rows"]), int(d["first"]), int(d["last"]),
                         tuple((int(a), int(b)) for a, b in d["gaps"]))


@dataclass(frozen=True)
class Manifest:
    exchange: str
    symbol: str
    timeframe: str
    partitions: tuple[Partition, ...] = ()
    log: str = field(default_factory=lambda: new_log_name())

    def to_bytes(self) -> bytes:
        return json.dumps({
            "version": FORMAT_VERSION, "exchange": self.exchange, "symbol": self.symbol,
            "timeframe": self.timeframe, "log": self.log,
            "partitions": [p.to_json() for p in self.partitions],
        }, separators=(",", ":")).encode()

    @staticmethod
    def from_bytes(raw: bytes) -> Manifest:
        d = json.loads(raw)
        if d.get("version") != FORMAT_VERSION:
            raise ValueError(f"manifest format {d.get('version')!r} (this code reads {FORMAT_VERSION})")
        return Manifest(d["exchange"], d["symbol"], d["timeframe"],
                        tuple(Partition.from_json(p) for p in d["partitions"]), d["log"])

    def referenced(self) -> set[str]:
        return {MANIFEST, self.log} | {p.file for p in self.partitions}


def new_partition_name(key: str) -> str:
    return f"{key}.{uuid.uuid4().hex[:12]}.parquet"


def new_log_name() -> str:
    return f"log.{uuid.uuid4().hex[:12]}.bin"


def month_keys(ns: np.ndarray) -> np.ndarray:
    """``YYYY-MM`` of each open time (ns since the epoch, UTC)."""
    months = ns.astype("datetime64[ns]").astype("datetime64[M]")
    uniq, inverse = np.unique(months, return_inverse=True)  # format each month once
    return np.datetime_as_string(uniq, unit="M")[inverse.reshape(-1)]


def rows_from_frame(df: pd.DataFrame) -> np.ndarray:
    rows = np.empty(len(df), dtype=ROW)
    rows["t"] = df.index.as_unit("ns").asi8
    for c in ("open", "high", "low", "close", "volume"):
        rows[c] = df[c].to_numpy(dtype=np.float64)
    return rows


@dataclass(frozen=True)
class LogState:
    rows: np.ndarray
    """Rows of the intact batches, in order."""
    valid: int
    """Length in bytes of the intact batches."""
    size: int
    """Length of the file (-1: no file)."""


def read_log(path: Path) -> LogState:
    """Every complete, intact batch of the log (none when it does not exist)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return LogState(np.empty(0, dtype=ROW), 0, -1)
    rows, pos = _parse_log(raw)
    return LogState(rows, pos, len(raw))


def read_log_after(path: Path, offset: int) -> tuple[np.ndarray, int]:
    """The complete, intact batches after byte ``offset`` (the end of an intact batch, as
    ``LogState.valid`` or an earlier call gave it) and the offset after them: a reader that
    keeps the rows it has read pays only for the log's new batches (the log is append-only
    under one name; a rewrite of the series gives the log a new name)."""
    try:
        if os.stat(path).st_size <= offset:  # nothing new (a stat costs less than an open)
            return np.empty(0, dtype=ROW), offset
        with open(path, "rb") as f:
            f.seek(offset)
            raw = f.read()
    except FileNotFoundError:
        return np.empty(0, dtype=ROW), offset
    rows, pos = _parse_log(raw)
    return rows, offset + pos


def _parse_log(raw: bytes) -> tuple[np.ndarray, int]:
    """The rows of the intact batches at the start of ``raw`` and their length in bytes."""
    bodies = []
    pos = 0
    view = memoryview(raw)
    while pos + _HEADER.size <= len(raw):
        n, crc = _HEADER.unpack_from(raw, pos)
        end = pos + _HEADER.size + n * ROW.itemsize
        body = view[pos + _HEADER.size : end]
        if end > len(raw) or zlib.crc32(body) != crc:
            break  # torn by a crash mid-append (or being appended now): never acknowledged
        bodies.append(body)
        pos = end
    rows = np.frombuffer(b"".join(bodies), dtype=ROW) if bodies else np.empty(0, dtype=ROW)
    return rows, pos


def append_log(path: Path, state: LogState, rows: np.ndarray) -> None:
    """Append one batch after the intact part of the log (``state``, read under the same
    lock) and fsync it; the directory too when the log is new. A torn batch left by a crash
    is cut off first, so later batches stay readable."""
    body = rows.astype(ROW, copy=False).tobytes()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)  # the umask decides
    try:
        if state.size > state.valid:
            os.ftruncate(fd, state.valid)
        os.write(fd, _HEADER.pack(len(rows), zlib.crc32(body)) + body)
        os.fsync(fd)
    finally:
        os.close(fd)
    if state.size < 0:
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def gaps_of(ns: np.ndarray, step: int) -> tuple[tuple[int, int], ...]:
    """Runs of missing candles between sorted open times."""
    if len(ns) < 2:
        return ()
    d = np.diff(ns)
    at = np.flatnonzero(d > step)
    return tuple((int(ns[i] + step), int(ns[i + 1] - step)) for i in at)
