"""The ``singularity`` command as a user runs it: a real subprocess, exit codes, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from singularity import __version__

EXE = [sys.executable, "-m", "singularity"]


def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SINGULARITY_")}
    full_env.update(env)
    return subprocess.run([*EXE, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=120)


def test_version(tmp_path: Path) -> None:
    r = run(["--version"], tmp_path)
    assert r.returncode == 0
    assert r.stdout.strip() == f"singularity {__version__}"


def test_help_on_every_command(tmp_path: Path) -> None:
    for cmd in (["--help"], ["init", "--help"], ["config", "show", "--help"], ["data", "--help"], ["demo", "--help"]):
        r = run(cmd, tmp_path)
        assert r.returncode == 0, (cmd, r.stderr)
        assert "Usage" in r.stdout


def test_init_then_show(tmp_path: Path) -> None:
    assert run(["init"], tmp_path).returncode == 0
    text = (tmp_path / "singularity.toml").read_text()
    assert "[forge]" in text and text.startswith("# Singularity settings")
    again = run(["init"], tmp_path)
    assert again.returncode == 2 and "already exists" in again.stderr
    r = run(["config", "show", "--json"], tmp_path, SINGULARITY_COSTS__FEE_BPS="4")
    assert r.returncode == 0, r.stderr
    import json

    shown = json.loads(r.stdout)
    assert shown["costs.fee_bps"] == {"value": 4.0, "source": "env:SINGULARITY_COSTS__FEE_BPS"}
    assert shown["forge.population"]["source"].startswith("file:")


def test_bad_config_is_one_line_exit_2(tmp_path: Path) -> None:
    (tmp_path / "singularity.toml").write_text("[forge]\ngenerashuns = 3\n")
    r = run(["config", "show"], tmp_path)
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert "unknown setting 'forge.generashuns'" in lines[0]
    assert "Traceback" not in r.stderr


def test_data_dir_flag_overrides_env(tmp_path: Path) -> None:
    import json

    r = run(["--data-dir", str(tmp_path / "x"), "config", "show", "--json"], tmp_path,
            SINGULARITY_DATA_DIR=str(tmp_path / "y"))
    shown = json.loads(r.stdout)
    assert shown["data.dir"] == {"value": str(tmp_path / "x"), "source": "cli"}


def test_unknown_command_exit_2(tmp_path: Path) -> None:
    r = run(["frobnicate"], tmp_path)
    assert r.returncode == 2
