"""Process-safe logging: every process puts records on one queue; one listener in the parent
owns the log file.

Several processes appending to one file interleave and lose lines; a listener thread that is
the file's only writer does not. Workers get the queue through the pool's initializer
(``WorkerPool(log_queue=hub.queue)``) and install a ``QueueHandler`` on their root logger.
"""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path
from types import TracebackType
from typing import Any

_FORMAT = "%(asctime)s %(processName)s[%(process)d] %(levelname)s %(name)s: %(message)s"


class LogHub:
    """Owns the queue and the listener; a context manager.

    >>> with LogHub(path) as hub, WorkerPool(2, log_queue=hub.queue) as pool: ...
    """

    def __init__(self, path: str | Path, *, level: int = logging.INFO) -> None:
        from loky.backend import get_context

        self.path = Path(path)
        self.level = level
        # A loky-context queue can be handed to loky workers through initargs.
        self.queue: Any = get_context("loky").Queue()
        self._listener: logging.handlers.QueueListener | None = None
        self._handler: logging.handlers.QueueHandler | None = None

    def start(self) -> LogHub:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # The one writer of this file; appends are by design (a log, not an artefact).
        file_handler = logging.FileHandler(self.path, encoding="utf-8")
        file_handler.setFormatter(logging.Formatter(_FORMAT))
        self._listener = logging.handlers.QueueListener(
            self.queue, file_handler, respect_handler_level=True
        )
        self._listener.start()
        # The parent logs through the same queue, so lines from all processes stay ordered.
        self._handler = logging.handlers.QueueHandler(self.queue)
        root = logging.getLogger()
        root.addHandler(self._handler)
        if root.level > self.level or root.level == logging.NOTSET:
            root.setLevel(self.level)
        return self

    def stop(self) -> None:
        if self._handler is not None:
            logging.getLogger().removeHandler(self._handler)
            self._handler = None
        if self._listener is not None:
            self._listener.stop()  # drains what is queued, then closes the file
            for h in self._listener.handlers:
                h.close()
            self._listener = None

    def __enter__(self) -> LogHub:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def install_queue_handler(queue: Any, level: int = logging.INFO) -> None:
    """In a worker: send every record of the root logger to ``queue`` (idempotent)."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(logging.handlers.QueueHandler(queue))
    root.setLevel(level)
