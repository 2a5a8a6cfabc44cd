"""``singularity data ...``: in-process through typer's CliRunner, and as a real subprocess
where the exit code and the one-line error are what is tested."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.feather as feather
import pytest
from candle_frames import hourly
from click.testing import Result
from typer.testing import CliRunner

from singularity.cli import app
from singularity.errors import CandleValidationError, DataError

EXE = [sys.executable, "-m", "singularity"]


@pytest.fixture(autouse=True)
def _clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No settings file or SINGULARITY_* variable of the caller leaks into the commands."""
    monkeypatch.chdir(tmp_path)
    for var in [v for v in os.environ if v.startswith("SINGULARITY_")]:
        monkeypatch.delenv(var)


def invoke(args: list[str], cwd: Path) -> Result:
    """In-process run; user errors surface as ``result.exception`` (``main`` prints them)."""
    return CliRunner().invoke(app, ["--data-dir", str(cwd / "store"), *args], env={"COLUMNS": "120"})


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SINGULARITY_")}
    env["COLUMNS"] = "120"
    return subprocess.run(
        [*EXE, "--data-dir", str(cwd / "store"), *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=180,
    )


def store_digest(root: Path) -> dict[str, str]:
    """Every file of the store (lock files aside) and its hash."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock")
    }


def write_feather(df: pd.DataFrame, path: Path) -> Path:
    df.reset_index().rename(columns={"timestamp": "date"}).to_feather(path)
    return path


def one_error_line(r: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    return lines[0]


@pytest.mark.realdata
def test_import_real_binance_files_then_list(binance_dir: Path, tmp_path: Path) -> None:
    files = sorted(binance_dir.glob("*-1h.feather"))
    assert len(files) == 34
    r = invoke(["data", "import", *map(str, files)], tmp_path)
    assert r.exit_code == 0, r.output
    assert "BTC/USDT" in r.stdout
    listed = invoke(["data", "list", "--json"], tmp_path)
    assert listed.exit_code == 0, listed.output
    got = {e["symbol"]: e["rows"] for e in json.loads(listed.stdout)}
    want = {
        f.name.removesuffix("-1h.feather").replace("_", "/"): feather.read_table(f, columns=["date"]).num_rows
        for f in files
    }
    assert len(got) == 34
    assert got == want
    assert {e["exchange"] for e in json.loads(listed.stdout)} == {"binance"}

    # A file with a duplicated candle, then one with a high below the close: both refused,
    # with one line each, and the store is byte-for-byte what it was.
    before = store_digest(tmp_path / "store")
    btc = pd.read_feather(binance_dir / "BTC_USDT-1h.feather").iloc[-50:]
    dup = pd.concat([btc.iloc[:20], btc.iloc[[19]], btc.iloc[20:]]).reset_index(drop=True)
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    dup.to_feather(bad_dir / "BTC_USDT-1h.feather")
    r = run(["data", "import", str(bad_dir / "BTC_USDT-1h.feather")], tmp_path)
    assert r.returncode == 1
    ts = pd.Timestamp(btc["date"].iloc[19]).strftime("%Y-%m-%d %H:%M UTC")
    assert one_error_line(r) == f"error: BTC_USDT-1h.feather: BTC/USDT 1h: 1 duplicate timestamp ({ts})"
    high = btc.reset_index(drop=True)
    high.loc[7, "high"] = high.loc[7, "close"] - 0.01
    high.to_feather(bad_dir / "ETH_USDT-1h.feather")
    # In-process this time (a subprocess costs seconds): the error main() prints as one line.
    ri = invoke(["data", "import", str(binance_dir / "SOL_USDT-1h.feather"), str(bad_dir / "ETH_USDT-1h.feather")], tmp_path)
    ts = pd.Timestamp(high["date"].iloc[7]).strftime("%Y-%m-%d %H:%M UTC")
    assert isinstance(ri.exception, CandleValidationError)
    assert str(ri.exception) == f"ETH_USDT-1h.feather: ETH/USDT 1h: 1 candle with high below max(open, close) ({ts})"
    assert store_digest(tmp_path / "store") == before

    shown = invoke(["data", "show", "BTC/USDT", "--timeframe", "1h", "--tail", "2"], tmp_path)
    assert shown.exit_code == 0, shown.output
    assert f"BTC/USDT 1h on binance: {want['BTC/USDT']} candles" in shown.stdout
    assert "validation: ok" in shown.stdout


def test_import_validates_every_file_before_writing_any(tmp_path: Path) -> None:
    good = write_feather(hourly(6), tmp_path / "BTC_USDT-1h.feather")
    bad_df = hourly(6, base=50.0)
    bad_df.iloc[3, 2] = bad_df.iloc[3, 0] + 1  # low above the open
    bad = write_feather(bad_df, tmp_path / "ETH_USDT-1h.feather")
    r = invoke(["data", "import", str(good), str(bad)], tmp_path)
    assert isinstance(r.exception, CandleValidationError)
    assert str(r.exception) == (
        "ETH_USDT-1h.feather: ETH/USDT 1h: 1 candle with low above min(open, close) (2024-09-14 03:00 UTC)"
    )
    assert not (tmp_path / "store").exists() or store_digest(tmp_path / "store") == {}


def test_import_list_show_and_errors(tmp_path: Path) -> None:
    df = hourly(10).drop(pd.Timestamp("2024-09-14 04:00", tz="UTC"))
    csv = tmp_path / "export.csv"
    df.reset_index().to_csv(csv, index=False)
    r = invoke(["data", "import", str(csv), "-s", "DOGE/USDT", "-t", "1h", "-e", "kraken"], tmp_path)
    assert r.exit_code == 0, r.output
    assert "stored in" in r.stdout and "DOGE/USDT" in r.stdout

    listed = invoke(["data", "list", "--json"], tmp_path)
    assert json.loads(listed.stdout) == [
        {
            "exchange": "kraken", "symbol": "DOGE/USDT", "timeframe": "1h", "rows": 9,
            "first": "2024-09-14T00:00:00+00:00", "last": "2024-09-14T09:00:00+00:00",
            "gaps": 1, "missing": 1,
        }
    ]
    table = invoke(["data", "list"], tmp_path)
    assert table.exit_code == 0 and "DOGE/USDT" in table.stdout and "kraken" in table.stdout

    shown = invoke(["data", "show", "DOGE/USDT", "-t", "tactical", "-e", "kraken", "-n", "2"], tmp_path)
    assert shown.exit_code == 0, shown.output
    assert "2024-09-14 00:00" in shown.stdout and "2024-09-14 09:00" in shown.stdout
    assert "2024-09-14 05:00" not in shown.stdout  # only the 2 first and 2 last rows
    assert "1 gap (1 missing candle," in shown.stdout and "gap 2024-09-14 04:00 .. 2024-09-14 04:00" in shown.stdout

    absent = invoke(["data", "show", "ETH/USDT", "-e", "kraken"], tmp_path)
    assert isinstance(absent.exception, DataError)
    assert str(absent.exception) == "no candles stored for ETH/USDT 1h on kraken; stored: DOGE/USDT 1h (kraken)"

    unnamed = invoke(["data", "import", str(csv)], tmp_path)
    assert isinstance(unnamed.exception, DataError)
    assert "cannot tell the symbol and timeframe" in str(unnamed.exception)


def test_list_on_an_empty_store(tmp_path: Path) -> None:
    r = invoke(["data", "list"], tmp_path)
    assert r.exit_code == 0 and "no candles stored" in r.stdout
    assert json.loads(invoke(["data", "list", "--json"], tmp_path).stdout) == []


def test_download_command_wiring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The command's own job: symbols, times and settings reach the downloader, its progress
    and report reach the user (the downloader itself is tested against a local exchange)."""
    from singularity.data import downloader

    calls: list[dict[str, object]] = []

    def fake_download(store, exchange, symbol, timeframe, since, *, until=None, progress=None, exchange_config=None):  # type: ignore[no-untyped-def]
        calls.append(dict(exchange=exchange, symbol=symbol, timeframe=timeframe, since=since, until=until))
        df = hourly(3)
        rep = store.write(exchange.id, symbol, timeframe, df)
        progress(3)
        return downloader.DownloadReport(
            exchange=exchange.id, symbol=symbol, timeframe=timeframe, candles_added=rep.added,
            first=df.index[0], last=df.index[-1], pages=1, retries=0,
        )

    monkeypatch.setattr(downloader, "download_ohlcv", fake_download)
    args = ["data", "download", "--symbols", "BTC/USDT", "ETH/USDT,SOL/USDT", "--since", "2024-09-14", "--until", "2024-09-14T03:00"]
    r = invoke(args, tmp_path)
    assert r.exit_code == 0, r.output
    assert [c["symbol"] for c in calls] == ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
    assert calls[0]["since"] == pd.Timestamp("2024-09-14", tz="UTC")
    assert calls[0]["until"] == pd.Timestamp("2024-09-14 03:00", tz="UTC")
    client = calls[0]["exchange"]
    assert client.id == "binance" and calls[0]["timeframe"] == "1h"
    assert client.timeout == 15000 and client.enableRateLimit
    assert all(c["exchange"] is client for c in calls)  # one client: markets load once
    assert "downloaded from binance" in r.stdout and "SOL/USDT" in r.stdout
    assert len(json.loads(invoke(["data", "list", "--json"], tmp_path).stdout)) == 3
    bad = invoke(["data", "download", "--since", "yesterday-ish"], tmp_path)
    assert isinstance(bad.exception, DataError) and "--since: not a date/time" in str(bad.exception)
