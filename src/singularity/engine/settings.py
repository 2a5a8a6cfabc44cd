"""Engine settings (section ``[engine]``). Light module: no heavy imports here."""

from __future__ import annotations

from pydantic import Field

from singularity.settings_base import FrozenModel


class RiskSettings(FrozenModel):
    """Limits the engine applies between a strategy's target and the venue. Fractions are of
    the symbol's account equity; notional caps are in quote currency; 0 = no cap/limit."""

    max_order_fraction: float = Field(default=0.0, ge=0)
    """Largest change of position one order may make, fraction of equity (0 = no cap)."""
    max_position_fraction: float = Field(default=1.0, gt=0, le=1)
    max_order_notional: float = Field(default=0.0, ge=0)
    max_position_notional: float = Field(default=0.0, ge=0)
    daily_loss_limit: float = Field(default=0.0, ge=0, lt=1)
    """Fraction of the day's starting equity; reached = flatten and pause the symbol (0 = off)."""
    max_drawdown: float = Field(default=0.0, ge=0, lt=1)
    """Fraction below the account's peak equity; reached = flatten and pause (0 = off)."""


class EngineSettings(FrozenModel):
    live: bool = False
    """Second of the three locks of live trading (with ``--mode live`` and
    ``SINGULARITY_LIVE_CONFIRM=<exchange id>``)."""
    capital: float = Field(default=10_000.0, gt=0)
    """Starting cash of each symbol's account (quote currency), paper and replay."""
    ledger_url: str | None = None
    """SQLAlchemy URL of the ledger; default: ``ledger-<mode>.db`` in the data directory
    (paper and live never share a database)."""
    key_file: str | None = None
    """Live keys: a TOML file with ``api_key`` and ``secret``, readable by its owner only."""
    feed_timeout_s: float = Field(default=90.0, gt=0)
    """A websocket feed silent this long is treated as dead and reconnected."""
    reconnect_base_s: float = Field(default=1.0, gt=0)
    reconnect_max_s: float = Field(default=60.0, gt=0)
    quote_max_age_s: float = Field(default=10.0, gt=0)
    """A quote older than this is stale: paper fills use the last trade instead."""
    replay_chunk: int = Field(default=256, ge=1)
    """Candles per symbol the replay feed hands the strategy worker at once."""
    heartbeat_s: float = Field(default=1.0, gt=0)
    worker_timeout_s: float = Field(default=120.0, gt=0)
    """A strategy computation slower than this is treated as a hung worker (restarted)."""
    rest_url: str | None = None
    """Base URL replacing the exchange's REST hosts (a gateway, or the tests' local exchange)."""
    ws_url: str | None = None
    """URL replacing the exchange's spot websocket stream URL."""
    risk: RiskSettings = RiskSettings()
