"""Causal features: every value at bar t uses candles up to and including bar t only."""
