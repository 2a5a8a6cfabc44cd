"""Market data: the canonical candle frame, its validation, the Parquet store, importers and
resampling. The ccxt downloader lives in ``singularity.data.downloader``."""

from singularity.data.schema import (
    OHLCV_COLUMNS,
    ValidationReport,
    ensure_valid,
    gap_mask,
    to_canonical,
    validate_candles,
)
from singularity.data.store import CandleStore, StoreEntry, WriteReport, load_universe

__all__ = [
    "OHLCV_COLUMNS",
    "CandleStore",
    "StoreEntry",
    "ValidationReport",
    "WriteReport",
    "ensure_valid",
    "gap_mask",
    "load_universe",
    "to_canonical",
    "validate_candles",
]
