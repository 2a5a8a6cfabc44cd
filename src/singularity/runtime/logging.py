"""Process-safe logging: every process sends its records to one listener in the parent, the
only writer of the log file.

Several processes appending to one file interleave and lose lines; one writer does not. The
records travel over a unix stream socket, one connection per process, not over a
multiprocessing queue: a queue shares one cross-process write lock among all its writers, and a
worker killed while its feeder thread holds that lock never releases it, after which every
other writer, the next pool's shutdown and the listener's stop block forever. A connection has
no shared lock: a killed worker leaves at most a torn frame on its own connection, which the
listener drops when it sees the end of the stream.

Workers get the address through the pool's initializer (``WorkerPool(log_queue=hub.address)``;
``hub.queue`` is the same address, kept for older callers). The parent's own records go through
an in-process queue to the same file. The file rotates by size.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import pickle
import queue
import selectors
import shutil
import socket
import struct
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

_FORMAT = "%(asctime)s %(processName)s[%(process)d] %(levelname)s %(name)s: %(message)s"

DEFAULT_MAX_BYTES = 64 * 1024**2
DEFAULT_BACKUPS = 3
STOP_TIMEOUT_S = 5.0
"""How long ``LogHub.stop()`` waits for connected processes to finish sending."""
SEND_TIMEOUT_S = 30.0
"""How long a worker waits on a stalled listener before it drops a record (never forever)."""


@dataclass(frozen=True)
class LogAddress:
    """Where workers send their records (picklable: it crosses the process boundary)."""

    path: str


class _Reader(threading.Thread):
    """Accepts connections and hands each complete frame's record to the file handler."""

    def __init__(self, server: socket.socket, handler: logging.Handler) -> None:
        super().__init__(name="singularity-log-reader", daemon=True)
        self._server = server
        self._handler = handler
        self._sel = selectors.DefaultSelector()
        self._buffers: dict[socket.socket, bytearray] = {}
        self._stop_at: float | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self.dropped_frames = 0

    def request_stop(self, timeout: float) -> None:
        self._stop_at = time.monotonic() + timeout
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def run(self) -> None:
        self._sel.register(self._server, selectors.EVENT_READ)
        self._sel.register(self._wake_r, selectors.EVENT_READ)
        accepting = True
        try:
            while True:
                if self._stop_at is not None:
                    if accepting:
                        self._sel.unregister(self._server)
                        accepting = False
                    # Stopping: keep reading until every sender hung up or the time is over.
                    left = self._stop_at - time.monotonic()
                    if not self._buffers or left <= 0:
                        break
                    self._poll(min(left, 0.1), accept=False)
                else:
                    self._poll(0.5, accept=True)
        finally:
            for conn in list(self._buffers):
                self._close(conn)
            self._sel.close()
            self._wake_r.close()
            self._wake_w.close()

    def _poll(self, timeout: float, *, accept: bool) -> None:
        for key, _ in self._sel.select(timeout):
            sock = key.fileobj
            if sock is self._server:
                if accept:
                    with contextlib.suppress(OSError):
                        conn, _ = self._server.accept()
                        conn.setblocking(False)
                        self._buffers[conn] = bytearray()
                        self._sel.register(conn, selectors.EVENT_READ)
            elif sock is self._wake_r:
                with contextlib.suppress(OSError):
                    self._wake_r.recv(64)
            else:
                self._read(sock)  # type: ignore[arg-type]

    def _read(self, conn: socket.socket) -> None:
        try:
            data = conn.recv(1 << 16)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            if self._buffers.get(conn):
                self.dropped_frames += 1  # a sender died mid-record: drop the torn frame
            self._close(conn)
            return
        buf = self._buffers[conn]
        buf += data
        while len(buf) >= 4:
            (n,) = struct.unpack(">L", buf[:4])
            if len(buf) < 4 + n:
                break
            frame = bytes(buf[4 : 4 + n])
            del buf[: 4 + n]
            try:
                record = logging.makeLogRecord(pickle.loads(frame))
            except Exception:
                self.dropped_frames += 1
                continue
            self._handler.handle(record)

    def _close(self, conn: socket.socket) -> None:
        self._buffers.pop(conn, None)
        with contextlib.suppress(Exception):
            self._sel.unregister(conn)
        conn.close()


class LogHub:
    """Owns the listening socket, the reader and the file; a context manager.

    >>> with LogHub(path) as hub, WorkerPool(2, log_queue=hub.address) as pool: ...
    """

    def __init__(self, path: str | Path, *, level: int = logging.INFO,
                 max_bytes: int = DEFAULT_MAX_BYTES, backups: int = DEFAULT_BACKUPS) -> None:
        self.path = Path(path)
        self.level = level
        self.max_bytes = max_bytes
        self.backups = backups
        self._dir = tempfile.mkdtemp(prefix="singularity-log-")
        self.address = LogAddress(os.path.join(self._dir, "log.sock"))
        self._server: socket.socket | None = None
        self._reader: _Reader | None = None
        self._listener: logging.handlers.QueueListener | None = None
        self._handler: logging.handlers.QueueHandler | None = None
        self._file: logging.Handler | None = None

    @property
    def queue(self) -> LogAddress:
        """The workers' address (the name older callers use)."""
        return self.address

    def start(self) -> LogHub:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # The one writer of this file; appends are by design (a log, not an artefact).
        fh = logging.handlers.RotatingFileHandler(self.path, maxBytes=self.max_bytes,
                                                  backupCount=self.backups, encoding="utf-8")
        fh.setFormatter(logging.Formatter(_FORMAT))
        self._file = fh
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(self.address.path)
        server.listen(256)
        self._server = server
        self._reader = _Reader(server, fh)
        self._reader.start()
        # The parent's records: an in-process queue (no cross-process lock) to the same file.
        local: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._listener = logging.handlers.QueueListener(local, fh, respect_handler_level=True)
        self._listener.start()
        self._handler = logging.handlers.QueueHandler(local)
        root = logging.getLogger()
        root.addHandler(self._handler)
        if root.level > self.level or root.level == logging.NOTSET:
            root.setLevel(self.level)
        return self

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Drain and close; bounded by ``timeout`` whatever the senders do."""
        if self._handler is not None:
            logging.getLogger().removeHandler(self._handler)
            self._handler = None
        if self._listener is not None:
            self._listener.stop()  # in-process queue: drains what this process logged
            self._listener = None
        if self._reader is not None:
            self._reader.request_stop(timeout)
            self._reader.join(timeout + 1.0)
            self._reader = None
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._file is not None:
            self._file.close()
            self._file = None
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> LogHub:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class _SocketHandler(logging.handlers.SocketHandler):
    """A unix-socket SocketHandler whose sends wait for a slow listener, but not forever."""

    def makeSocket(self, timeout: float = SEND_TIMEOUT_S) -> socket.socket:
        return super().makeSocket(timeout=timeout)


def install_queue_handler(address: Any, level: int = logging.INFO) -> None:
    """In a worker: send every record of the root logger to the hub at ``address``
    (a ``LogAddress``; a queue object is accepted too)."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    if isinstance(address, LogAddress):
        handler: logging.Handler = _SocketHandler(address.path, None)
    else:
        handler = logging.handlers.QueueHandler(address)
    root.addHandler(handler)
    root.setLevel(level)
