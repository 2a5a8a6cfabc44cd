"""``singularity evolve`` and ``singularity bench gp``.

Heavy libraries (numba, DEAP, pandas) are imported inside the commands.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from singularity.cli._context import console, err_console, settings
from singularity.errors import DataError

bench_app = typer.Typer(help="Benchmarks that print JSON.", no_args_is_help=True)


def _pool(stack: contextlib.ExitStack, workers: int, cluster: str | None, log_queue: Any) -> Any:
    """Dask when a scheduler is named, else a local pool (None = in-process for 1 worker)."""
    if cluster:
        from singularity.runtime.dask_pool import DaskPool

        return stack.enter_context(DaskPool(cluster))
    from singularity.runtime.pool import WorkerPool

    return stack.enter_context(WorkerPool(workers, log_queue=log_queue)) if workers > 1 else None


def evolve(
    ctx: typer.Context,
    symbol: Annotated[str, typer.Argument(help="Symbol, e.g. BTC/USDT.")],
    timeframe: Annotated[
        str | None, typer.Option("--timeframe", "-t", help="Timeframe or its name (default: tactical).")
    ] = None,
    population: Annotated[int | None, typer.Option("--population", "-p", min=4)] = None,
    generations: Annotated[int | None, typer.Option("--generations", "-g", min=1)] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", "-w", min=0, help="0 = every core (default: forge.workers).")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed")] = None,
    cluster: Annotated[
        str | None, typer.Option("--cluster", help="Dask scheduler, tcp://HOST:PORT (default: forge.cluster).")
    ] = None,
    reborn: Annotated[
        Path | None, typer.Option("--reborn", help="File of earlier champions, one expression a line.")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the result as JSON.")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
) -> None:
    """Evolve trading rules for SYMBOL by genetic programming on its training window.

    Inputs are the symbol's causal features (the feature factory, cached); the last
    forge.holdout_fraction of the bars (and an embargo before it) is never seen here.
    """
    st = settings(
        ctx, forge__population=population, forge__generations=generations,
        forge__workers=workers, forge__seed=seed, forge__cluster=cluster,
    )
    tf = st.timeframe(timeframe or "tactical")
    reborn_exprs: list[str] = []
    if reborn is not None:
        try:
            lines = reborn.read_text(encoding="utf-8").splitlines()
        except OSError as e:
            raise DataError(f"--reborn: cannot read {reborn}: {e.strerror}") from None
        reborn_exprs = [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]

    from singularity.config import check_symbol
    from singularity.data.store import CandleStore, load_universe
    from singularity.evolution import evolve as run_evolution
    from singularity.features.factory import FeatureFactory
    from singularity.runtime.logging import LogHub
    from singularity.runtime.pool import resolve_workers

    try:
        check_symbol(symbol)
    except ValueError as e:
        raise DataError(str(e)) from None
    symbols = [symbol] + [s for s in st.universe.symbols if s != symbol]
    universe = load_universe(CandleStore(st.data.dir), st.exchange.name, symbols, tf)
    universe = {s: df for s, df in universe.items() if len(df) > 0}
    if symbol not in universe:
        raise DataError(f"{symbol}: no {tf} candles stored")
    n_workers = resolve_workers(st.forge.workers)
    runs = Path(st.data.dir) / "runs"
    stem = f"gp-{symbol.replace('/', '_')}-{tf}-seed{st.forge.seed}"
    with contextlib.ExitStack() as stack:
        hub = stack.enter_context(LogHub(runs / f"{stem}.log",
                                           max_bytes=st.retention.log_max_mb * 2**20))
        pool = _pool(stack, n_workers, st.forge.cluster, hub.queue)
        cache_dir = Path(st.data.dir) / "cache" / "features" / st.exchange.name / tf
        fs = FeatureFactory(st.features, pool=pool, cache_dir=cache_dir).build(
            universe, progress=progress
        )
        inputs = fs.ready(symbol)
        candles = universe[symbol].loc[inputs.index]
        n_train = int(len(inputs) * (1 - st.forge.holdout_fraction)) - st.forge.embargo_bars
        if n_train < 100:
            raise DataError(
                f"{symbol} {tf}: {len(inputs)} bars after the feature warm-up leave {n_train} "
                "for training (need 100)"
            )
        err_console.print(
            f"training on {n_train} bars ({inputs.index[0]} .. {inputs.index[n_train - 1]}), "
            f"{len(inputs.columns)} inputs; the last {len(inputs) - n_train} bars stay unseen",
            highlight=False,
        )
        result = run_evolution(
            inputs.iloc[:n_train], candles.iloc[:n_train], settings=st.evolution,
            population=st.forge.population, generations=st.forge.generations,
            seed=st.forge.seed, costs=st.costs, timeframe=tf, pool=pool,
            reborn=reborn_exprs, progress=progress, stats_path=runs / f"{stem}.jsonl",
        )
    _print_hall_of_fame(result, f"{symbol} {tf}")
    if out is not None:
        from singularity.storage import atomic_write_bytes

        atomic_write_bytes(out, json.dumps(result.to_dict(), indent=1).encode())


def _print_hall_of_fame(result: Any, title: str) -> None:
    from rich.table import Table

    table = Table(title=f"hall of fame, {title} (in-sample, net of costs)")
    for col in ("#", "fitness", "sharpe", "trades", "max dd", "return", "size"):
        table.add_column(col, justify="right")
    for i, h in enumerate(result.hall_of_fame, 1):
        table.add_row(
            str(i), f"{h.fitness:.3f}", f"{h.sharpe:.3f}", str(h.trades),
            f"{100 * h.max_drawdown:.1f}%", f"{100 * h.total_return:+.1f}%", str(h.size),
        )
    console.print(table)
    # Expressions below the table: long ones stay readable (and copyable) on one line each.
    for i, h in enumerate(result.hall_of_fame, 1):
        console.print(f"#{i} {h.infix}", highlight=False, soft_wrap=True)
        console.print(f"   {h.expression}", style="dim", highlight=False, soft_wrap=True)
    console.print(
        f"{result.evaluations} evaluations in {result.seconds:.1f}s"
        + (" (stopped early: no improvement)" if result.stopped_early else ""),
        highlight=False,
    )


@bench_app.command("gp")
def bench_gp(
    bars: Annotated[int, typer.Option("--bars", min=50)] = 5000,
    features: Annotated[int, typer.Option("--features", min=1)] = 20,
    population: Annotated[int, typer.Option("--population", min=4)] = 1000,
    generations: Annotated[int, typer.Option("--generations", min=0)] = 4,
    workers: Annotated[int, typer.Option("--workers", min=0, help="0 = every core.")] = 0,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON line.")] = False,
) -> None:
    """GP throughput on synthetic data shaped like the peer's (random walks)."""
    from singularity.evolution.bench import run_gp_bench

    res = run_gp_bench(
        bars=bars, features=features, population=population, generations=generations,
        workers=workers, seed=seed,
    )
    if as_json:
        typer.echo(json.dumps(res))
    else:
        for k, v in res.items():
            console.print(f"{k:>22}: {v}", highlight=False)
