"""Market regimes: causal regime features, a walk-forward HDBSCAN model with stable ids
(``DynamicRegimeModel``) and an ``EnvironmentClassifier`` that names regimes and predicts
their probabilities.

The package is imported lazily (the settings module is read by ``config.py``), so naming
``singularity.regimes.X`` loads hdbscan, scikit-learn and pandas only when X is used.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "UNCLASSIFIED": "model",
    "DynamicRegimeModel": "model",
    "RegimeLabels": "model",
    "EnvironmentClassifier": "classifier",
    "regime_name": "classifier",
    "regime_stats": "classifier",
    "RegimeAnalysis": "analysis",
    "analyse_symbol": "analysis",
    "RegimeSettings": "settings",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"singularity.regimes.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'singularity.regimes' has no attribute {name!r}")
