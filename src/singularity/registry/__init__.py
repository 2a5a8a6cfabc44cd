"""The registry: datasets, forge runs, strategies with lineage, models, GP statistics."""

from singularity.registry.store import Registry

__all__ = ["Registry"]
