"""The dashboard on the engine's real ledger: server-sent events resume after Last-Event-ID,
and controls recorded from the dashboard never disturb the engine's projections."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from dash_seed import seed_ledger, settings_for
from fastapi.testclient import TestClient
from live_server import serving

from singularity.dashboard import create_app
from singularity.engine.ledger import Ledger, NewEvent


def sse_events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """Parsed ``{"id", "event", "data"}`` blocks of an event stream."""
    block: dict[str, Any] = {}
    for line in lines:
        if not line:
            if "data" in block:
                yield block
            block = {}
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            block[field] = value.strip()


def _take(it: Iterator[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    out = []
    for ev in it:
        if ev.get("event") == "ledger":
            out.append(ev)
            if len(out) == n:
                break
    return out


def test_events_resume_after_last_event_id(tmp_path: Path) -> None:
    s = settings_for(tmp_path)
    url = seed_ledger(s)  # 8 events
    engine = Ledger(url)
    with serving(create_app(s, watch_interval_s=0.1)) as base, httpx.Client(
            base_url=base, timeout=httpx.Timeout(5.0, read=5.0)) as http:
        with http.stream("GET", "/api/events", headers={"Last-Event-ID": "5"}) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            it = sse_events(r.iter_lines())
            first = _take(it, 3)
            assert [int(e["id"]) for e in first] == [6, 7, 8]
            assert json.loads(first[2]["data"])["key"] == "d-eth-1"
            t0 = time.monotonic()
            engine.append([NewEvent("fill", "f-live", {"client_order_id": "o9", "price": 103.0, "quantity": -1.0,
                                                       "fee": 0.1}, "BTC/USDT")])
            [new] = _take(it, 1)
            assert time.monotonic() - t0 < 1.0
            assert int(new["id"]) == 9 and json.loads(new["data"])["payload"]["price"] == 103.0
        # a browser that saw up to 8 reconnects and gets exactly what it missed
        with http.stream("GET", "/api/events", headers={"Last-Event-ID": "8"}) as r:
            [again] = _take(sse_events(r.iter_lines()), 1)
            assert int(again["id"]) == 9
        with http.stream("GET", "/api/events?after=0") as r:
            assert [int(e["id"]) for e in _take(sse_events(r.iter_lines()), 9)] == list(range(1, 10))
    engine.close()


def test_dashboard_controls_leave_engine_projections_intact(tmp_path: Path) -> None:
    s = settings_for(tmp_path)
    url = seed_ledger(s)
    engine = Ledger(url)
    engine.open_books()  # the engine's in-memory books, as in a running engine
    with TestClient(create_app(s), base_url="http://127.0.0.1") as c:
        token = c.get("/api/session").json()["csrf"]
        h = {"x-csrf-token": token}
        assert c.post("/api/controls", json={"action": "pause", "symbol": "BTC/USDT"}, headers=h).status_code == 200
        # the engine keeps trading between two controls of the dashboard
        engine.append([NewEvent("fill", "f-more", {"client_order_id": "o2", "price": 102.5, "quantity": 10.0,
                                                   "fee": 1.0}, "BTC/USDT")])
        r = c.post("/api/controls", json={"action": "flatten", "symbol": "BTC/USDT"}, headers=h)
        assert r.status_code == 200
        seq = r.json()["seq"]
        check = Ledger(url)
        check.verify()  # right after the dashboard's write: projections still equal the events
        assert check.stored_books()["BTC/USDT"].quantity == pytest.approx(59.95, abs=1e-12)
        check.close()
        engine.append([NewEvent("decision", "d-more", {"candle": "2025-01-11T05:00:00+00:00", "close": 101.0,
                                                       "target": 0.0}, "BTC/USDT")])
        shown = c.get("/api/ledger", params={"kind": "control"}).json()
        assert [(e["symbol"], e["payload"]["action"]) for e in shown] == [("BTC/USDT", "pause"), ("BTC/USDT", "flatten")]
    reader = Ledger(url)
    [ctl] = [e for e in reader.events(kinds=["control"]) if e.seq == seq]
    assert ctl.symbol is None and ctl.payload == {"action": "flatten", "source": "dashboard", "symbol": "BTC/USDT"}
    books = reader.verify()  # recovery: the stored projections equal the events' (raises otherwise)
    assert books["BTC/USDT"].quantity == pytest.approx(49.95 + 10.0, abs=1e-12)
    assert books["BTC/USDT"].fills == 2
    reader.close()
    engine.close()


def test_a_ledger_created_after_the_dashboard_is_followed(tmp_path: Path) -> None:
    s = settings_for(tmp_path)
    with TestClient(create_app(s, watch_interval_s=0.05), base_url="http://127.0.0.1") as c:
        assert c.get("/api/health").json()["ledger"] is False
        assert c.get("/api/ledger").json() == []
        seed_ledger(s, mode="paper")  # the engine starts now
        deadline = time.monotonic() + 5
        while not c.get("/api/health").json()["ledger"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert c.get("/api/health").json()["ledger"] is True
        assert [e["seq"] for e in c.get("/api/ledger").json()] == list(range(1, 9))
        assert c.get("/api/status").json()["mode"] == "paper"


def test_stopping_the_server_ends_open_streams(tmp_path: Path) -> None:
    """An open page must not hold the shutdown (of the engine it runs in) for the grace period."""
    import threading

    s = settings_for(tmp_path)
    seed_ledger(s)
    ended = threading.Event()
    with serving(create_app(s)) as base:

        def listen() -> None:
            with httpx.Client(base_url=base, timeout=httpx.Timeout(5.0, read=30.0)) as c, \
                    c.stream("GET", "/api/events") as r:
                for _ in r.iter_lines():
                    pass
            ended.set()

        t = threading.Thread(target=listen, daemon=True)
        t.start()
        time.sleep(0.5)
        t0 = time.monotonic()
    stopped = time.monotonic() - t0  # serving() returns once the server thread has ended
    assert ended.wait(2)
    assert stopped < 1.5  # the grace period is 3 s


def test_discovery_skips_a_ledger_database_that_cannot_be_opened(tmp_path: Path) -> None:
    from singularity.dashboard.ledger import open_engine_ledger

    # a server URL per mode, and no server listening: every mode's database fails to open
    good = tmp_path / "ledger-replay.db"
    s = settings_for(tmp_path, **{"engine.ledger_url": "postgresql+psycopg://nobody@127.0.0.1:9/ledger_{mode}"
                                                       "?connect_timeout=2"})
    assert open_engine_ledger(s) is None  # none found, no crash
    seed_ledger(settings_for(tmp_path), mode="replay")
    assert good.is_file()
    found = open_engine_ledger(settings_for(tmp_path))
    assert found is not None and found.mode == "replay"
    found.close()
