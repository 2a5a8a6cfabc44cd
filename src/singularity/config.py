"""Settings: one TOML file read into frozen pydantic models.

Precedence, lowest to highest: built-in defaults < ``singularity.toml`` (or ``--config PATH``)
< environment variables ``SINGULARITY_<SECTION>__<KEY>`` (plus the shortcuts
``SINGULARITY_DATA_DIR`` and ``SINGULARITY_DATABASE_URL``) < command-line flags.
``load_settings`` also records where every effective value came from (``config show``).
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator

from singularity.dashboard.settings import DashboardSettings
from singularity.engine.settings import EngineSettings
from singularity.errors import ConfigError
from singularity.evolution.settings import EvolutionSettings
from singularity.features.settings import FeatureSettings
from singularity.models.settings import BakeoffSettings, LabelSettings
from singularity.settings_base import FrozenModel
from singularity.timeframes import is_timeframe
from singularity.validation.settings import GauntletSettings

CONFIG_FILENAME = "singularity.toml"
ENV_PREFIX = "SINGULARITY_"
_SYMBOL = re.compile(r"^[A-Z0-9]{1,20}/[A-Z0-9]{1,20}(:[A-Z0-9]{1,20})?$")
DATABASE_URL_ENV = f"{ENV_PREFIX}DATABASE_URL"
DATABASE_URL_VARS = (DATABASE_URL_ENV, f"{ENV_PREFIX}DATABASE__URL")
"""The variables that can set ``database.url`` (the shortcut and the section form)."""
# Shortcut variables named in the docs, mapped to their dotted keys.
_ENV_SHORTCUTS = {f"{ENV_PREFIX}DATA_DIR": "data.dir", DATABASE_URL_ENV: "database.url"}
_NOT_KEYS = {"SINGULARITY_CONFIG"}
SECRET_KEYS = ("api_key", "secret")
"""Keys of ``[exchange]`` held as secrets."""
SECRET_ENV_VARS = tuple(f"{ENV_PREFIX}EXCHANGE__{k.upper()}" for k in SECRET_KEYS)
REDACTED = "**********"


def drop_secret_env(environ: Any = None) -> None:
    """Remove the key variables from ``environ`` (default: this process's) once the settings
    hold them, so that no worker or child process inherits them."""
    env = os.environ if environ is None else environ
    for var in SECRET_ENV_VARS:
        env.pop(var, None)


def check_symbol(symbol: str) -> str:
    if not _SYMBOL.match(symbol):
        raise ValueError(f"malformed symbol {symbol!r}: expected a ccxt symbol like 'BTC/USDT'")
    return symbol


class ExchangeSettings(FrozenModel):
    name: str = "binance"
    """ccxt exchange id."""
    api_key: SecretStr | None = None
    """Held as a secret: printed as '**********', never stored (``public_dump``) or logged;
    ``.get_secret_value()`` where the exchange client needs it."""
    secret: SecretStr | None = None
    timeout_ms: int = Field(default=15_000, gt=0)


class UniverseSettings(FrozenModel):
    symbols: tuple[str, ...] = (
        "BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT",
        "BNB/USDT", "DOGE/USDT", "ADA/USDT", "LTC/USDT",
    )

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("the universe needs at least one symbol")
        for s in v:
            check_symbol(s)
        if len(set(v)) != len(v):
            raise ValueError("duplicate symbols in the universe")
        return v


class TimeframeSettings(FrozenModel):
    tactical: str = "1h"
    strategic: str = "4h"

    @field_validator("tactical", "strategic")
    @classmethod
    def _tf(cls, v: str) -> str:
        if not is_timeframe(v):
            raise ValueError(f"unknown timeframe {v!r}: expected e.g. '15m', '1h', '4h', '1d'")
        return v


class DataSettings(FrozenModel):
    dir: Path = Path("data")
    """Where candles, features and the registry live (relative to the working directory)."""


class RetentionSettings(FrozenModel):
    """How much generated data a long-running installation keeps (``singularity cache``)."""

    feature_cache_mb: int = Field(default=2048, ge=1)
    """The feature cache is pruned, least recently used entries first, to stay under this."""
    feature_cache_days: float = Field(default=30.0, gt=0)
    """Feature-cache entries unused for longer are removed."""
    generated_days: float = Field(default=90.0, gt=0)
    """Artifacts, reports and per-run logs older than this are removed by ``cache prune``."""
    log_max_mb: int = Field(default=64, ge=1)
    """A run's log file rotates at this size (three older files are kept)."""


class DatabaseSettings(FrozenModel):
    url: str | None = None
    """SQLAlchemy URL; default: a SQLite file in the data directory."""


class CostSettings(FrozenModel):
    fee_bps: float = Field(default=10.0, ge=0)
    """Fee per side, basis points of traded notional."""
    slippage_bps: float = Field(default=5.0, ge=0)
    """Slippage per side, basis points of traded notional."""
    market: Literal["spot", "margin", "perpetual"] = "spot"
    """A spot account cannot be short: strategies are long-only there. On 'margin' or
    'perpetual' markets shorts are allowed and pay ``short_rate_bps_per_day``."""
    short_rate_bps_per_day: float = Field(default=3.0, ge=0)
    """Borrow (margin) or funding (perpetual) rate paid on short notional, basis points per
    day, charged every bar a short is held (3 bps/day is about 11 % a year)."""

    @property
    def long_only(self) -> bool:
        return self.market == "spot"

    def short_rate_per_bar(self, timeframe: str) -> float:
        """Fraction of short notional charged per bar; 0 on spot (no shorts)."""
        from singularity.timeframes import timeframe_delta

        if self.long_only:
            return 0.0
        return self.short_rate_bps_per_day / 1e4 * timeframe_delta(timeframe).total_seconds() / 86_400.0


class ForgeSettings(FrozenModel):
    population: int = Field(default=500, ge=4)
    generations: int = Field(default=20, ge=1)
    seed: int = 42
    workers: int = Field(default=0, ge=0)
    """0 = every core of this machine."""
    holdout_fraction: float = Field(default=0.2, gt=0, lt=0.9)
    embargo_bars: int = Field(default=24, ge=0)
    cluster: str | None = None
    """Dask scheduler address (tcp://HOST:PORT); None = local loky pool."""


class Settings(FrozenModel):
    exchange: ExchangeSettings = ExchangeSettings()
    universe: UniverseSettings = UniverseSettings()
    timeframes: TimeframeSettings = TimeframeSettings()
    data: DataSettings = DataSettings()
    database: DatabaseSettings = DatabaseSettings()
    retention: RetentionSettings = RetentionSettings()
    costs: CostSettings = CostSettings()
    forge: ForgeSettings = ForgeSettings()
    features: FeatureSettings = FeatureSettings()
    labels: LabelSettings = LabelSettings()
    bakeoff: BakeoffSettings = BakeoffSettings()
    evolution: EvolutionSettings = EvolutionSettings()
    gauntlet: GauntletSettings = GauntletSettings()
    engine: EngineSettings = EngineSettings()
    dashboard: DashboardSettings = DashboardSettings()


    @property
    def data_dir(self) -> Path:
        return self.data.dir

    def public_dump(self) -> dict[str, Any]:
        """The settings as JSON-ready data WITHOUT the secrets (what a forge run stores): no
        exchange keys, the database URL without its password."""
        doc = self.model_dump(mode="json", exclude={"exchange": set(SECRET_KEYS)})
        if doc["database"]["url"]:
            doc["database"]["url"] = url_without_password(doc["database"]["url"])
        return doc

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{(self.data.dir / 'singularity.db').as_posix()}"

    def timeframe(self, name_or_tf: str) -> str:
        """Resolve a named timeframe ('tactical') or pass a timeframe string ('1h') through."""
        named = self.timeframes.model_dump()
        if name_or_tf in named:
            return str(named[name_or_tf])
        if is_timeframe(name_or_tf):
            return name_or_tf
        raise ConfigError(
            f"unknown timeframe {name_or_tf!r}: expected one of {sorted(named)} or e.g. '1h', '4h'"
        )


@dataclass(frozen=True)
class LoadedSettings:
    settings: Settings
    sources: dict[str, str] = field(default_factory=dict)
    """Dotted key -> 'default' | 'file:PATH' | 'env:VAR' | 'cli'."""
    path: Path | None = None


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _set_dotted(d: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    for p in parts[:-1]:
        node = d.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{key}: {p!r} is a value, not a section")
        d = node
    d[parts[-1]] = value


def _parse_env_value(raw: str) -> Any:
    """Env values are TOML/JSON literals when they parse as one (numbers, lists), else strings."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw


def _env_overrides(environ: Mapping[str, str]) -> dict[str, tuple[Any, str]]:
    out: dict[str, tuple[Any, str]] = {}
    for var, raw in environ.items():
        if not var.startswith(ENV_PREFIX) or var in _NOT_KEYS:
            continue
        if var in _ENV_SHORTCUTS:
            key = _ENV_SHORTCUTS[var]
        elif "__" in var:
            key = var[len(ENV_PREFIX):].lower().replace("__", ".")
        else:
            continue  # not a settings variable (e.g. SINGULARITY_LOG_LEVEL)
        out[key] = (_parse_env_value(raw), f"env:{var}")
    return out


def _format_validation_error(err: ValidationError) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "settings"
    kind = first["type"]
    if kind == "extra_forbidden":
        section = ".".join(str(p) for p in first["loc"][:-1])
        where = f"section [{section}]" if section else "the top level"
        return f"unknown setting {key!r} in {where}: check the spelling (singularity init writes every key)"
    msg = first["msg"].removeprefix("Value error, ")
    got = first.get("input")
    got_s = f" (got {got!r})" if got is not None and not isinstance(got, dict) else ""
    if any(word in key for word in ("password", "secret", "api_key")):
        got_s = ""  # never echo what may be a secret
    return f"invalid setting {key!r}: {msg}{got_s}"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as e:
        raise ConfigError(f"config file not found: {path}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from e


def load_settings(
    path: str | Path | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> LoadedSettings:
    """Read defaults, the TOML file, ``SINGULARITY_*`` variables and CLI ``overrides``.

    ``path`` None means ``singularity.toml`` in ``cwd`` if it exists (``SINGULARITY_CONFIG``
    may name another file). Relative data directories are resolved against ``cwd``.
    """
    environ = os.environ if environ is None else environ
    cwd = Path.cwd() if cwd is None else cwd
    if path is None and environ.get("SINGULARITY_CONFIG"):
        path = environ["SINGULARITY_CONFIG"]
    explicit = path is not None
    cfg_path = Path(path) if path is not None else cwd / CONFIG_FILENAME
    raw: dict[str, Any] = {}
    sources: dict[str, str] = {}
    if explicit or cfg_path.exists():
        raw = _read_toml(cfg_path)
        sources.update({k: f"file:{cfg_path}" for k in _flatten(raw)})
    else:
        cfg_path = None  # type: ignore[assignment]
    for key, (value, src) in _env_overrides(environ).items():
        _set_dotted(raw, key, value)
        sources[key] = src
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        _set_dotted(raw, key, value)
        sources[key] = "cli"
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_format_validation_error(e)) from None
    if not settings.data.dir.is_absolute():
        data = settings.data.model_copy(update={"dir": (cwd / settings.data.dir).resolve()})
        settings = settings.model_copy(update={"data": data})
    for key in _flatten(settings.model_dump()):
        sources.setdefault(key, "default")
    return LoadedSettings(settings=settings, sources=sources, path=cfg_path)


def url_without_password(url: str, *, mask: str | None = None) -> str:
    """Database ``url`` with its password removed (or replaced by ``mask``); user, host,
    database and options kept."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        u = make_url(url)
    except ArgumentError:
        raise ConfigError("database.url is not a database URL (dialect://user@host/database)") from None
    if u.password is None:
        return url
    if mask is not None:  # rendering quotes a password: put the mask into SQLAlchemy's own
        return u.render_as_string(hide_password=True).replace(":***@", f":{mask}@", 1)
    # URL.set ignores None; the URL is a NamedTuple
    return u._replace(password=None).render_as_string(hide_password=False)


def effective_items(loaded: LoadedSettings) -> list[tuple[str, Any, str]]:
    """(dotted key, value, source) rows for ``config show``: a secret that is set reads
    '**********', so does the database URL's password."""
    flat = _flatten(loaded.settings.model_dump(mode="json"))
    for k in SECRET_KEYS:
        v = getattr(loaded.settings.exchange, k)
        flat[f"exchange.{k}"] = REDACTED if v is not None else None
    if flat.get("database.url"):
        try:
            flat["database.url"] = url_without_password(flat["database.url"], mask=REDACTED)
        except ConfigError:
            flat["database.url"] = REDACTED  # unreadable: it may hold a password anywhere
    return [(k, v, loaded.sources.get(k, "default")) for k, v in flat.items()]


DEFAULT_CONFIG_TOML = """\
# Singularity settings. Every key is optional; the values below are the defaults.
# Environment variables override this file: SINGULARITY_<SECTION>__<KEY>, e.g.
# SINGULARITY_COSTS__FEE_BPS=7.5, plus SINGULARITY_DATA_DIR and SINGULARITY_DATABASE_URL.
# Command-line flags override both. Unknown keys are an error.

[exchange]
name = "binance"          # ccxt exchange id
# api_key = ""            # only needed for live trading
# secret = ""
timeout_ms = 15000

[universe]
# ccxt symbols, BASE/QUOTE (perpetuals: BASE/QUOTE:SETTLE)
symbols = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT", "BNB/USDT", "DOGE/USDT", "ADA/USDT", "LTC/USDT"]

[timeframes]
tactical = "1h"           # the timeframe strategies trade on
strategic = "4h"          # a coarser context timeframe

[data]
dir = "data"              # candles (Parquet), feature cache, registry

[database]
# url = "sqlite:///data/singularity.db"   # any SQLAlchemy URL; default: SQLite in the data dir

[costs]
fee_bps = 10.0            # per side, basis points of traded notional
slippage_bps = 5.0        # per side, basis points of traded notional
market = "spot"           # spot: long-only; "margin" or "perpetual": shorts allowed, and they pay
short_rate_bps_per_day = 3.0   # borrow/funding on short notional, charged every bar

[forge]
population = 500
generations = 20
seed = 42
workers = 0               # 0 = every core
holdout_fraction = 0.2    # the last 20 % of candles; only the gauntlet opens it
embargo_bars = 24         # bars dropped between training window and holdout
# cluster = "tcp://127.0.0.1:8786"   # run evaluations on a Dask cluster

[dashboard]
host = "127.0.0.1"        # any other address needs password_hash
port = 8750
# password_hash = "scrypt$..."   # from: singularity dashboard --hash-password
session_hours = 12.0
login_attempts = 5        # failed logins per client address per window, then 429
login_window_s = 300.0
"""
