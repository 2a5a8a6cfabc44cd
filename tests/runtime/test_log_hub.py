"""Logging from workers cannot block the parent or the next pool: workers log heavily, one is
SIGKILLed mid-batch while it logs, the pool is closed and reopened 20 times."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"
CYCLES, ITEMS, LINES = 20, 4, 100

_SCRIPT = textwrap.dedent(
    """
    import faulthandler, sys, time
    sys.path[:0] = [{tests!r}, {src!r}]
    faulthandler.dump_traceback_later(140, exit=True)  # a hang shows where, then fails
    import runtime_tasks as tasks
    from singularity.runtime.logging import LogHub
    from singularity.runtime.pool import WorkerPool
    hub = LogHub({log!r}).start()
    for cycle in range({cycles}):
        marker = {tmp!r} + f"/killed-{{cycle}}"
        items = [(cycle, i, {lines}, marker) for i in range({items})]
        with WorkerPool(2, log_queue=hub.queue) as pool:
            assert pool.map(tasks.log_burst, items, chunksize=1, timeout=60) == list(range({items}))
        print("cycle", cycle, flush=True)
    hub.stop()
    print("stopped", flush=True)
    """
)


def test_killed_logging_worker_never_blocks_and_loses_no_survivor_record(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    code = _SCRIPT.format(tests=str(HERE), src=str(SRC), log=str(log), tmp=str(tmp_path),
                          cycles=CYCLES, items=ITEMS, lines=LINES)
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=150)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        pytest.fail(f"hung after {out.count('cycle')} of {CYCLES} cycles")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines()[-1] == "stopped"
    seen: set[tuple[int, int, int]] = set()
    pat = re.compile(r"burst (\d+) (\d+) (\d+) ")
    for path in [log, *sorted(tmp_path.glob("run.log.*"))]:
        for m in pat.finditer(path.read_text(errors="replace")):
            seen.add((int(m[1]), int(m[2]), int(m[3])))
    want = {(c, i, j) for c in range(CYCLES) for i in range(ITEMS) for j in range(LINES)}
    assert want - seen == set()
