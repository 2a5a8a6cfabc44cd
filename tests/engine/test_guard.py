"""Live trading's three locks, and exchange keys kept out of output, the database and children."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from singularity.cli import app
from singularity.engine.guard import LiveGuardError, scrub_environ
from singularity.engine.strategy import StrategyWorker, worker_env

KEY, SECRET = "k3y-AbCdEf0123456789", "s3cr3t-ZyXw9876543210"


@pytest.fixture
def no_network(monkeypatch):
    """Record (and refuse) every outgoing connection of this process."""
    attempts: list[object] = []

    def refuse(self, address, *a, **k):
        attempts.append(address)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


def _toml(tmp_path, live: bool) -> str:
    p = tmp_path / "singularity.toml"
    p.write_text(f'[data]\ndir = "{(tmp_path / "data").as_posix()}"\n[engine]\nlive = {str(live).lower()}\n')
    return str(p)


@pytest.mark.parametrize(("live", "confirm", "says"), [
    (False, "binance", "set 'live = true'"),
    (True, None, "SINGULARITY_LIVE_CONFIRM is not set"),
    (True, "kraken", "SINGULARITY_LIVE_CONFIRM names another exchange"),
])
def test_live_without_each_lock_exits_2_and_contacts_nothing(tmp_path, no_network, live, confirm, says):
    env = {"SINGULARITY_CONFIG": _toml(tmp_path, live), "SINGULARITY_EXCHANGE__API_KEY": KEY,
           "SINGULARITY_EXCHANGE__SECRET": SECRET, "SINGULARITY_LIVE_CONFIRM": confirm}
    r = CliRunner().invoke(app, ["run", "BTC/USDT", "--mode", "live"], env=env)
    assert isinstance(r.exception, LiveGuardError) and r.exception.exit_code == 2
    assert says in str(r.exception)
    assert no_network == []
    assert KEY not in r.output + str(r.exception) and SECRET not in r.output + str(r.exception)
    assert not (tmp_path / "data").exists()  # nothing written either


def test_the_command_exits_2_with_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SINGULARITY_")}
    env.update({"SINGULARITY_CONFIG": _toml(tmp_path, True), "SINGULARITY_EXCHANGE__SECRET": SECRET})
    r = subprocess.run([sys.executable, "-m", "singularity", "run", "--mode", "live"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "live trading is locked" in r.stderr
    assert SECRET not in r.stdout + r.stderr


def test_key_file_must_be_private(tmp_path, no_network):
    keys = tmp_path / "keys.toml"
    keys.write_text(f'api_key = "{KEY}"\nsecret = "{SECRET}"\n')
    keys.chmod(0o644)
    cfg = tmp_path / "singularity.toml"
    cfg.write_text(f'[data]\ndir = "{(tmp_path / "data").as_posix()}"\n[engine]\nlive = true\n'
                   f'key_file = "{keys.as_posix()}"\n')
    env = {"SINGULARITY_CONFIG": str(cfg), "SINGULARITY_LIVE_CONFIRM": "binance",
           "SINGULARITY_EXCHANGE__API_KEY": None, "SINGULARITY_EXCHANGE__SECRET": None}
    r = CliRunner().invoke(app, ["run", "BTC/USDT", "--mode", "live"], env=env)
    assert isinstance(r.exception, LiveGuardError) and "chmod 600" in str(r.exception)
    assert KEY not in str(r.exception) and no_network == []


def test_keys_are_absent_from_the_worker_environment(monkeypatch):
    monkeypatch.setenv("SINGULARITY_EXCHANGE__API_KEY", KEY)
    monkeypatch.setenv("SINGULARITY_EXCHANGE__SECRET", SECRET)
    monkeypatch.setenv("SOME_TOOL_TOKEN", SECRET)  # a copy under another name goes too
    scrub_environ(secrets=(KEY, SECRET))
    assert KEY not in os.environ.values() and SECRET not in os.environ.values()

    async def child_env() -> dict[str, str]:
        worker = StrategyWorker(timeout_s=60)
        try:
            return await worker.call(worker_env)
        finally:
            worker.close()

    env = asyncio.run(child_env())
    assert "PATH" in env  # it is the child's real environment
    assert KEY not in env.values() and SECRET not in env.values()
    assert "SINGULARITY_EXCHANGE__API_KEY" not in env
