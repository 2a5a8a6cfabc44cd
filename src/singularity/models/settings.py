"""Label and bake-off settings (sections ``[labels]`` and ``[bakeoff]``). Light module."""

from __future__ import annotations

from pydantic import Field

from singularity.settings_base import FrozenModel


class LabelSettings(FrozenModel):
    vol_window: int = Field(default=24, ge=2)
    upper_k: float = Field(default=2.0, gt=0)
    lower_k: float = Field(default=2.0, gt=0)
    horizon: int = Field(default=24, ge=1)
    """Vertical barrier after this many bars."""


class BakeoffSettings(FrozenModel):
    folds: int = Field(default=5, ge=2)
    embargo_bars: int = Field(default=24, ge=0)
    models: tuple[str, ...] = ("logistic", "lightgbm", "transformer")
    transformer_window: int = Field(default=32, ge=4)
    transformer_epochs: int = Field(default=5, ge=1)
    transformer_d_model: int = Field(default=32, ge=8)
    device: str = "auto"
    """'auto' = the GPU when there is one, else the CPU."""
    seed: int = 0
