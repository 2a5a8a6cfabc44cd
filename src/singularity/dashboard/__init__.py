"""The dashboard: a web UI and JSON API over the registry, the candle store and the engine's
ledger. ``create_app(settings)`` builds the ASGI app; ``serve(app, host=, port=)`` serves it
on the running event loop (the engine's ``run --dashboard``); ``singularity dashboard`` runs
it alone. Imports FastAPI lazily so that importing the settings stays light."""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "serve"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from singularity.dashboard import app

        return getattr(app, name)
    raise AttributeError(name)
