"""The dashboard under a running engine, on real candles.

- latency: ledger events appended by a writer (as the engine appends them) until they appear
  in the ledger page of headless Chromium (a MutationObserver stamps each new row), p50/p95;
  peer in the same run: the same events reaching a bare server-sent-events client (httpx).
- throughput: requests per second on ``/api/status`` (the overview) with
  ``singularity run --mode replay --dashboard`` trading BTC/USDT and serving the API on its own
  event loop, ``--concurrency`` clients for ``--seconds``; peer: ``/api/health`` (no database)
  in the same run; and the engine's loop lag (its own 10 ms heartbeat; a ring of the last
  samples) read before the load and after it.

Prints one JSON line per part, with the machine's core count and the load average.

    python benchmarks/dashboard.py [--events 40] [--seconds 8] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SINGULARITY_SHARED_DATA", REPO.parent / "shared" / "data")) / "binance-spot-2024-2026"
SYMBOL = "BTC/USDT"
EXPRESSION = "ts_mean(macd_hist, w5)"
TOML = """
[universe]
symbols = ["BTC/USDT"]
[data]
dir = "{data}"
[features.indicators]
ma_periods = [10, 30]
vol_horizons = [24]
[features.ceemdan]
enabled = false
[features.particle_filter]
enabled = false
[features.graph]
enabled = false
[engine]
heartbeat_s = 0.5
"""
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _home(root: Path, bars: int) -> tuple[Path, Any]:
    from singularity.config import load_settings
    from singularity.data.importers import read_freqtrade_feather
    from singularity.data.store import CandleStore
    from singularity.registry import Registry

    config = root / "singularity.toml"
    config.write_text(TOML.format(data=(root / "data").as_posix()))
    s = load_settings(config, environ={}).settings
    df = read_freqtrade_feather(DATA / "BTC_USDT-1h.feather").iloc[-bars:]
    CandleStore(s.data.dir).write(s.exchange.name, SYMBOL, "1h", df)
    reg = Registry(s.database_url)
    run = reg.start_run(symbol=SYMBOL, timeframe="1h", seed=1, settings={})
    sid = reg.add_strategy(run_id=run, symbol=SYMBOL, timeframe="1h", expression=EXPRESSION, readable=EXPRESSION,
                           size=4, fitness=0.0, in_sample={})
    reg.promote(sid)
    reg.finish_run(run, status="succeeded", seconds=0.0)
    reg.close()
    return config, df


def _serve_in_thread(app: Any) -> tuple[str, Any, threading.Thread]:
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2))
    t = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    t.start()
    while not server.started:
        time.sleep(0.02)
    return f"http://127.0.0.1:{sock.getsockname()[1]}", server, t


def _pct(xs: list[float]) -> dict[str, float]:
    a = np.asarray(xs)
    return {"p50": round(float(np.percentile(a, 50)), 1), "p95": round(float(np.percentile(a, 95)), 1),
            "max": round(float(a.max()), 1), "n": int(a.size)}


def bench_latency(config: Path, n_events: int) -> dict[str, Any]:
    """Append ``n_events`` to the ledger (as the engine does) and time their arrival in the
    browser's ledger page and in a bare SSE client."""
    import httpx
    from playwright.sync_api import sync_playwright

    from singularity.config import load_settings
    from singularity.dashboard import create_app
    from singularity.engine.ledger import Ledger, NewEvent, ledger_url

    s = load_settings(config, environ={}).settings
    url = ledger_url(s, "paper")
    writer = Ledger(url)
    writer.append([NewEvent("balance", "bench-cap", {"delta": 10_000.0}, SYMBOL)])
    app = create_app(s, mode="paper", capture_logs=False)
    base, server, thread = _serve_in_thread(app)
    sent: dict[int, float] = {}
    sse_seen: dict[int, float] = {}

    def sse_client() -> None:
        with httpx.Client(base_url=base, timeout=httpx.Timeout(5.0, read=30.0)) as c, \
                c.stream("GET", "/api/events") as r:
            for line in r.iter_lines():
                if line.startswith("id:"):
                    sse_seen[int(line[3:])] = time.time() * 1e3
                    if len(sse_seen) >= n_events:
                        return

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        raise SystemExit("chromium not installed (apt-get install chromium)")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(f"{base}/ledger")
            page.wait_for_selector("body[data-ready=true]")
            page.wait_for_selector("#live.on")
            page.evaluate("""() => { window.seenAt = {};
              new MutationObserver((ms) => { for (const m of ms) for (const n of m.addedNodes)
                if (n.dataset && n.dataset.seq) window.seenAt[n.dataset.seq] = Date.now(); })
              .observe(document.querySelector('#ledger tbody'), { childList: true }); }""")
            listener = threading.Thread(target=sse_client, daemon=True)
            listener.start()
            time.sleep(0.5)
            for i in range(n_events):
                t = time.time() * 1e3
                [ev] = writer.append([NewEvent("decision", f"bench-{i}", {"candle": f"b{i}", "close": 100.0 + i,
                                                                          "target": 0.0}, SYMBOL)])
                sent[ev.seq] = t
                time.sleep(0.15 + 0.1 * (i % 3))  # not in phase with the watcher's 0.2 s cycle
            deadline = time.time() + 5
            while time.time() < deadline:
                seen = page.evaluate("() => window.seenAt")
                if len(seen) >= n_events:
                    break
                time.sleep(0.1)
            listener.join(5)
            browser.close()
    finally:
        server.should_exit = True
        thread.join(10)
        writer.close()
    page_ms = [float(seen[str(q)]) - t for q, t in sent.items() if str(q) in seen]
    sse_ms = [sse_seen[q] - t for q, t in sent.items() if q in sse_seen]
    return {"part": "latency", "what": "ledger event -> row in the open page (ms)",
            "page": _pct(page_ms), "peer_bare_sse_client": _pct(sse_ms), "missed_in_page": n_events - len(page_ms),
            "watch_interval_s": 0.2}


