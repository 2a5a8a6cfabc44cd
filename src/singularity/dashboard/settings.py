"""Settings of the dashboard (section ``[dashboard]`` of singularity.toml)."""

from __future__ import annotations

from pydantic import Field, field_validator

from singularity.settings_base import FrozenModel

HASH_SCHEME = "scrypt"


class DashboardSettings(FrozenModel):
    host: str = "127.0.0.1"
    """Address to bind; anything but a loopback address needs ``password_hash``."""
    port: int = Field(default=8750, ge=1, le=65535)
    password_hash: str | None = None
    """Hash from ``singularity dashboard --hash-password`` (never the password itself)."""
    session_hours: float = Field(default=12.0, gt=0)
    login_attempts: int = Field(default=5, ge=1)
    """Failed logins allowed per client address per ``login_window_s`` before 429."""
    login_window_s: float = Field(default=300.0, gt=0)

    @field_validator("password_hash")
    @classmethod
    def _hashed(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        parts = v.split("$")
        if len(parts) != 6 or parts[0] != HASH_SCHEME:
            # Say nothing about the value: it may be a password typed in clear.
            raise ValueError("must be a hash from 'singularity dashboard --hash-password', "
                             "not a password in clear")
        return v
