"""``singularity run --dashboard``: the dashboard served on the engine's own loop while a
replay trades, gone when the engine stops; an unsafe bind is refused before anything starts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "engine"))
from engine_home import SYMBOL, make_home  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(home) -> dict[str, str]:  # type: ignore[no-untyped-def]
    env = home.env()
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_run_refuses_an_unsafe_dashboard_bind(tmp_path: Path) -> None:
    import pandas as pd

    idx = pd.date_range("2025-01-01", periods=10, freq="1h", tz="UTC", name="timestamp")
    frame = pd.DataFrame({c: 100.0 for c in ("open", "high", "low", "close")} | {"volume": 1.0}, index=idx)
    home = make_home(tmp_path, frame)
    env = _env(home) | {"SINGULARITY_DASHBOARD__HOST": "0.0.0.0"}
    r = subprocess.run([sys.executable, "-m", "singularity", "run", "--mode", "replay", "--dashboard"],
                       env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 2
    assert "refusing to bind the dashboard to 0.0.0.0" in r.stderr
    assert not (home.settings.data.dir / "ledger-replay.db").exists()  # nothing started


@pytest.mark.realdata
@pytest.mark.slow
def test_dashboard_served_beside_a_replay(tmp_path: Path, load_feather) -> None:  # type: ignore[no-untyped-def]
    home = make_home(tmp_path, load_feather("BTC", "1h", tail=430))
    port = _free_port()
    start, end = home.candles.index[400], home.candles.index[430 - 1]
    # 29 candles at 0.1 s each: the replay lasts long enough to be watched
    cmd = [sys.executable, "-m", "singularity", "run", SYMBOL, "--mode", "replay", "--from", start.isoformat(),
           "--to", end.isoformat(), "--speed", "36000", "--dashboard", "--port", str(port), "--json"]
    proc = subprocess.Popen(cmd, env=_env(home), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    base = f"http://127.0.0.1:{port}"
    seen: list[int] = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                r = httpx.get(f"{base}/api/status", timeout=2)
            except httpx.HTTPError:
                time.sleep(0.2)
                continue
            assert r.status_code == 200
            body = r.json()
            assert body["mode"] == "replay"
            fills = httpx.get(f"{base}/api/ledger", params={"kind": "decision"}, timeout=2).json()
            seen.append(len(fills))
            if len(seen) >= 3 and seen[-1] > seen[0]:
                break
            time.sleep(0.3)
        assert len(seen) >= 3 and seen[-1] > seen[0], (seen, proc.stderr.read() if proc.poll() is not None else "")
        _out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "dashboard on http://127.0.0.1:" in err
    with pytest.raises(httpx.HTTPError):  # the server went with the engine
        httpx.get(f"{base}/api/health", timeout=1)
