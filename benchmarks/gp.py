"""GP throughput against the seed design's peer, measured in the same run.

Runs ``/work/shared/peers/seed_gp_baseline.py`` (DEAP + gp.compile + one loky task per
individual) and ``singularity bench gp`` with the same venv python, the same data shape
(5,000 bars, 20 random-walk features), population and generations, and prints one JSON line:
both results, the evals/s ratio, and node evaluations per second per core beside a plain numpy
loop over the same arrays (elementwise float32 ops, one core: the practical ceiling). Node
evaluations count only the nodes the interpreter computed (each distinct subtree of a batch
once; trees served by the cache count nothing).

    python benchmarks/gp.py [--workers 2] [--population 1000] [--generations 4] [--bars 5000]
        [--peer-population N --peer-generations M]

The peer's rate does not depend on the run's size (one task per individual), so a long run of
ours (20 s and more, start-up a few percent of it) can be set beside a shorter run of the peer.
The machine's load average is printed before and after: on a shared machine, read the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

PEER = Path(os.environ.get("SINGULARITY_PEERS", Path(__file__).resolve().parents[2] / "shared" / "peers"))


def _json_line(cmd: list[str]) -> dict:
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=3600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def numpy_ceiling(bars: int, features: int, seconds: float = 2.0) -> float:
    """Element operations per second of np.add/np.multiply/np.maximum over float32 rows, one
    core, results written into a preallocated row (no allocation): node evals/s at best."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    x = rng.normal(size=(features, bars)).astype(np.float32)
    out = np.empty(bars, dtype=np.float32)
    ops = (np.add, np.multiply, np.maximum, np.subtract)
    n = 0
    with threadpool_limits(1):
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            for k in range(256):
                ops[k & 3](x[k % features], x[(k * 7 + 3) % features], out=out)
            n += 256
        wall = time.perf_counter() - t0
    return n * bars / wall


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--population", type=int, default=1000)
    ap.add_argument("--generations", type=int, default=4)
    ap.add_argument("--bars", type=int, default=5000)
    ap.add_argument("--features", type=int, default=20)
    ap.add_argument("--peer-population", type=int, default=0, help="default: --population")
    ap.add_argument("--peer-generations", type=int, default=0, help="default: --generations")
    a = ap.parse_args()
    load_before = os.getloadavg()
    common = ["--population", str(a.population), "--generations", str(a.generations),
              "--workers", str(a.workers), "--bars", str(a.bars)]
    peer_args = ["--population", str(a.peer_population or a.population),
                 "--generations", str(a.peer_generations or a.generations),
                 "--workers", str(a.workers), "--bars", str(a.bars)]
    peer = _json_line([sys.executable, str(PEER / "seed_gp_baseline.py"), *peer_args,
                       "--features", str(a.features)])
    ours = _json_line([sys.executable, "-m", "singularity", "bench", "gp", *common,
                       "--features", str(a.features), "--json"])
    ceiling = numpy_ceiling(a.bars, a.features)
    per_core = ours["node_evals_per_s"] / ours["workers"]
    # On a shared machine the wall-clock ratio depends on who else runs; per CPU second is
    # the steadier comparison (CPU seconds = utilisation x wall x workers, as both report).
    def per_cpu_s(r: dict) -> float:
        return r["evaluations"] / max(r["cpu_utilisation"] * r["seconds"] * r["workers"], 1e-9)

    print(json.dumps({
        "cpu_count": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "peer": peer,
        "singularity": ours,
        "ratio_evals_per_s": round(ours["evals_per_s"] / peer["evals_per_s"], 1),
        "ratio_computed_evals_per_s": round(ours["computed_evals_per_s"] / peer["evals_per_s"], 1),
        "ratio_evals_per_cpu_s": round(per_cpu_s(ours) / per_cpu_s(peer), 1),
        "node_evals_per_s_per_core": round(per_core),
        "numpy_loop_node_evals_per_s_one_core": round(ceiling),
        "fraction_of_numpy_ceiling": round(per_core / ceiling, 3),
        # Computed nodes only (cache hits and shared subtrees count nothing), per CPU second
        # of the whole process tree (breeding, planning and backtests included): the steadier
        # figure when others share the machine.
        "node_evals_per_cpu_s": ours["node_evals_per_cpu_s"],
        "fraction_of_numpy_ceiling_per_cpu_s": round(ours["node_evals_per_cpu_s"] / ceiling, 3),
    }))


if __name__ == "__main__":
    main()
