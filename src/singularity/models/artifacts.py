"""Bake-off artifacts on disk, every file written atomically, ready for the registry:

    DIR/bakeoff.json            scores, winner, folds, embargo, fingerprint, settings
    DIR/<model>/settings.json   estimator parameters, feature columns, window, fingerprint
    DIR/<model>/model.txt       LightGBM text model             (lightgbm)
    DIR/<model>/model.pt        torch state dict + scaler        (transformer)
    DIR/<model>/model.json      scaler and coefficients          (logistic)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from singularity.storage import atomic_write_bytes

if TYPE_CHECKING:
    from singularity.models.bakeoff import BakeoffResult


def data_fingerprint(candles: pd.DataFrame, features: pd.DataFrame) -> str:
    """sha256 of the candles (index + OHLCV) and the feature matrix with its column names."""
    h = hashlib.sha256()
    h.update(candles.index.asi8.tobytes() if isinstance(candles.index, pd.DatetimeIndex) else
             np.asarray(candles.index).tobytes())
    h.update(np.ascontiguousarray(candles[["open", "high", "low", "close", "volume"]].to_numpy(np.float64)).tobytes())
    h.update(json.dumps(list(map(str, features.columns))).encode())
    h.update(np.ascontiguousarray(features.to_numpy(np.float64)).tobytes())
    return h.hexdigest()


def _json(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True, default=str) + "\n").encode()


def _params(model: Any) -> dict[str, Any]:
    return {k: v for k, v in model.get_params().items() if isinstance(v, (int, float, str, bool, type(None)))}


def save_artifacts(result: BakeoffResult, directory: str | Path) -> Path:
    """Write every refitted model of ``result`` and the summary under ``directory``."""
    root = Path(directory)
    for name, model in result.fitted.items():
        d = root / name
        if getattr(model, "single_class_", False):
            pass  # nothing learned beyond the one class, recorded in settings.json
        elif name == "lightgbm":
            atomic_write_bytes(d / "model.txt", model.model_text().encode())
        elif name == "transformer":
            atomic_write_bytes(d / "model.pt", model.state_dict_bytes())
        elif name == "logistic":
            atomic_write_bytes(d / "model.json", _json(model.to_dict()))
        atomic_write_bytes(
            d / "settings.json",
            _json(
                {
                    "model": name,
                    "estimator": type(model).__name__,
                    "params": _params(model),
                    "classes": [float(c) for c in model.classes_],
                    "feature_columns": result.feature_columns,
                    "window": result.window if name == "transformer" else 1,
                    "fingerprint": result.fingerprint,
                    **result.settings,
                }
            ),
        )
    summary = {**result.to_json_dict(), "fingerprint": result.fingerprint, "settings": result.settings}
    atomic_write_bytes(root / "bakeoff.json", _json(summary))
    return root
