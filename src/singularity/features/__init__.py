"""Causal features: every value at bar t uses candles up to and including bar t only.

Public API (imported lazily: ``singularity.config`` imports ``features.settings``, which must
not pull numba, TA-Lib or torch into every command):

- ``FeatureFactory(settings, *, pool=None, cache_dir=None).build(universe) -> FeatureSet``
- ``FeatureSet``: ``.frames`` per asset, ``.catalogue``, ``.warmup_mask``, ``.ready(symbol)``
- ``feature_catalogue(settings)``: the catalogue without computing
- ``FeatureSpec``: one catalogue entry; ``assert_causal``: the lookahead check
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "FeatureFactory": "singularity.features.factory",
    "FeatureSet": "singularity.features.factory",
    "feature_catalogue": "singularity.features.factory",
    "FeatureSpec": "singularity.features.catalogue",
    "assert_causal": "singularity.features.causality",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'singularity.features' has no attribute {name!r}")
