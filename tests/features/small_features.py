"""Feature settings small enough that the whole factory runs in a second or two on 2 cores,
shared by the factory and cache tests (module name unique across test folders)."""

from __future__ import annotations

from singularity.features.settings import (
    CeemdanSettings,
    FeatureSettings,
    GraphSettings,
    IndicatorSettings,
)

SYMBOLS = ["AAA/USDT", "BBB/USDT", "CCC/USDT"]
SMALL = FeatureSettings(
    indicators=IndicatorSettings(ma_periods=(10, 30), vol_horizons=(24,)),
    ceemdan=CeemdanSettings(window=64, trials=8, stride=8, max_imfs=3),
    graph=GraphSettings(corr_window=32, gnn_train_window=60, gnn_retrain_every=40,
                        gnn_epochs=2, gnn_hidden=4, gnn_embedding_dim=2),
)
