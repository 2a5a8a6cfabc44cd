"""API contracts: every endpoint's status codes and JSON shape over a seeded data directory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dash_seed import API_KEY, GAUNTLET, T0, T1, Seeded, candles
from fastapi.testclient import TestClient

from singularity.dashboard import create_app
from singularity.dashboard.pages import PAGES, plotly_js
from singularity.dashboard.views import FORGE_STAGES


@pytest.fixture(scope="module")
def client(seeded: Seeded) -> Iterator[TestClient]:
    # no ledger passed: the app finds the engine's (replay) ledger in the data directory
    with TestClient(create_app(seeded.settings), base_url="http://127.0.0.1") as c:
        yield c


def test_health(client: TestClient) -> None:
    r = client.get("/api/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "version": r.json()["version"], "read_only": False,
                        "auth_required": False, "ledger": True}


def test_status_joins_champions_and_store_prices(client: TestClient, seeded: Seeded) -> None:
    r = client.get("/api/status")
    assert r.status_code == 200
    body = r.json()
    assert body["mode"] == "replay" and body["timeframe"] == "1h" and body["exchange"] == "binance"
    assert body["loop_lag_ms"] == {"p50": 0.4, "p99": 2.1, "max": 5.0}
    rows = {x["symbol"]: x for x in body["symbols"]}
    assert list(rows) == ["BTC/USDT", "ETH/USDT"]
    btc = rows["BTC/USDT"]
    assert btc["champion"] == {"id": seeded.champion_id, "rule": "rsi_14 > 55 and ret_1 > 0"}
    # the engine's projections: price and candle of its last decision, position, equity
    assert (btc["price"], btc["last_candle"], btc["position"]) == (102.0, T1, 49.95)
    assert btc["equity"] == pytest.approx(10_000 - 49.95 * 100.1 - 5.0 + 49.95 * 102.0, abs=1e-9)
    assert btc["feed"] == "reconnecting: socket closed (2 reconnects)"
    assert btc["paused"] is False and btc["regime"] == "trend"
    assert rows["ETH/USDT"]["champion"] is None and rows["ETH/USDT"]["equity"] == 10_000.0
    assert set(btc) >= {"position", "equity", "pnl", "regime", "feed", "paused"}


def test_status_without_engine_shows_store_prices(seeded: Seeded, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from singularity.dashboard.ledger import open_engine_ledger

    assert open_engine_ledger(seeded.settings.model_copy(update={"data": seeded.settings.data.model_copy(
        update={"dir": tmp_path})})) is None  # nothing there, nothing created
    assert list(tmp_path.iterdir()) == []
    import types

    from singularity.dashboard.ledger import overview

    app = create_app(seeded.settings)
    ctx = app.state.dashboard
    body = overview(types.SimpleNamespace(settings=ctx.settings, ledger=None, registry=ctx.registry,
                                          store=ctx.store))
    btc = {x["symbol"]: x for x in body["symbols"]}["BTC/USDT"]
    c = candles()
    assert body["running"] is False and body["mode"] is None
    assert btc["price"] == float(c["close"].iloc[-1]) and btc["last_candle"] == c.index[-1].isoformat()
    assert btc["position"] is None


def test_strategies_list_and_filters(client: TestClient, seeded: Seeded) -> None:
    r = client.get("/api/strategies")
    assert r.status_code == 200
    assert [s["id"] for s in r.json()] == [seeded.candidate_id, seeded.champion_id, seeded.parent_id]
    champ = client.get("/api/strategies", params={"status": "champion"}).json()
    assert [s["id"] for s in champ] == [seeded.champion_id]
    assert champ[0]["passed"] is True and champ[0]["holdout_sharpe"] == 1.4
    assert client.get("/api/strategies", params={"symbol": "ETH/USDT"}).json() == []
    assert client.get("/api/strategies", params={"status": "bogus"}).status_code == 422


def test_strategy_detail_gauntlet_lineage_report(client: TestClient, seeded: Seeded) -> None:
    d = client.get(f"/api/strategies/{seeded.champion_id}").json()
    assert d["gauntlet"] == GAUNTLET
    assert d["explanation"].startswith("Buys when momentum")
    assert [n["id"] for n in d["lineage"]] == [seeded.champion_id, seeded.parent_id]
    assert d["lineage"][0]["parents"] == [seeded.parent_id]
    assert d["report_url"] == f"/api/strategies/{seeded.champion_id}/report"
    rep = client.get(d["report_url"])
    assert rep.status_code == 200 and "report of the champion" in rep.text
    assert rep.headers["content-type"].startswith("text/html")
    assert client.get(f"/api/strategies/{seeded.candidate_id}").json()["report_url"] is None
    assert client.get(f"/api/strategies/{seeded.candidate_id}/report").status_code == 404
    missing = client.get("/api/strategies/9999")
    assert missing.status_code == 404 and "9999" in missing.json()["detail"]


def test_runs_with_live_stage(client: TestClient, seeded: Seeded) -> None:
    runs = client.get("/api/runs").json()
    assert [r["id"] for r in runs] == [seeded.running_run_id, seeded.run_id]
    running, done = runs
    assert (running["status"], running["stage"], running["stage_detail"]) == ("running", "evolution",
                                                                              "generation 3 of 10")
    assert running["progress"] == FORGE_STAGES.index("evolution") / (len(FORGE_STAGES) - 1)
    assert done["status"] == "succeeded" and done["progress"] == 1.0 and done["champion_id"] == seeded.champion_id
    assert done["stage_seconds"] == {"data": 0.5, "features": 3.0, "evolution": 7.0, "gauntlet": 2.0}
    d = client.get(f"/api/runs/{seeded.run_id}").json()
    assert [g["best"] for g in d["generations"]] == pytest.approx([0.5, 0.6, 0.7, 0.8, 0.9])
    assert d["models"] == []
    assert client.get("/api/runs/999").status_code == 404


def test_data_with_gaps(client: TestClient) -> None:
    entries = client.get("/api/data").json()
    by = {e["symbol"]: e for e in entries}
    assert by["BTC/USDT"]["gaps"] == 1 and by["BTC/USDT"]["missing"] == 5 and by["BTC/USDT"]["rows"] == 240
    assert by["ETH/USDT"]["gaps"] == 0
    g = client.get("/api/data/gaps", params={"exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1h"}).json()
    c = candles()
    assert g["total_gaps"] == 1
    assert g["gaps"] == [{"after": c.index[99].isoformat(), "before": c.index[100].isoformat(), "missing": 5}]
    assert client.get("/api/data/gaps", params={"exchange": "binance", "symbol": "SOL/USDT",
                                                "timeframe": "1h"}).status_code == 404


def test_logs_tail_files_and_mask_keys(client: TestClient) -> None:
    logs = client.get("/api/logs").json()
    assert "logs/engine.log" in logs and "this process" in logs
    lines = logs["logs/engine.log"]
    assert lines[0].endswith("engine: started")
    assert lines[1].endswith("connecting with key ********") and API_KEY not in lines[1]


def test_ledger_after_tail_and_filters(client: TestClient) -> None:
    all_ = client.get("/api/ledger").json()
    assert [e["seq"] for e in all_] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert all_[3] == {"seq": 4, "time": T0, "kind": "fill", "symbol": "BTC/USDT", "key": "f-btc-0",
                       "payload": {"client_order_id": "o1", "price": 100.1, "quantity": 49.95, "fee": 5.0,
                                   "backtest_price": 100.05}}
    assert [e["seq"] for e in client.get("/api/ledger", params={"after": 6}).json()] == [7, 8]
    assert [e["seq"] for e in client.get("/api/ledger", params={"after": 1, "limit": 2}).json()] == [2, 3]
    assert [e["key"] for e in client.get("/api/ledger", params={"kind": "regime", "tail": 1}).json()] == ["r-btc-1"]
    assert [e["seq"] for e in client.get("/api/ledger", params={"tail": 3}).json()] == [6, 7, 8]
    assert [e["seq"] for e in client.get("/api/ledger", params={"symbol": "ETH/USDT"}).json()] == [2, 8]
    assert client.get("/api/ledger", params={"after": -1}).status_code == 422


def test_regimes_timeline(client: TestClient) -> None:
    r = client.get("/api/regimes").json()
    assert [(s["symbol"], s["regime"], s["start"]) for s in r["segments"]] == [
        ("BTC/USDT", "calm", T0), ("BTC/USDT", "trend", T1)]
    assert r["segments"][0]["end"] == T1 and r["segments"][1]["end"] == T1  # the ledger's clock, not now
    assert r["current"] == [{"symbol": "BTC/USDT", "regime": "trend", "since": T1}]


def test_equity_against_buy_and_hold_and_backtest(client: TestClient) -> None:
    e = client.get("/api/equity", params={"symbol": "BTC/USDT"}).json()
    eq1 = 10_000 - 49.95 * 100.1 - 5.0 + 49.95 * 102.0
    bt1 = 10_000 - 49.95 * 100.05 - 5.0 + 49.95 * 102.0
    assert e["time"] == [T0, T1] and e["points"] == 2
    assert e["equity"] == pytest.approx([10_000.0, eq1], abs=1e-9)
    assert e["buy_hold"] == pytest.approx([10_000.0, 10_200.0], abs=1e-9)
    assert e["backtest"] == pytest.approx([10_000.0, bt1], abs=1e-9)
    assert e["shortfall"] == pytest.approx(49.95 * 0.05, abs=1e-9)
    assert e["drawdown"] == [0.0, 0.0] and e["max_drawdown"] == 0.0
    both = client.get("/api/equity").json()  # all symbols: ETH's cash counts from its deposit
    assert both["time"] == [T0, T1]
    assert both["equity"] == pytest.approx([20_000.0, eq1 + 10_000.0], abs=1e-9)
    assert both["buy_hold"] == pytest.approx([20_000.0, 20_200.0], abs=1e-9)


def test_openapi_documents_the_api(client: TestClient) -> None:
    paths = client.get("/api/openapi.json").json()["paths"]
    for p in ("/api/health", "/api/status", "/api/strategies", "/api/strategies/{strategy_id}", "/api/runs",
              "/api/runs/{run_id}", "/api/ledger", "/api/events", "/api/data", "/api/data/gaps", "/api/logs",
              "/api/equity", "/api/regimes", "/api/controls", "/api/login", "/api/session"):
        assert p in paths, p
    assert not any(p.startswith("/static") or p == "/" for p in paths)


def test_pages_and_assets_are_served_locally(client: TestClient, seeded: Seeded) -> None:
    for path, name, _title, plots in PAGES:
        r = client.get(path)
        assert r.status_code == 200, path
        assert f'data-page="{name}"' in r.text
        assert ('src="/static/plotly.min.js"' in r.text) == plots
        assert "http://" not in r.text and "https://" not in r.text  # nothing from the internet
    assert client.get(f"/strategies/{seeded.champion_id}").status_code == 200
    js = client.get("/static/plotly.min.js")
    assert js.status_code == 200 and js.content == plotly_js().read_bytes()
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/app.css").headers["content-type"].startswith("text/css")
    assert client.get("/static/../app.py").status_code == 404
    assert client.get("/static/nothing.js").status_code == 404


def test_logs_mask_keys_the_engine_loaded(seeded: Seeded, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import logging

    key_from_file = "KEYFILESECRET42xyz"
    app = create_app(seeded.settings, secrets=(key_from_file,))
    with TestClient(app, base_url="http://127.0.0.1") as c:
        logging.getLogger("singularity.engine").warning("venue answered for %s", key_from_file)
        lines = c.get("/api/logs").json()["this process"]
    assert any(line.endswith("venue answered for ********") for line in lines)
    assert key_from_file not in "".join(lines)
