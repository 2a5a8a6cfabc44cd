"""Engine settings (section ``[engine]``). Light module: no heavy imports here."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

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


class SchedulerSettings(FrozenModel):
    """Background forging (section ``[engine.scheduler]``): forge cycles as supervised child
    processes, and the rotation of the champions they promote."""

    enabled: bool = False
    every_candles: int = Field(default=0, ge=0)
    """Start a cycle for a symbol every N closed candles (0 = only when it has no champion or
    its champion was retired)."""
    max_concurrent: int = Field(default=1, ge=1)
    """Cycles running at once on this machine (each owns the machine's one worker pool)."""
    cluster: str | None = None
    """Dask scheduler address (tcp://HOST:PORT): whole cycles run there, one per task, each in
    one process, instead of child processes here (``run --cluster``)."""
    cluster_max_concurrent: int = Field(default=0, ge=0)
    """Cycles submitted to the cluster at once (0 = no limit: the cluster queues them)."""
    timeout_s: float = Field(default=3_600.0, gt=0)
    """A cycle still running after this is killed with its whole process group (and failed)."""
    nice: int = Field(default=10, ge=0, le=19)
    """CPU priority increment of a cycle and its pool workers: the engine stays responsive."""
    population: int = Field(default=200, ge=4)
    generations: int = Field(default=5, ge=1)
    workers: int = Field(default=0, ge=0)
    """Pool workers of a cycle (0 = every core)."""
    bars: int | None = Field(default=None, ge=1000)
    """Forge on the last N stored candles (None: all)."""
    seed: int = 42
    """Seed of the first cycle; cycle k of a symbol uses seed + k."""
    probation_candles: int | None = Field(default=None, ge=0)
    """Candles a new champion shadow-trades before it replaces the running strategy (None: 0 in
    paper and replay, ``live_probation_candles`` in live)."""
    live_probation_candles: int = Field(default=24, ge=1)
    probation_min_sharpe: float = 0.0
    """A shadow-traded champion whose annualised Sharpe over its probation is below this is
    rejected (a ``rotation`` event with action ``rejected``)."""
    decay_window: Literal["candles", "trades"] = "candles"
    """What the decay check's window counts: the last ``decay_candles`` decided candles, or every
    candle since the ``decay_trades``-th last trade (change of position)."""
    decay_candles: int = Field(default=0, ge=0)
    """Judge the running champion on its last K decided candles (0 = never retire)."""
    decay_trades: int = Field(default=0, ge=0)
    """With ``decay_window = "trades"``: judge it over its last K trades (0 = never retire)."""
    decay_max_candles: int = Field(default=10_000, ge=2)
    """With ``decay_window = "trades"``: the longest window (fewer trades in it: no verdict)."""
    decay_margin: float = Field(default=0.5, ge=0)
    """Retire when its live Sharpe is below its holdout Sharpe's lower 95 % bound minus this."""


class RegimeWatchSettings(FrozenModel):
    """The engine's regime watch (section ``[engine.regimes]``): each symbol's regime model
    (``[features.regimes]``: window, refit cadence, ...) labels every new candle in a worker
    process; the current regime shows in the status and the dashboard, each change is a
    ``regime`` ledger event."""

    enabled: bool = False
    forge_on_change: bool = False
    """Queue a forge cycle (background forging must be on) when a symbol's regime changes
    from one regime to another (not to or from unclassified)."""
    nice: int = Field(default=5, ge=0, le=19)
    """CPU priority increment of the regime worker (refits never slow the strategy worker)."""
    timeout_s: float = Field(default=300.0, gt=0)
    """An update slower than this counts as a hung worker: it is replaced and the update failed."""


class NotifySettings(FrozenModel):
    """Optional notifications (section ``[engine.notify]``): a JSON POST to a webhook and/or a
    Telegram message through the bot HTTP API, on the chosen event kinds. Never required: a
    failed delivery is logged and dropped, the engine never waits for it."""

    webhook_url: str | None = None
    telegram_token: SecretStr | None = None
    """The bot's token: a secret (redacted, never passed to a child process)."""
    telegram_chat_id: str | None = None
    telegram_api_url: str = "https://api.telegram.org"
    kinds: tuple[str, ...] = ("fill", "rotation", "risk", "cycle_failed")
    timeout_s: float = Field(default=5.0, gt=0)


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
    scheduler: SchedulerSettings = SchedulerSettings()
    regimes: RegimeWatchSettings = RegimeWatchSettings()
    notify: NotifySettings = NotifySettings()
