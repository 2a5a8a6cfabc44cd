"""``singularity demo``."""

from __future__ import annotations

import typer


def demo(ctx: typer.Context) -> None:
    """Run the demo."""
