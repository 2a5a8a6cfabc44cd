"""The gauntlet's power curve: how often the real forge promotes a champion against the net
Sharpe of an edge planted in real returns.

    python benchmarks/power.py [--levels 0,1,2,3,5] [--cycles 20,5,5,5,5] [--bars 3000]
                               [--population 500] [--generations 20] [--workers 2] [--fast]
                               [--first-seed 0] [--details power.jsonl] [--plot power.png]

Market of one cycle: the last ``--bars`` real BTC/USDT 1h candles (../shared/data), their bars
shuffled (each keeps its shape relative to the previous close; the order, and any edge in it,
is gone), a fresh shuffle per cycle. Level 0 is that market as it is: no edge. At level S > 0 a
rule is planted: "long while the 24-bar log return is above zero, else flat" (the GP sees that
return among its inputs as ``logret_24``); every bar's log return moves by ``a · σ · sign`` of
the previous close's 24-bar return, ``a`` set by bisection so that the rule's Sharpe over the
whole market, NET of the configured fees and slippage (spot: long-only), is S.

Each cycle is ``run_forge`` with the default settings at the given budget (default: the
default budget), on the one asset (no cross-asset GNN: one asset has no graph). One JSON line
per level on stdout:

    {"net_sharpe", "cycles", "promoted", "champion_holdout_sharpe_median",
     "planted_holdout_sharpe", ...}

``planted_holdout_sharpe`` is the median over cycles of the planted rule's own Sharpe on the
cycle's holdout (the last ``forge.holdout_fraction`` of the bars, sliced from one run): what a
perfect discovery would earn there. Progress goes to stderr; ``--details`` keeps one JSON line
per cycle (every gauntlet verdict's pass/fail and the DSR figures); ``--plot`` draws the curve
from the level lines (``--plot-only FILE`` redraws it from saved stdout).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from singularity.data.importers import read_freqtrade_feather

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SINGULARITY_SHARED_DATA", REPO.parent / "shared" / "data")) / "binance-spot-2024-2026"
RULE_BARS = 24
"""The planted rule's look-back: ``logret_24`` among the default features."""


def load_btc(bars: int) -> pd.DataFrame:
    return read_freqtrade_feather(DATA / "BTC_USDT-1h.feather").iloc[-bars:]


def shuffled(real: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    from singularity.validation.gauntlet import permute_bars

    out = permute_bars(real, rng)
    out["high"] = out[["open", "high", "close"]].max(axis=1)
    out["low"] = out[["open", "low", "close"]].min(axis=1)
    return out


def rule_target(close: np.ndarray) -> np.ndarray:
    """Long (1) while log(close_t / close_{t-24}) > 0, else flat: decided at bar t's close."""
    lc = np.log(close)
    t = np.zeros(close.size)
    t[RULE_BARS:] = (lc[RULE_BARS:] - lc[:-RULE_BARS] > 0).astype(float)
    return t


def plant(base: pd.DataFrame, a: float) -> pd.DataFrame:
    """``base`` with every close-to-close log return moved by ``a · σ · s`` where s = ±1 is the
    sign of the previous close's 24-bar log return on the PLANTED path (so the rule, computed
    on what the forge sees, is what the edge follows); bar shapes are kept."""
    c = base["close"].to_numpy()
    o = base["open"].to_numpy()
    lr = np.diff(np.log(c), prepend=np.log(o[0]))
    sigma = float(np.std(lr))
    new = np.empty_like(lr)
    lc = np.empty_like(lr)
    level = np.log(o[0])
    for t in range(lr.size):
        s = 0.0
        if t > RULE_BARS:
            s = 1.0 if lc[t - 1] - lc[t - 1 - RULE_BARS] > 0 else -1.0
        new[t] = lr[t] + a * sigma * s
        level += new[t]
        lc[t] = level
    close = np.exp(lc)
    open_ = np.r_[o[0], close[:-1]]
    up = base["high"].to_numpy() / np.maximum(o, c)
    down = base["low"].to_numpy() / np.minimum(o, c)
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close) * up,
                         "low": np.minimum(open_, close) * down, "close": close,
                         "volume": base["volume"].to_numpy()}, index=base.index)


