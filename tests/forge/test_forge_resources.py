"""A forge run that opened the registry itself closes it (a long-lived caller runs thousands)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from singularity.config import load_settings
from singularity.errors import SingularityError
from singularity.forge.cycle import ForgeOptions, run_forge


def _open_files_under(root: Path) -> list[str]:
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(root)):
            out.append(target)
    return out


def test_run_forge_closes_the_registry_it_opened(tmp_path: Path) -> None:
    s = load_settings(environ={}, cwd=tmp_path, overrides={"data.dir": str(tmp_path / "data")}).settings
    opts = ForgeOptions(symbol="BTC/USDT", timeframe="1h", population=8, generations=1, seed=0,
                        workers=1, exchange="synthetic", progress=False)
    for _ in range(3):
        with pytest.raises(SingularityError):  # nothing stored: fails after opening the registry
            run_forge(s, opts, say=lambda _m: None)
    assert (tmp_path / "data" / "singularity.db").exists()
    assert _open_files_under(tmp_path) == []
