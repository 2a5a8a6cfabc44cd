"""Safe by default: loopback unless a password is set, cookie sessions, CSRF on every control,
rate-limited logins, and no configured secret in any page, API answer or log line."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import pytest
from dash_seed import API_KEY, API_SECRET, PASSWORD, Seeded, settings_for
from fastapi.testclient import TestClient

from singularity.config import load_settings
from singularity.dashboard import create_app, serve
from singularity.dashboard.ledger import EngineLedger
from singularity.dashboard.pages import PAGES
from singularity.dashboard.security import check_bind, hash_password, is_loopback, verify_password
from singularity.errors import ConfigError

PASSWORD_HASH = hash_password(PASSWORD)


def fresh_ledger(tmp_path: Path) -> EngineLedger:
    return EngineLedger(f"sqlite:///{tmp_path / 'ledger-paper.db'}", "paper")


def remote_client(seeded: Seeded, **kw: object) -> TestClient:
    s = settings_for(seeded.data_dir, **{"dashboard.password_hash": PASSWORD_HASH,
                                          "dashboard.login_attempts": 3})
    app = create_app(s, host="0.0.0.0", **kw)  # type: ignore[arg-type]
    return TestClient(app, base_url="http://10.20.30.40:8750")


def test_password_hash_round_trip_and_config_rejects_clear_text(tmp_path: Path) -> None:
    assert PASSWORD not in PASSWORD_HASH and PASSWORD_HASH.startswith("scrypt$")
    assert verify_password(PASSWORD, PASSWORD_HASH)
    assert not verify_password("wrong", PASSWORD_HASH)
    assert not verify_password(PASSWORD, "scrypt$garbage")
    with pytest.raises(ConfigError) as e:
        load_settings(overrides={"dashboard.password_hash": "hunter2"}, environ={}, cwd=tmp_path)
    assert "hunter2" not in str(e.value) and "dashboard.password_hash" in str(e.value)


def test_refuses_to_bind_off_localhost_without_password(seeded: Seeded) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    check_bind("127.0.0.1", None)
    with pytest.raises(ConfigError, match=r"refusing to bind the dashboard to 0\.0\.0\.0"):
        check_bind("0.0.0.0", None)
    with pytest.raises(ConfigError):
        create_app(seeded.settings, host="192.168.1.5")
    app = create_app(seeded.settings)  # loopback: fine; serving it elsewhere is not
    with pytest.raises(ConfigError):
        asyncio.run(serve(app, host="0.0.0.0", port=1))


def test_cli_refuses_off_localhost_bind_with_one_line(seeded: Seeded) -> None:
    r = subprocess.run([sys.executable, "-m", "singularity", "--data-dir", str(seeded.data_dir), "dashboard",
                        "--host", "0.0.0.0", "--port", "1"], capture_output=True, text=True, timeout=60,
                       cwd=seeded.data_dir)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "error: refusing to bind the dashboard to 0.0.0.0: set dashboard.password_hash first "
        "(singularity dashboard --hash-password), or bind 127.0.0.1"]


def test_off_localhost_needs_login(seeded: Seeded) -> None:
    with remote_client(seeded) as c:
        assert c.get("/api/health").status_code == 200  # liveness stays open
        for path in ("/api/status", "/api/strategies", "/api/runs", "/api/ledger", "/api/data", "/api/logs",
                     "/api/events", f"/api/strategies/{seeded.champion_id}/report"):
            assert c.get(path).status_code == 401, path
        page = c.get("/", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"] == "/login"
        assert c.get("/login").status_code == 200
        assert c.post("/api/login", json={"password": "nope"}).status_code == 401
        ok = c.post("/api/login", json={"password": PASSWORD})
        assert ok.status_code == 200 and ok.json()["authenticated"] is True
        cookie = ok.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        assert c.get("/api/status").status_code == 200
        assert c.get("/").status_code == 200
        assert c.post("/api/logout").status_code == 204
        c.cookies.clear()
        assert c.get("/api/status").status_code == 401


def test_failed_logins_are_rate_limited(seeded: Seeded, caplog: pytest.LogCaptureFixture) -> None:
    with remote_client(seeded) as c:
        for _ in range(3):
            assert c.post("/api/login", json={"password": "guess-xyzzy"}).status_code == 401
        r = c.post("/api/login", json={"password": PASSWORD})  # even the right one, for a while
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    failed = [rec.getMessage() for rec in caplog.records if "failed login" in rec.getMessage()]
    assert failed == ["dashboard: failed login from testclient"] * 3
    assert "guess-xyzzy" not in caplog.text and PASSWORD not in caplog.text


def _csrf(c: TestClient) -> str:
    token = c.get("/api/session").json()["csrf"]
    assert token
    return token  # type: ignore[no-any-return]


def test_controls_need_the_csrf_token(seeded: Seeded, tmp_path: Path) -> None:
    ledger = fresh_ledger(tmp_path)
    with TestClient(create_app(seeded.settings, ledger=ledger), base_url="http://127.0.0.1") as c:
        body = {"action": "pause", "symbol": "BTC/USDT"}
        assert c.post("/api/controls", json=body).status_code == 403  # no session, no token
        token = _csrf(c)
        assert c.post("/api/controls", json=body).status_code == 403  # session, no token
        assert c.post("/api/controls", json=body, headers={"x-csrf-token": "x" + token}).status_code == 403
        cross = c.post("/api/controls", json=body, headers={"x-csrf-token": token, "origin": "http://evil.test"})
        assert cross.status_code == 403
        assert ledger.events() == []
        ok = c.post("/api/controls", json=body, headers={"x-csrf-token": token})
        assert ok.status_code == 200
        [ev] = ledger.events()
        assert (ev["kind"], ev["symbol"], ev["payload"]["action"]) == ("control", "BTC/USDT", "pause")
        assert ok.json()["seq"] == ev["seq"]
        bad = c.post("/api/controls", json={"action": "pause", "symbol": "DOGE/BTC"}, headers={"x-csrf-token": token})
        assert bad.status_code == 422 and len(ledger.events()) == 1


def test_remote_controls_need_login_and_csrf(seeded: Seeded, tmp_path: Path) -> None:
    ledger = fresh_ledger(tmp_path)
    with remote_client(seeded, ledger=ledger) as c:
        body = {"action": "flatten", "symbol": "ETH/USDT"}
        assert c.post("/api/controls", json=body).status_code == 401
        token = c.post("/api/login", json={"password": PASSWORD}).json()["csrf"]
        assert c.post("/api/controls", json=body).status_code == 403
        assert c.post("/api/controls", json=body, headers={"x-csrf-token": token}).status_code == 200
        assert [r["payload"]["action"] for r in ledger.events()] == ["flatten"]


def test_read_only_keeps_pages_and_refuses_controls(seeded: Seeded, tmp_path: Path) -> None:
    ledger = fresh_ledger(tmp_path)
    with TestClient(create_app(seeded.settings, ledger=ledger, read_only=True), base_url="http://127.0.0.1") as c:
        for path, *_ in PAGES:
            assert c.get(path).status_code == 200
        token = _csrf(c)
        r = c.post("/api/controls", json={"action": "resume", "symbol": "BTC/USDT"}, headers={"x-csrf-token": token})
        assert r.status_code == 403 and "read-only" in r.json()["detail"]
        assert ledger.events() == []


def test_loopback_server_rejects_foreign_host_header(seeded: Seeded) -> None:
    with TestClient(create_app(seeded.settings), base_url="http://rebind.evil.test") as c:
        assert c.get("/api/status").status_code == 403
        assert c.get("/").status_code == 403


def test_no_secret_in_pages_api_or_logs(seeded: Seeded, caplog: pytest.LogCaptureFixture) -> None:
    assert seeded.settings.exchange.api_key is not None  # the seeded settings do hold keys
    app = create_app(seeded.settings)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        import logging

        logging.getLogger("singularity.test").warning("order placed with key %s", API_KEY)
        answers: dict[str, str] = {}
        for path, *_ in PAGES:
            answers[path] = c.get(path).text
        answers["/login"] = c.get("/login").text
        answers["/static/app.js"] = c.get("/static/app.js").text
        spec = c.get("/api/openapi.json").json()
        for path, ops in spec["paths"].items():
            if "get" not in ops or path == "/api/events":
                continue
            url = re.sub(r"\{strategy_id\}", str(seeded.champion_id), path)
            url = re.sub(r"\{run_id\}", str(seeded.run_id), url)
            params = ({"exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1h"}
                      if path == "/api/data/gaps" else None)
            r = c.get(url, params=params)
            assert r.status_code == 200, url
            answers[url] = r.text
        answers["/api/strategies/x/report"] = c.get(f"/api/strategies/{seeded.champion_id}/report").text
        for url, text in answers.items():
            assert API_KEY not in text and API_SECRET not in text, url
        assert "order placed with key ********" in answers["/api/logs"]
    assert len(answers) >= len(PAGES) + 12


def test_security_headers(seeded: Seeded) -> None:
    with TestClient(create_app(seeded.settings), base_url="http://127.0.0.1") as c:
        page = c.get("/")
        csp = page.headers.get_list("content-security-policy")
        assert csp == ["default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
                       "img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'"]
        assert page.headers["x-frame-options"] == "DENY" and page.headers["x-content-type-options"] == "nosniff"
        assert c.get("/api/status").headers["referrer-policy"] == "no-referrer"
        report = c.get(f"/api/strategies/{seeded.champion_id}/report")
        [rcsp] = report.headers.get_list("content-security-policy")  # its own policy, not both
        assert rcsp.startswith("default-src 'none'; script-src 'unsafe-inline'") and "connect-src" not in rcsp


def test_sessions_are_bounded() -> None:
    from singularity.dashboard.security import Sessions

    sessions = Sessions(lifetime_s=60, max_sessions=3)
    ids = [sessions.new()[0] for _ in range(5)]
    assert [sessions.get(i) is not None for i in ids] == [False, False, True, True, True]
