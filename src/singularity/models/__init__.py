"""Models for the bake-off: LightGBM, a Transformer, a logistic baseline; purged CV."""
