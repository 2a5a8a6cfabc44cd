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
STEP_LIMIT_S = 90

_SCRIPT = textwrap.dedent(
    """
    import faulthandler, sys, time
    sys.path[:0] = [{tests!r}, {src!r}]
    import runtime_tasks as tasks
    from singularity.runtime.logging import LogHub
    from singularity.runtime.pool import WorkerPool
    hub = LogHub({log!r}).start()
    for cycle in range({cycles}):
        # each step under its own time limit: a hang shows where, then fails (however loaded
        # the machine, one pool cycle takes seconds)
        faulthandler.dump_traceback_later({step_limit}, exit=True)
        marker = {tmp!r} + f"/killed-{{cycle}}"
        items = [(cycle, i, {lines}, marker) for i in range({items})]
        with WorkerPool(2, log_queue=hub.queue) as pool:
            assert pool.map(tasks.log_burst, items, chunksize=1, timeout=60) == list(range({items}))
        print("cycle", cycle, flush=True)
    faulthandler.dump_traceback_later({step_limit}, exit=True)
    hub.stop()
    faulthandler.cancel_dump_traceback_later()
    print("stopped", flush=True)
    """
)


def test_killed_logging_worker_never_blocks_and_loses_no_survivor_record(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    code = _SCRIPT.format(tests=str(HERE), src=str(SRC), log=str(log), tmp=str(tmp_path),
                          cycles=CYCLES, items=ITEMS, lines=LINES,
                          step_limit=STEP_LIMIT_S)
    # Output to files, not pipes: orphaned workers of a broken pool would hold a pipe open.
    out_path, err_path = tmp_path / "out.txt", tmp_path / "err.txt"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=out, stderr=err, text=True)
        try:
            proc.wait(timeout=STEP_LIMIT_S * (CYCLES + 1))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    stdout, stderr = out_path.read_text(), err_path.read_text()
    if proc.returncode != 0 and "Timeout" in stderr:
        pytest.fail(f"a step hung past {STEP_LIMIT_S}s after {stdout.count('cycle')} "
                    f"of {CYCLES} cycles:\n{stderr[-3000:]}")
    assert proc.returncode == 0, stderr[-3000:]
    assert stdout.splitlines()[-1] == "stopped"
    seen: set[tuple[int, int, int]] = set()
    pat = re.compile(r"burst (\d+) (\d+) (\d+) ")
    for path in [log, *sorted(tmp_path.glob("run.log.*"))]:
        for m in pat.finditer(path.read_text(errors="replace")):
            seen.add((int(m[1]), int(m[2]), int(m[3])))
    want = {(c, i, j) for c in range(CYCLES) for i in range(ITEMS) for j in range(LINES)}
    assert want - seen == set()
