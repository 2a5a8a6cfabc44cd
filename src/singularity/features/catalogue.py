"""The feature catalogue: one ``FeatureSpec`` per output column.

The GP's primitive set and the analyst's explanations read it, so every family returns one
spec per column it produces, in column order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


def _freeze(params: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> tuple[tuple[str, Any], ...]:
    items = params.items() if isinstance(params, Mapping) else params
    out = []
    for key, value in items:
        if isinstance(value, list):
            value = tuple(value)
        out.append((str(key), value))
    return tuple(sorted(out))


@dataclass(frozen=True)
class FeatureSpec:
    """Description of one feature column.

    ``params`` may be given as a dict; it is stored as a sorted tuple of pairs so the spec is
    hashable. ``warmup`` is the number of leading rows (from the first candle) before the value
    is valid; those rows are marked by the factory, never filled.
    """

    name: str
    family: str
    params: tuple[tuple[str, Any], ...] = field(default=())
    warmup: int = 0
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", _freeze(self.params))
        if not self.name:
            raise ValueError("a feature needs a name")
        if self.warmup < 0:
            raise ValueError(f"feature {self.name!r}: warmup must be >= 0, got {self.warmup}")
        if "\n" in self.description:
            raise ValueError(f"feature {self.name!r}: the description must be one line")

    @property
    def params_dict(self) -> dict[str, Any]:
        return dict(self.params)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-friendly form (``features list --json``)."""
        return {
            "name": self.name,
            "family": self.family,
            "params": {k: list(v) if isinstance(v, tuple) else v for k, v in self.params},
            "warmup": self.warmup,
            "description": self.description,
        }


def check_catalogue(columns: Iterable[str], specs: Iterable[FeatureSpec], family: str) -> None:
    """Columns and specs must match one to one, in order (a family's contract)."""
    cols = list(columns)
    names = [s.name for s in specs]
    if cols != names:
        missing = sorted(set(cols) ^ set(names))
        raise AssertionError(
            f"{family}: columns and catalogue differ ({missing[:5] or 'order differs'})"
        )
