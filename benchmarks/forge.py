"""Stage-by-stage wall time of one full forge cycle on real candles.

    python benchmarks/forge.py [--bars 8000] [--workers 2] [--population 500] [--generations 20]

Imports the 8 core pairs (1h) from ../shared/data into a temporary store, runs
``singularity.forge.cycle.run_forge`` on BTC/USDT with the default settings and prints one JSON
object: stage seconds, total seconds, the bake-off winner and whether a champion was promoted,
the CPU use of the whole process tree over the cycle (CPU seconds / wall / cores) and its peak
resident memory (sum over the tree, sampled), with the load average beside them.

``--synthetic`` uses random-walk candles for the 8 pairs instead (as many as ``--bars``): the
memory check on 50,000 1h candles, more than the real files hold.

    python benchmarks/forge.py --synthetic --bars 50000
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
from rich.console import Console

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SINGULARITY_SHARED_DATA", REPO.parent / "shared" / "data")) / "binance-spot-2024-2026"
CORE8 = ("BTC", "ETH", "SOL", "XRP", "BNB", "DOGE", "ADA", "LTC")


class TreeSampler:
    """Samples this process and its descendants: CPU seconds (the last figure seen for each
    process, so workers that exit still count), the peak of their summed resident memory (RSS:
    shared pages such as torch's libraries count once per process) and, every fifth sample,
    of their summed proportional set size (PSS: shared pages split between the sharers, the
    tree's real share of the machine's memory)."""

    def __init__(self, every_s: float = 0.2) -> None:
        self.every_s = every_s
        self.cpu: dict[int, float] = {}
        self.peak_rss = 0
        self.peak_pss = 0
        self._n = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.marks: list[tuple[str, float, float]] = []

    def _sample(self) -> None:
        with self._lock:
            self._sample_locked()

    def mark(self, label: str) -> None:
        """A synchronous sample: (label, wall, tree CPU seconds) at a stage boundary."""
        self._sample()
        self.marks.append((label, time.perf_counter(), self.cpu_seconds()))

    def segments(self) -> dict[str, dict[str, float]]:
        """Wall and tree CPU seconds between consecutive marks, under the earlier mark's label
        (a label seen twice is summed)."""
        out: dict[str, dict[str, float]] = {}
        for (label, t0, c0), (_, t1, c1) in zip(self.marks, self.marks[1:], strict=False):
            seg = out.setdefault(label, {"wall": 0.0, "cpu": 0.0})
            seg["wall"] += t1 - t0
            seg["cpu"] += c1 - c0
        return {k: {"wall": round(v["wall"], 2), "cpu": round(v["cpu"], 2)} for k, v in out.items()}

    def _sample_locked(self) -> None:
        me = psutil.Process()
        rss = pss = 0
        full = self._n % 5 == 0  # smaps is slow to read for big processes
        self._n += 1
        for p in [me, *me.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                self.cpu[p.pid] = t.user + t.system
                rss += p.memory_info().rss
                if full:
                    pss += p.memory_full_info().pss
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_pss = max(self.peak_pss, pss)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self._sample()

    def __enter__(self) -> TreeSampler:
        self._sample()
        self._base = dict(self.cpu)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def cpu_seconds(self) -> float:
        return sum(v - self._base.get(pid, 0.0) for pid, v in self.cpu.items())


def synthetic_candles(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2017-08-17", periods=n, freq="1h", tz="UTC", name="timestamp")
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.008, n)))
    open_ = np.r_[close[0], close[:-1]]
    wick = np.abs(rng.normal(0, 0.003, n))
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close) * (1 + wick),
                         "low": np.minimum(open_, close) * (1 - wick), "close": close,
                         "volume": rng.lognormal(3, 1, n)}, index=idx.as_unit("ns"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, default=8000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--population", type=int, default=500)
    ap.add_argument("--generations", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--synthetic", action="store_true", help="random-walk candles, --bars of them")
    a = ap.parse_args()
    if not a.synthetic and not DATA.is_dir():
        sys.exit(f"real candles not found at {DATA}")

    from singularity.config import load_settings
    from singularity.data.importers import import_file
    from singularity.data.store import CandleStore
    from singularity.features.factory import FeatureFactory
    from singularity.forge.cycle import ForgeOptions, run_forge

    feature_laps: list[tuple[str, float]] = []
    compute = FeatureFactory._compute

    def timed_compute(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        fs = compute(self, *args, **kwargs)
        feature_laps.extend(fs.timings)
        return fs

    FeatureFactory._compute = timed_compute  # type: ignore[method-assign]

    with tempfile.TemporaryDirectory() as tmp:
        s = load_settings(environ={}, cwd=Path(tmp), overrides={"data.dir": str(Path(tmp) / "data")}).settings
        store = CandleStore(s.data.dir)
        for i, base in enumerate(CORE8):
            if a.synthetic:
                sym, tf, df = f"{base}/USDT", "1h", synthetic_candles(a.bars, a.seed + i)
            else:
                sym, tf, df = import_file(DATA / f"{base}_USDT-1h.feather")
            store.write("binance", sym, tf, df)
        opts = ForgeOptions(symbol="BTC/USDT", timeframe="1h", population=a.population, generations=a.generations,
                            seed=a.seed, workers=a.workers, bars=a.bars, progress=False)
        load_before = os.getloadavg()
        console = Console(stderr=True)
        with TreeSampler() as tree:

            def say(msg: str) -> None:
                # stage starts ("[bold]name[/] ...") and gauntlet verdicts ("  candidate: test PASS")
                # mark the boundaries of the CPU breakdown
                m = re.match(r"\[bold\](\w+)\[/\]", msg) or re.match(r"\s+candidate(?: \d+)?: (\w+) ", msg)
                if m:
                    tree.mark(m.group(1) if msg.startswith("[") else f"gauntlet:{m.group(1)}")
                console.print(msg)

            tree.mark("start")
            t0 = time.perf_counter()
            out = run_forge(s, opts, say=say)
            wall = time.perf_counter() - t0
            tree.mark("end")
        # the gauntlet's time before its first verdict is building its context (PBO and
        # effective-trials matrices) plus the holdout test; each "gauntlet:X" segment is the
        # time after verdict X, i.e. the NEXT test's (see breakdown_note)
    print(json.dumps({
        "benchmark": "forge cycle", "symbol": "BTC/USDT", "timeframe": "1h", "bars": a.bars,
        "workers": a.workers, "population": a.population, "generations": a.generations,
        "cpus": os.cpu_count(), "seconds": round(wall, 2), "synthetic": a.synthetic,
        "cpu_use_of_cores": round(tree.cpu_seconds() / (wall * (os.cpu_count() or 1)), 3),
        "peak_rss_gib": round(tree.peak_rss / 1024**3, 3),
        "peak_pss_gib": round(tree.peak_pss / 1024**3, 3),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "stage_seconds": {k: round(v, 2) for k, v in out.stage_seconds.items()},
        "stage_wall_cpu": tree.segments(),
        "breakdown_note": "segments start at a stage's start or after a gauntlet verdict: 'gauntlet' = "
                          "context + first test, 'gauntlet:X' = the test after X; cpu = process tree seconds",
        "feature_seconds": dict(feature_laps),
        "bakeoff_fit_seconds": {sc["name"]: sc["fit_seconds"] for sc in out.bakeoff.get("models", [])},
        "bakeoff_winner": out.bakeoff.get("winner"), "champion": out.champion is not None,
        "split": out.split, "when": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
    }))


if __name__ == "__main__":
    main()
