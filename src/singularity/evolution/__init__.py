"""Strategy synthesis by strongly typed genetic programming (DEAP).

Public API::

    evolve(inputs, candles, *, settings, population, generations, seed, costs, timeframe,
           pool=None, reborn=(), progress=False, stats_path=None) -> EvolutionResult
    evaluate_expression(expr, inputs, candles=None, *, long_only=False) -> pd.Series
    expression_metrics(expr, inputs, candles, *, costs, timeframe, ...) -> dict

Heavy modules (numba kernels, DEAP) load on first use of these names.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "EvolutionResult",
    "GenerationStats",
    "HallOfFameEntry",
    "evaluate_expression",
    "evolve",
    "expression_metrics",
]

_WHERE = {
    "evolve": "singularity.evolution.synthesizer",
    "evaluate_expression": "singularity.evolution.expressions",
    "expression_metrics": "singularity.evolution.expressions",
    "EvolutionResult": "singularity.evolution.result",
    "GenerationStats": "singularity.evolution.result",
    "HallOfFameEntry": "singularity.evolution.result",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(name)
