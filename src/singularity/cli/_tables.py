"""Rich tables that several commands print."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.table import Table


def gauntlet_table(verdicts: Iterable[dict[str, Any]]) -> Table:
    table = Table(title="gauntlet")
    table.add_column("test")
    table.add_column("verdict")
    table.add_column("detail", overflow="fold")
    for v in verdicts:
        table.add_row(v["test"], "[green]PASS[/]" if v["passed"] else "[red]FAIL[/]", v["detail"])
    return table
