"""The HTML report is self-contained and its plots render in a real headless browser."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from singularity.analyst.report import ReportData, write_report


def _data(synthetic: bool = True) -> ReportData:
    rng = np.random.default_rng(0)
    n = 24 * 120
    idx = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC", name="timestamp")
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    candles = pd.DataFrame({"open": close, "high": close, "low": close, "close": close, "volume": 1.0}, index=idx)
    pos = np.sign(rng.normal(size=n))
    return ReportData(
        title="BTC/USDT 1h — strategy 7", candles=candles, positions=pos, returns=rng.normal(0, 0.005, n),
        holdout_start=idx[int(n * 0.8)], expression="gt(rsi_14, 0.7)", explanation="Long when <b>RSI</b> is high.",
        gauntlet=[{"test": "holdout", "passed": True, "detail": "Sharpe 1.2 ≥ 0.5", "figures": {"sharpe": 1.2}},
                  {"test": "pbo", "passed": False, "detail": "PBO 0.6 > 0.5", "figures": {"pbo": 0.6, "logits": [1, 2]}}],
        metrics={"in-sample": {"sharpe": 2.0}, "holdout": {"sharpe": 1.2}},
        lineage=[{"id": 7, "status": "champion", "fitness": 1.5, "readable": "rsi > 0.7", "created_at": "2026"}],
        synthetic=synthetic)


def test_report_is_self_contained(tmp_path: Path) -> None:
    p = write_report(tmp_path / "r.html", _data())
    text = p.read_text()
    assert not re.search(r"<script[^>]*\bsrc=[\"']?https?:", text)  # no external scripts
    assert len(text) > 3_000_000  # plotly.js is embedded
    assert text.count('class="plotly-graph-div"') == 4
    assert "SYNTHETIC MARKET" in text
    assert "Long when &lt;b&gt;RSI&lt;/b&gt; is high." in text  # escaped, not injected
    assert "<td>FAIL</td>" in text and "<td>PASS</td>" in text


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_plots_render_in_headless_chromium(tmp_path: Path) -> None:
    exe = _chromium()
    if exe is None:
        msg = "headless Chromium not installed (apt-get install chromium); .ci/run installs it"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    p = write_report(tmp_path / "r.html", _data(synthetic=False))
    with tempfile.TemporaryDirectory() as profile:
        out = subprocess.run(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--virtual-time-budget=15000", "--dump-dom", p.as_uri()],
            capture_output=True, text=True, timeout=120)
    dom = out.stdout
    # plotly.js replaces each empty div with rendered SVG layers once it has run.
    assert dom.count('class="main-svg"') >= 4 * 2, out.stderr[-2000:]
    for name in ("equity", "drawdown", "positions", "monthly"):
        assert f'id="fig-{name}"' in dom
    assert "Equity against buy-and-hold" in dom