async def _hammer(base: str, path: str, seconds: float, concurrency: int) -> dict[str, Any]:
    import httpx

    done = 0
    errors = 0
    lat: list[float] = []
    stop = time.perf_counter() + seconds

    async def worker(c: httpx.AsyncClient) -> None:
        nonlocal done, errors
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            r = await c.get(path)
            lat.append((time.perf_counter() - t0) * 1e3)
            if r.status_code == 200:
                done += 1
            else:
                errors += 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=10) as c:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(c) for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    return {"rps": round(done / wall, 1), "errors": errors, "latency_ms": _pct(lat)}


def bench_throughput(config: Path, candles: Any, seconds: float, concurrency: int) -> dict[str, Any]:
    import httpx

    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        port = sk.getsockname()[1]
    n = min(len(candles) - 401, int((seconds * 3 + 30) / 0.05))
    start, end = candles.index[400], candles.index[400 + n]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SINGULARITY_")}
    env["SINGULARITY_CONFIG"] = str(config)
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    # 0.05 s per candle: the replay outlasts the measurement
    cmd = [sys.executable, "-m", "singularity", "run", SYMBOL, "--mode", "replay", "--from", start.isoformat(),
           "--to", end.isoformat(), "--speed", str(3600 / 0.05), "--dashboard", "--port", str(port), "--json"]
    proc = subprocess.Popen(cmd, env=env, cwd=config.parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/api/status", timeout=2).json()["running"]:
                    break
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"engine did not start: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
            time.sleep(0.3)
        time.sleep(2.0)
        idle = httpx.get(f"{base}/api/status").json()["loop_lag_ms"]  # peer: the loop before the load
        before = httpx.get(f"{base}/api/ledger", params={"tail": 1}).json()
        status = asyncio.run(_hammer(base, "/api/status", seconds, concurrency))
        health = asyncio.run(_hammer(base, "/api/health", seconds / 2, concurrency))
        time.sleep(1.2)  # one more heartbeat: the lag summary covers the loaded period
        doc = httpx.get(f"{base}/api/status").json()
        after = httpx.get(f"{base}/api/ledger", params={"tail": 1}).json()
        still = doc["running"]
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    traded = (after[0]["seq"] - before[0]["seq"]) if before and after else None
    return {"part": "throughput", "what": "GET /api/status on the engine's loop during a replay",
            "status": status, "peer_health": health, "concurrency": concurrency, "seconds": seconds,
            "engine_loop_lag_ms_before_load": idle, "engine_loop_lag_ms_after_load": doc["loop_lag_ms"],
            "engine_still_running": still,
            "events_appended_meanwhile": traded}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=40)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--concurrency", type=int, default=8)
    a = ap.parse_args()
    if not DATA.is_dir():
        sys.exit(f"real candles not found at {DATA}")
    meta = {"cpu_count": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        config, candles = _home(Path(tmp), bars=2400)
        out = bench_latency(config, a.events)
        print(json.dumps({**out, **meta, "loadavg": os.getloadavg()}), flush=True)
        out = bench_throughput(config, candles, a.seconds, a.concurrency)
        print(json.dumps({**out, **meta, "loadavg": os.getloadavg()}), flush=True)


if __name__ == "__main__":
    main()
