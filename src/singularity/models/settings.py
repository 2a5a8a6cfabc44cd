"""Label and bake-off settings (sections ``[labels]`` and ``[bakeoff]``). Light module."""

from __future__ import annotations

from pydantic import Field, field_validator

from singularity.settings_base import FrozenModel

MODEL_NAMES = ("logistic", "lightgbm", "transformer")
"""Every bake-off model, simplest first (the winner rule breaks ties towards the simpler)."""


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
    transformer_heads: int = Field(default=4, ge=1)
    transformer_layers: int = Field(default=2, ge=1)
    transformer_batch_size: int = Field(default=64, ge=8)
    transformer_lr: float = Field(default=1e-3, gt=0)
    transformer_validation_fraction: float = Field(default=0.2, ge=0, lt=0.5)
    """Early stopping: the last part of each training fold is held out (a label horizon of
    rows before it dropped) and the best epoch's weights kept; 0 = train every epoch."""
    transformer_patience: int = Field(default=2, ge=1)
    lgbm_n_estimators: int = Field(default=100, ge=1)
    lgbm_learning_rate: float = Field(default=0.02, gt=0)
    lgbm_num_leaves: int = Field(default=7, ge=2)
    logistic_c: float = Field(default=0.01, gt=0)
    """Inverse L2 strength of the baseline."""
    signal_threshold: float = Field(default=0.1, ge=0, lt=1)
    """Trade sign(P(up) - P(down)) only where |P(up) - P(down)| reaches this; flat otherwise."""
    threads: int = Field(default=1, ge=0)
    """Threads per model when the bake-off runs serially (0 = the libraries' default, every
    core); inside pool workers every model runs single-threaded whatever this says. Default 1:
    these models are small, and on a busy 2-core machine torch's 2 threads were measured 10x
    slower per epoch than 1 (benchmarks/bakeoff.py)."""
    fill_on_open: bool = True
    """Signals decided at the close of bar t fill at the next bar's open (else its close)."""

    @field_validator("models")
    @classmethod
    def _models(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [m for m in v if m not in MODEL_NAMES]
        if unknown or not v or len(set(v)) != len(v):
            raise ValueError(f"bakeoff.models must be distinct names from {MODEL_NAMES}, got {v}")
        return v

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if v not in ("auto", "cpu", "cuda") and not v.startswith("cuda:"):
            raise ValueError(f"bakeoff.device must be 'auto', 'cpu' or 'cuda', got {v!r}")
        return v
