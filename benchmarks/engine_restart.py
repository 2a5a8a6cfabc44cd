"""What one kill/restart cycle of the crash test costs: a replay engine started with
``singularity run`` on a ledger that already holds progress, from the spawn to its first new
decision, then SIGKILLed (as tests/engine/test_crash.py does). Per cycle: wall seconds and the
CPU seconds of the engine process and of its strategy worker (CPU time is what the two cores of
CI pay; wall time here depends on the machine's load). Peer from the same run: a bare
interpreter that imports pandas (the floor of any restart).

Prints one JSON line per cycle and a summary, with the machine's core count and load.

    PYTHONPATH=src .venv/bin/python benchmarks/engine_restart.py [--cycles 5]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine import emit, load  # benchmarks/engine.py: data and output helpers


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cycles", type=int, default=5)
    args = ap.parse_args()
    from engine_home import SYMBOL, make_home

    from singularity.engine.ledger import Ledger, ledger_url

    candles = load("BTC", 1000)
    with tempfile.TemporaryDirectory() as tmp:
        home = make_home(Path(tmp), candles, chunk=8)
        led = Ledger(ledger_url(home.settings, "replay"))

        def newest(after: int) -> int:
            try:
                found = led.events(after_seq=after, kinds=["decision"])
            except Exception:  # no tables before the first run
                return after
            return found[-1].seq if found else after

        t0, r0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([sys.executable, "-c", "import pandas"], check=True)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        peer_wall, peer_cpu = time.perf_counter() - t0, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        seen, walls, cpus_e, cpus_w = 0, [], [], []
        for c in range(args.cycles + 1):  # cycle 0 creates the ledger and the anchor: not counted
            start = time.perf_counter()
            proc = subprocess.Popen([sys.executable, "-m", "singularity", "run", SYMBOL, "--mode", "replay", "--from",
                                     candles.index[400].isoformat(), "--json"], env=home.env(),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp)
            while proc.poll() is None and newest(seen) == seen:
                time.sleep(0.01)
            wall = time.perf_counter() - start
            seen = newest(seen)
            p = psutil.Process(proc.pid)
            t = p.cpu_times()
            engine_cpu = t.user + t.system
            worker_cpu = sum(k.cpu_times().user + k.cpu_times().system for k in p.children(recursive=True))
            proc.kill()
            proc.wait()
            if c:
                walls.append(wall)
                cpus_e.append(engine_cpu)
                cpus_w.append(worker_cpu)
                emit(bench="engine_restart", cycle=c, wall_to_first_decision_s=round(wall, 3),
                     engine_cpu_s=round(engine_cpu, 3), worker_cpu_s=round(worker_cpu, 3))
            time.sleep(0.5)  # let the orphaned worker notice and exit
        emit(bench="engine_restart", summary=True, cycles=args.cycles,
             median_wall_to_first_decision_s=round(statistics.median(walls), 3),
             median_engine_cpu_s=round(statistics.median(cpus_e), 3),
             median_worker_cpu_s=round(statistics.median(cpus_w), 3),
             peer_python_import_pandas_wall_s=round(peer_wall, 3), peer_python_import_pandas_cpu_s=round(peer_cpu, 3))


if __name__ == "__main__":
    main()
