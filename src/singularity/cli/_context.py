"""What every command shares: the effective settings, loaded once per invocation."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from singularity.config import LoadedSettings, Settings, load_settings

PIPE_WIDTH = 4096
"""Width of the output when it is not a terminal: tables then never cut a symbol or a key
(``singularity data list | cat``), since no one reads the pipe at 80 columns."""


def _console(*, stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    tty = hasattr(stream, "isatty") and stream.isatty()
    return Console(stderr=stderr, width=None if tty else PIPE_WIDTH)


console = _console()
err_console = _console(stderr=True)


@dataclass
class CliState:
    config_path: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    _loaded: LoadedSettings | None = None

    def loaded(self) -> LoadedSettings:
        if self._loaded is None:
            self._loaded = load_settings(self.config_path, overrides=self.overrides)
        return self._loaded


def state(ctx: typer.Context) -> CliState:
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        root.obj = CliState()
    return root.obj


def settings(ctx: typer.Context, **overrides: Any) -> Settings:
    """Effective settings; ``overrides`` are dotted keys from a command's own flags."""
    st = state(ctx)
    extra = {k.replace("__", "."): v for k, v in overrides.items() if v is not None}
    if extra:
        st.overrides.update(extra)
        st._loaded = None
    return st.loaded().settings
