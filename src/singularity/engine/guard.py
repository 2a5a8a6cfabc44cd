"""Live trading's three locks and the handling of exchange keys.

Live orders need all three: ``--mode live``, ``engine.live = true`` in the settings, and
``SINGULARITY_LIVE_CONFIRM=<exchange id>`` in the environment. Anything less exits 2 with one
line, before any network access. Keys come from the environment or a TOML file readable only
by its owner; they are removed from this process's environment before any child process
starts (children inherit it), and never printed, logged or stored.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import MutableMapping
from pathlib import Path

from singularity.errors import ConfigError

CONFIRM_VAR = "SINGULARITY_LIVE_CONFIRM"
KEY_VARS = ("SINGULARITY_EXCHANGE__API_KEY", "SINGULARITY_EXCHANGE__SECRET")


class LiveGuardError(ConfigError):
    exit_code = 2


def check_live(*, mode: str, live_setting: bool, exchange_id: str,
               environ: MutableMapping[str, str]) -> None:
    if mode != "live":
        return
    if not live_setting:
        raise LiveGuardError("live trading is locked: set 'live = true' in the [engine] section "
                             "of the settings (and SINGULARITY_LIVE_CONFIRM) to trade real money")
    confirm = environ.get(CONFIRM_VAR)
    if confirm != exchange_id:
        got = "is not set" if confirm is None else "names another exchange"
        raise LiveGuardError(f"live trading is locked: {CONFIRM_VAR} {got}; set it to "
                             f"'{exchange_id}' to confirm live orders on that exchange")


def _secret_value(v: object) -> str | None:
    if v is None:
        return None
    get = getattr(v, "get_secret_value", None)
    return str(get() if get else v)


def load_keys(settings: object, environ: MutableMapping[str, str]) -> tuple[str, str]:
    """(api key, secret) from the settings (environment) or ``engine.key_file``."""
    ex = settings.exchange  # type: ignore[attr-defined]
    key, secret = _secret_value(ex.api_key), _secret_value(ex.secret)
    key_file = settings.engine.key_file  # type: ignore[attr-defined]
    if (not key or not secret) and key_file:
        path = Path(key_file)
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            raise LiveGuardError(f"key file {path} not found") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise LiveGuardError(f"key file {path} is readable by others (mode {stat.S_IMODE(mode):o}); "
                                 f"run 'chmod 600 {path}'")
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError:
            raise LiveGuardError(f"key file {path} is not valid TOML (expected api_key and secret)") from None
        key, secret = data.get("api_key"), data.get("secret")
    if not key or not secret:
        raise LiveGuardError("live trading needs exchange keys: SINGULARITY_EXCHANGE__API_KEY and "
                             "SINGULARITY_EXCHANGE__SECRET, or engine.key_file")
    return str(key), str(secret)


def scrub_environ(environ: MutableMapping[str, str] | None = None, secrets: tuple[str, ...] = ()) -> None:
    """Remove key variables (and any variable holding a secret's value) from ``environ``
    (default: this process's), so that no child process inherits them."""
    env = os.environ if environ is None else environ
    for var in KEY_VARS:
        env.pop(var, None)
    for var in [k for k, v in env.items() if v and v in {s for s in secrets if s}]:
        env.pop(var, None)


def redact(text: str, secrets: tuple[str, ...]) -> str:
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    return text
