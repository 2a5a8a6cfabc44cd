from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from singularity.config import DEFAULT_CONFIG_TOML, Settings, effective_items, load_settings
from singularity.errors import ConfigError


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "singularity.toml"
    p.write_text(text)
    return p


def test_defaults_without_file(tmp_path: Path) -> None:
    loaded = load_settings(environ={}, cwd=tmp_path)
    s = loaded.settings
    assert loaded.path is None
    assert s.exchange.name == "binance"
    assert s.universe.symbols[0] == "BTC/USDT"
    assert s.data.dir == (tmp_path / "data").resolve()
    assert s.database_url == f"sqlite:///{(tmp_path / 'data' / 'singularity.db').resolve().as_posix()}"
    assert all(src == "default" for _, _, src in effective_items(loaded))


def test_default_file_equals_defaults() -> None:
    import tomllib

    assert Settings.model_validate(tomllib.loads(DEFAULT_CONFIG_TOML)) == Settings()


def test_precedence_file_env_cli(tmp_path: Path) -> None:
    _write(tmp_path, "[costs]\nfee_bps = 7.5\nslippage_bps = 2\n[forge]\nseed = 1\n")
    env = {"SINGULARITY_COSTS__SLIPPAGE_BPS": "3", "SINGULARITY_FORGE__SEED": "2",
           "SINGULARITY_DATA_DIR": str(tmp_path / "d")}
    loaded = load_settings(environ=env, cwd=tmp_path, overrides={"forge.seed": 3})
    s = loaded.settings
    assert (s.costs.fee_bps, s.costs.slippage_bps, s.forge.seed) == (7.5, 3.0, 3)
    assert s.data.dir == tmp_path / "d"
    src = loaded.sources
    assert src["costs.fee_bps"].startswith("file:")
    assert src["costs.slippage_bps"] == "env:SINGULARITY_COSTS__SLIPPAGE_BPS"
    assert src["forge.seed"] == "cli"
    assert src["data.dir"] == "env:SINGULARITY_DATA_DIR"
    assert src["exchange.name"] == "default"


def test_env_list_value(tmp_path: Path) -> None:
    env = {"SINGULARITY_UNIVERSE__SYMBOLS": '["BTC/USDT", "ETH/USDT"]'}
    assert load_settings(environ=env, cwd=tmp_path).settings.universe.symbols == ("BTC/USDT", "ETH/USDT")


def test_settings_are_frozen() -> None:
    s = Settings()
    with pytest.raises(ValidationError, match="frozen"):
        s.costs.fee_bps = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[forge]\npopulaton = 10\n", "unknown setting 'forge.populaton' in section [forge]"),
        ("colour = 1\n", "unknown setting 'colour' in the top level"),
        ('[universe]\nsymbols = ["BTCUSDT"]\n', "malformed symbol 'BTCUSDT': expected a ccxt symbol like 'BTC/USDT'"),
        ('[timeframes]\ntactical = "7x"\n', "invalid setting 'timeframes.tactical': unknown timeframe '7x'"),
        ('[costs]\nfee_bps = "cheap"\n', "invalid setting 'costs.fee_bps': Input should be a valid number"),
        ("[costs]\nfee_bps = -1\n", "invalid setting 'costs.fee_bps': Input should be greater than or equal to 0"),
        ("[costs\n", "not valid TOML"),
    ],
)
def test_bad_settings_one_line_error(tmp_path: Path, text: str, message: str) -> None:
    _write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_settings(environ={}, cwd=tmp_path)
    assert message in str(e.value)
    assert "\n" not in str(e.value)
    assert e.value.exit_code == 2


def test_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.toml", environ={}, cwd=tmp_path)


def test_named_timeframes() -> None:
    s = Settings()
    assert s.timeframe("tactical") == "1h"
    assert s.timeframe("15m") == "15m"
    with pytest.raises(ConfigError, match="unknown timeframe 'weekly'"):
        s.timeframe("weekly")
