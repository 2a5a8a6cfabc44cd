"""The logs page's lines: this process's recent records (a ring buffer on the root logger) and
the tails of the log files under the data directory, with every configured secret masked."""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Iterable
from pathlib import Path

_FORMAT = "%(asctime)s %(processName)s[%(process)d] %(levelname)s %(name)s: %(message)s"
MASK = "********"


class LogBuffer(logging.Handler):
    """Keeps the last ``capacity`` formatted records of the process."""

    def __init__(self, capacity: int = 500) -> None:
        super().__init__(logging.INFO)
        self.lines: deque[str] = deque(maxlen=capacity)
        self.setFormatter(logging.Formatter(_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # a bad record must not break the caller's logging
            self.handleError(record)


def _tail(path: Path, n: int, max_bytes: int = 256 * 1024) -> list[str]:
    """The last ``n`` lines of a file, reading at most ``max_bytes`` from its end."""
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - max_bytes))
        data = fh.read()
    lines = data.decode("utf-8", errors="replace").splitlines()
    if size > max_bytes and lines:
        lines = lines[1:]  # the first one is cut
    return lines[-n:]


def log_files(data_dir: Path, limit: int = 5) -> list[Path]:
    """The most recently written ``*.log`` files under ``logs/`` and ``runs/`` of the data dir."""
    found = [p for sub in ("logs", "runs") if (data_dir / sub).is_dir()
             for p in (data_dir / sub).glob("*.log") if p.is_file()]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)[:limit]


def redact(line: str, secrets: Iterable[str]) -> str:
    for s in secrets:
        if s:
            line = line.replace(s, MASK)
    return line


def recent_lines(buffer: LogBuffer | None, data_dir: Path, secrets: Iterable[str], *,
                 lines: int = 200) -> dict[str, list[str]]:
    """``{"dashboard": [...], "<file name>": [...]}``, oldest line first in each."""
    secrets = [s for s in secrets if s]
    out: dict[str, list[str]] = {}
    if buffer is not None:
        out["this process"] = [redact(x, secrets) for x in list(buffer.lines)[-lines:]]
    for p in log_files(data_dir):
        try:
            out[p.relative_to(data_dir).as_posix()] = [redact(x, secrets) for x in _tail(p, lines)]
        except OSError:
            continue
    return out
