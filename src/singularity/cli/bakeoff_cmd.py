"""``singularity bakeoff``."""

from __future__ import annotations

import typer


def bakeoff(ctx: typer.Context) -> None:
    """Hold the model bake-off."""