def rule_sharpe(candles: pd.DataFrame, cost_rate: float, part: slice | None = None) -> float:
    from singularity.backtest import net_returns, sharpe_from_returns

    r = net_returns(candles, rule_target(candles["close"].to_numpy()), cost_rate)
    return float(sharpe_from_returns(r[part] if part is not None else r, 8760.0))


def calibrate(base: pd.DataFrame, target: float, cost_rate: float) -> float:
    """``a`` giving the planted rule a whole-market net Sharpe of ``target`` (bisection)."""
    lo, hi = 0.0, 0.05
    while rule_sharpe(plant(base, hi), cost_rate) < target:
        hi *= 2
        if hi > 5:
            raise RuntimeError("cannot plant that Sharpe")
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if rule_sharpe(plant(base, mid), cost_rate) < target:
            lo = mid
        else:
            hi = mid
    return hi


def one_cycle(level: float, seed: int, real: pd.DataFrame, a: argparse.Namespace) -> dict[str, Any]:
    from singularity.config import load_settings
    from singularity.data.store import CandleStore
    from singularity.forge.cycle import ForgeOptions, run_forge

    rng = np.random.default_rng(10_000 * int(level * 10) + seed)
    base = shuffled(real, rng)
    tmp = Path(tempfile.mkdtemp(prefix="power-"))
    try:
        over: dict[str, Any] = {"data.dir": str(tmp / "data"), "universe.symbols": ["BTC/USDT"]}
        if a.fast:
            over.update({"features.ceemdan.enabled": False, "bakeoff.models": ["logistic", "lightgbm"]})
        for item in a.set:
            key, _, value = item.partition("=")
            over[key] = json.loads(value)
        s = load_settings(environ={}, cwd=tmp, overrides=over).settings
        cost = (s.costs.fee_bps + s.costs.slippage_bps) / 1e4
        k = calibrate(base, level, cost) if level > 0 else 0.0
        market = plant(base, k) if k > 0 else base
        n_hold = round(len(market) * s.forge.holdout_fraction)
        planted_full = rule_sharpe(market, cost)
        planted_hold = rule_sharpe(market, cost, slice(len(market) - n_hold, None))
        CandleStore(s.data.dir).write("power", "BTC/USDT", "1h", market)
        opts = ForgeOptions(symbol="BTC/USDT", timeframe="1h", population=a.population,
                            generations=a.generations, seed=seed, workers=a.workers, exchange="power",
                            progress=False)
        t0 = time.perf_counter()
        sample = EffectiveTrialsSpy()
        try:
            out = run_forge(s, opts, say=lambda _m: None)
        finally:
            sample.restore()
        verdicts = {v["test"]: v["passed"] for v in out.gauntlet}
        fig = {v["test"]: v["figures"] for v in out.gauntlet}
        dsr = fig.get("deflated_sharpe", {})
        pbo = fig.get("pbo", {}).get("pbo")
        perm = fig.get("permutation", {})
        cand = out.champion or out.best or {}
        return {"net_sharpe": level, "seed": seed, "bars": len(market), "a": round(k, 6), "set": list(a.set),
                "promoted": out.champion is not None,
                "champion_holdout_sharpe": out.champion["holdout"]["sharpe"] if out.champion else None,
                "candidate_holdout_sharpe": (cand.get("holdout") or {}).get("sharpe"),
                "candidate": cand.get("readable"), "planted_net_sharpe_full": round(planted_full, 4),
                "planted_holdout_sharpe": round(planted_hold, 4), "verdicts": verdicts,
                "dsr": dsr.get("dsr"), "dsr_raw_trials": dsr.get("dsr_raw_trials"),
                "dsr_effective": dsr.get("dsr_effective"), "trials": dsr.get("trials"),
                "effective_trials": dsr.get("effective_trials"), "pbo": pbo,
                "pbo_candidates": fig.get("pbo", {}).get("candidates"),
                "sr_per_period": dsr.get("sr_per_period"), "sr0_per_period": dsr.get("sr0_per_period"),
                "p_positions": perm.get("p_positions"), "p_search": perm.get("p_search"),
                "search_best": perm.get("search_best"), "null_best": perm.get("null_best"),
                "walk_forward_sharpe": fig.get("walk_forward", {}).get("oos_sharpe"),
                "effective_trials_sample": sample.info, **eigen_dsr(dsr, sample.info),
                "seconds": round(time.perf_counter() - t0, 1),
                "stage_seconds": {k: round(v, 1) for k, v in out.stage_seconds.items()}}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class EffectiveTrialsSpy:
    """Keeps the details of the forge's effective-N estimate (the sample's size, its clusters
    and the eigenvalue count of the same sample), which the gauntlet's verdict does not carry."""

    def __init__(self) -> None:
        import singularity.validation.stats as st

        self.info: dict[str, Any] = {}
        self._st, self._orig = st, st.estimate_effective_trials

        def spy(m: Any, *, total: int, **kw: Any) -> Any:
            est, info = self._orig(m, total=total, **kw)
            self.info.update(info, estimate=est, total=total)
            return est, info

        st.estimate_effective_trials = spy

    def restore(self) -> None:
        self._st.estimate_effective_trials = self._orig


