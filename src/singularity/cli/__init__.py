"""The ``singularity`` command. Sub-commands live in their own modules and import heavy
libraries inside the command body, so ``singularity --help`` stays fast."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from singularity import __version__
from singularity.cli._context import err_console, state
from singularity.errors import SingularityError

app = typer.Typer(
    name="singularity",
    help="Discovers, validates and trades crypto trading strategies.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"singularity {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    config: Path | None = typer.Option(
        None, "--config", "-c", help="Settings file (default: ./singularity.toml if present)."
    ),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="Data directory (overrides settings and SINGULARITY_DATA_DIR)."
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    st = state(ctx)
    st.config_path = config
    if data_dir is not None:
        st.overrides["data.dir"] = str(data_dir)


# Sub-command registration: one line per module.
from singularity.cli import (  # noqa: E402
    bakeoff_cmd,
    cache_cmd,
    config_cmd,
    dashboard_cmd,
    data_cmd,
    demo_cmd,
    engine_cmd,
    evolve_cmd,
    features_cmd,
    forge_cmd,
    regimes_cmd,
    registry_cmd,
    strategy_cmd,
)

app.command("init")(config_cmd.init)
app.add_typer(config_cmd.app, name="config")
app.add_typer(data_cmd.app, name="data")
app.add_typer(features_cmd.app, name="features")
app.command("evolve")(evolve_cmd.evolve)
app.add_typer(evolve_cmd.bench_app, name="bench")
app.command("bakeoff")(bakeoff_cmd.bakeoff)
app.command("forge")(forge_cmd.forge)
app.add_typer(registry_cmd.app, name="registry")
app.add_typer(cache_cmd.app, name="cache")
app.command("report")(registry_cmd.report)
app.command("demo")(demo_cmd.demo)
app.command("status")(engine_cmd.status)
app.command("ledger")(engine_cmd.ledger)
app.command("dashboard")(dashboard_cmd.dashboard)
app.command("run")(engine_cmd.run)
app.command("stop")(engine_cmd.stop)
app.add_typer(strategy_cmd.app, name="strategy")
app.command("regimes")(regimes_cmd.regimes)


def main() -> None:
    """Entry point: user errors become one line on stderr and a non-zero exit code.

    Click handles its own usage errors (exit 2) in standalone mode; ours surface here.
    SIGTERM is handled like Ctrl-C: pools, temporary files and run records are cleaned up."""
    from singularity.runtime.signals import sigterm_as_interrupt

    sigterm_as_interrupt()
    try:
        app()
    except SingularityError as e:
        err_console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt as e:
        from singularity.runtime.signals import Terminated

        err_console.print("terminated" if isinstance(e, Terminated) else "interrupted")
        sys.exit(143 if isinstance(e, Terminated) else 130)
