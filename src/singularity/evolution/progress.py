"""Per-generation reporting: a rich progress bar and a JSON-lines statistics log."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from singularity.evolution.result import GenerationStats
from singularity.storage import atomic_write_bytes


def process_tree_cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and all its live descendants."""
    import psutil

    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):  # it may exit while we look
            total += sum(child.cpu_times()[:2])
    return total


class CpuMeter:
    """CPU use of the process tree between laps: cpu seconds / wall seconds / workers.

    Finding the descendants scans every process of the machine, so the list is refreshed at
    most every REFRESH_S seconds; in between the known processes are read directly."""

    REFRESH_S = 5.0

    def __init__(self, workers: int) -> None:
        import psutil

        self.workers = max(1, workers)
        self._me = psutil.Process()
        self._procs: dict[int, object] = {}
        self._last: dict[int, float] = {}
        self._found = -1e9
        self._wall = time.perf_counter()
        self._cpu = self._read()

    def refresh(self, *, due_only: bool = True) -> None:
        """Find the descendants again (a scan of the machine's processes: milliseconds); the
        GP calls it while its workers are busy, so the scan is not on the serial path."""
        now = time.perf_counter()
        if not due_only or now - self._found > self.REFRESH_S:
            self._procs = {p.pid: p for p in self._me.children(recursive=True)}
            self._found = now

    def _read(self) -> float:
        import psutil

        if self._found < 0:
            self.refresh(due_only=False)
        total = sum(self._me.cpu_times()[:2])
        for pid, p in list(self._procs.items()):
            try:
                self._last[pid] = sum(p.cpu_times()[:2])  # type: ignore[attr-defined]
            except psutil.Error:
                del self._procs[pid]  # gone: keep its last reading
        return total + sum(self._last.values())

    def lap(self) -> tuple[float, float]:
        """(wall seconds, utilisation) since the last lap (or the start); starts the next."""
        now, cpu = time.perf_counter(), self._read()
        wall, used = now - self._wall, cpu - self._cpu
        self._wall, self._cpu = now, cpu
        return wall, (used / (wall * self.workers) if wall > 0 else 0.0)


class StatsLog:
    """JSON-lines file of generation statistics, rewritten atomically after each generation
    (a crash leaves the previous complete file, never a torn line)."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path is not None else None
        self._lines: list[str] = []

    def write(self, stats: GenerationStats, **extra: Any) -> None:
        if self.path is None:
            return
        self._lines.append(json.dumps({**stats.to_dict(), **extra}, sort_keys=True))
        atomic_write_bytes(self.path, ("\n".join(self._lines) + "\n").encode())


class GenerationProgress:
    """A rich bar advanced once per generation: best/median fitness, evals/s, CPU use."""

    def __init__(self, generations: int, *, enabled: bool) -> None:
        self.enabled = enabled
        self._progress: Any = None
        self._task: Any = None
        self._total = generations

    def __enter__(self) -> GenerationProgress:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            from singularity.cli._context import err_console

            self._progress = Progress(
                TextColumn("[bold]gen"),
                MofNCompleteColumn(),
                BarColumn(),
                TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(),
                console=err_console,
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task("gp", total=self._total, info="starting")
        return self

    def update(self, s: GenerationStats) -> None:
        if self._progress is not None:
            info = (
                f"best {s.best:+.3f}  median {s.median:+.3f}  "
                f"{s.evals_per_s:,.0f} evals/s  CPU {100 * s.cpu_utilisation:.0f}%"
            )
            self._progress.update(self._task, completed=s.generation + 1, info=info)

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
