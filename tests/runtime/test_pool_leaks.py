"""A long-lived parent that opens and closes pools keeps no mapping, descriptor or thread."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"

_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, threading
    sys.path[:0] = [{tests!r}, {src!r}]
    import numpy as np
    import runtime_tasks as tasks
    from singularity.runtime.logging import LogHub
    from singularity.runtime.pool import WorkerPool

    def state():
        maps = open("/proc/self/maps").read().splitlines()
        return {{"deleted_maps": sum("(deleted)" in m for m in maps),
                 "fds": len(os.listdir("/proc/self/fd")),
                 "threads": threading.active_count()}}

    out = []
    for cycle in range(10):
        with LogHub({log!r}) as hub, WorkerPool(2, log_queue=hub.queue) as pool:
            handle = pool.share({{"a": np.arange(300_000, dtype=np.float64).reshape(3, -1)}})
            assert len(pool.map(tasks.shared_sum, [(handle, i) for i in range(3)])) == 3
            # no release(): closing the pool must free what it shared (the bake-off's way)
        out.append(state())
    print(json.dumps(out))
    """
)


def test_ten_pool_cycles_leave_no_mapping_descriptor_or_thread(tmp_path: Path) -> None:
    code = _SCRIPT.format(tests=str(HERE), src=str(SRC), log=str(tmp_path / "run.log"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    states = json.loads(proc.stdout.splitlines()[-1])
    assert [s["deleted_maps"] for s in states] == [0] * 10
    first, last = states[0], states[-1]
    assert last["fds"] <= first["fds"], states
    assert last["threads"] <= first["threads"], states