def eigen_dsr(dsr: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
    """The DSR with N scaled from the eigenvalue count of the effective-N sample (raw N ×
    eigen count / sampled): the check on the clustering's N, from the gate's own figures."""
    from singularity.validation.stats import expected_max_sharpe, probabilistic_sharpe

    if not dsr or not info.get("sampled") or dsr.get("sr_per_period") is None:
        return {"eigen_scaled_trials": None, "dsr_eigen_scaled": None}
    raw = int(dsr["trials"])
    n = raw if info["sampled"] >= raw else max(1, math.ceil(raw * info["eigen"] / info["sampled"]))
    sr0 = expected_max_sharpe(float(dsr["sr_variance"]), n)
    d = probabilistic_sharpe(float(dsr["sr_per_period"]), sr0, int(dsr["bars"]), float(dsr["skew"]),
                             float(dsr["kurtosis_pearson"]))
    return {"eigen_scaled_trials": n, "dsr_eigen_scaled": round(d, 4)}


def with_effective_n(row: dict[str, Any], min_dsr: float = 0.95) -> dict[str, Any]:
    """A cycle run with the DSR on the raw trial count, as the gate on the effective count
    would have judged it: every other verdict is independent of N, and the one candidate's
    holdout was opened either way, so the promotion follows exactly from the recorded figures."""
    if row.get("dsr_effective") is None:
        return row
    verdicts = {**row["verdicts"], "deflated_sharpe": row["dsr_effective"] >= min_dsr}
    promoted = all(verdicts.values())
    return {**row, "verdicts": verdicts, "promoted": promoted, "dsr": row["dsr_effective"],
            "champion_holdout_sharpe": row["candidate_holdout_sharpe"] if promoted else None}


def summarise(level: float, rows: list[dict[str, Any]], a: argparse.Namespace) -> dict[str, Any]:
    champs = [r["champion_holdout_sharpe"] for r in rows if r["promoted"]]
    return {"net_sharpe": level, "cycles": len(rows), "promoted": sum(r["promoted"] for r in rows),
            "promotion_rate": round(sum(r["promoted"] for r in rows) / max(1, len(rows)), 4),
            "champion_holdout_sharpe_median": round(float(np.median(champs)), 4) if champs else None,
            "planted_holdout_sharpe": round(float(np.median([r["planted_holdout_sharpe"] for r in rows])), 4),
            "planted_net_sharpe_full_median": round(float(np.median([r["planted_net_sharpe_full"] for r in rows])), 4),
            "gate_pass_rates": {t: round(float(np.mean([r["verdicts"].get(t, False) for r in rows])), 4)
                                for t in (rows[0]["verdicts"] if rows else {})},
            "gate_passes": {t: sum(bool(r["verdicts"].get(t, False)) for r in rows)
                            for t in (rows[0]["verdicts"] if rows else {})},
            "pbo_median": _median([r.get("pbo") for r in rows]), "pbo_max": _max([r.get("pbo") for r in rows]),
            "dsr_median": _median([r.get("dsr") for r in rows]), "dsr_max": _max([r.get("dsr") for r in rows]),
            "dsr_effective_max": _max([r.get("dsr_effective") for r in rows]),
            "dsr_raw_median": _median([r.get("dsr_raw_trials") for r in rows]),
            "dsr_effective_median": _median([r.get("dsr_effective") for r in rows]),
            "dsr_eigen_scaled_median": _median([r.get("dsr_eigen_scaled") for r in rows]),
            "dsr_passes": {k: sum(1 for r in rows if (r.get(f) or 0) >= 0.95) for k, f in
                           (("raw", "dsr_raw_trials"), ("effective", "dsr_effective"),
                            ("eigen_scaled", "dsr_eigen_scaled"))},
            "trials_median": _median([r.get("trials") for r in rows]),
            "effective_trials_median": _median([r.get("effective_trials") for r in rows]),
            "eigen_scaled_trials_median": _median([r.get("eigen_scaled_trials") for r in rows]),
            "sample_clusters_median": _median([(r.get("effective_trials_sample") or {}).get("clusters")
                                               for r in rows]),
            "sample_eigen_median": _median([(r.get("effective_trials_sample") or {}).get("eigen") for r in rows]),
            "candidate_holdout_sharpe_median": _median([r.get("candidate_holdout_sharpe") for r in rows]),
            "p_positions_median": _median([r.get("p_positions") for r in rows]),
            "p_positions_min": _min([r.get("p_positions") for r in rows]),
            "p_search_min": _min([r.get("p_search") for r in rows]),
            "would_pass_with_effective_n": sum(
                1 for r in rows if r["dsr_effective"] is not None and r["dsr_effective"] >= 0.95
                and all(p for t, p in r["verdicts"].items() if t != "deflated_sharpe")),
            "bars": a.bars, "population": a.population, "generations": a.generations, "workers": a.workers,
            "cores": os.cpu_count(), "load_1m": round(os.getloadavg()[0], 2),
            "seconds_per_cycle": round(float(np.mean([r["seconds"] for r in rows])), 1) if rows else None}


def _vals(xs: list[Any]) -> list[float]:
    return [float(x) for x in xs if x is not None]


def _median(xs: list[Any]) -> float | None:
    v = _vals(xs)
    return round(float(np.median(v)), 4) if v else None


def _max(xs: list[Any]) -> float | None:
    v = _vals(xs)
    return round(max(v), 4) if v else None


def _min(xs: list[Any]) -> float | None:
    v = _vals(xs)
    return round(min(v), 4) if v else None


def plot(lines: list[dict[str, Any]], path: Path) -> None:
    """Promotion rate against the planted net Sharpe, one curve per market length (bars)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 3.4), dpi=100)
    for n, bars in enumerate(sorted({d["bars"] for d in lines})):
        part = sorted((d for d in lines if d["bars"] == bars), key=lambda d: d["net_sharpe"])
        xs = [d["net_sharpe"] for d in part]
        rate = [d["promoted"] / d["cycles"] for d in part]
        ax.plot(xs, rate, "o-", label=f"{bars} bars (holdout {round(bars * 0.2)})")
        for x, y, d in zip(xs, rate, part, strict=True):
            ax.annotate(f"{d['promoted']}/{d['cycles']}", (x, y), textcoords="offset points", xytext=(0, 7 + 11 * n),
                        ha="center", fontsize=8)
    ax.axhline(0.05, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("planted rule's net-of-cost Sharpe (whole market)")
    ax.set_ylabel("share of cycles promoting a champion")
    ax.set_ylim(-0.05, 1.15)
    ax.set_title("Gauntlet power curve: shuffled real BTC/USDT 1h bars", fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--levels", default="0,1,2,3,5")
    ap.add_argument("--cycles", default="20,5,5,5,5", help="cycles per level (one number: every level)")
    ap.add_argument("--bars", type=int, default=3000)
    ap.add_argument("--population", type=int, default=500)
    ap.add_argument("--generations", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--first-seed", type=int, default=0,
                    help="seed of the first cycle of each level (more cycles later: a higher first seed)")
    ap.add_argument("--fast", action="store_true",
                    help="no CEEMDAN features and no Transformer in the bake-off (cycles several times faster); "
                         "the GP and the gauntlet keep their settings")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                    help="a settings override for every cycle, e.g. gauntlet.pbo_top_share=1 (repeatable)")
    ap.add_argument("--details", type=Path, help="append one JSON line per cycle here")
    ap.add_argument("--plot", type=Path, help="draw the curve into this PNG")
    ap.add_argument("--plot-only", type=Path, help="redraw --plot from saved level lines; run nothing")
    ap.add_argument("--effective-n", action="store_true",
                    help="with --from-details: judge cycles run with gauntlet.dsr_trials='raw' by the effective "
                         "count, from their recorded figures (the default since the power curve of 2026-11-30)")
    ap.add_argument("--from-details", type=Path,
                    help="print the level lines (and --plot) from a --details file; run nothing")
    a = ap.parse_args()
    if a.plot_only:
        lines = [json.loads(x) for x in a.plot_only.read_text().splitlines() if x.strip()]
        plot(lines, a.plot or Path("power.png"))
        return
    if a.from_details:
        rows = [json.loads(x) for x in a.from_details.read_text().splitlines() if x.strip()]
        if a.effective_n:
            rows = [with_effective_n(r) for r in rows]
        summaries = []
        for bars, level in sorted({(r.get("bars", a.bars), r["net_sharpe"]) for r in rows}):
            part = [r for r in rows if r.get("bars", a.bars) == bars and r["net_sharpe"] == level]
            summaries.append({**summarise(level, part, a), "bars": bars, "load_1m": None})
            print(json.dumps(summaries[-1]))
        if a.plot:
            plot(summaries, a.plot)
        return
    if not DATA.is_dir():
        sys.exit(f"real candles not found at {DATA}")
    levels = [float(x) for x in a.levels.split(",")]
    cycles = [int(x) for x in a.cycles.split(",")]
    cycles = cycles * len(levels) if len(cycles) == 1 else cycles
    if len(cycles) != len(levels):
        sys.exit("--cycles needs one number or one per level")
    real = load_btc(a.bars)
    summaries = []
    for level, n in zip(levels, cycles, strict=True):
        rows = []
        for seed in range(a.first_seed, a.first_seed + n):
            row = one_cycle(level, seed, real, a)
            rows.append(row)
            print(f"level {level:g} cycle {seed + 1 - a.first_seed}/{n} (seed {seed}): promoted={row['promoted']} "
                  f"candidate holdout {row['candidate_holdout_sharpe']} planted {row['planted_holdout_sharpe']} "
                  f"failed {[t for t, p in row['verdicts'].items() if not p]} ({row['seconds']} s)",
                  file=sys.stderr, flush=True)
            if a.details:
                with a.details.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
        summary = summarise(level, rows, a)
        summaries.append(summary)
        print(json.dumps(summary), flush=True)
    if a.plot:
        plot(summaries, a.plot)


if __name__ == "__main__":
    main()
