"""The dashboard in a real browser: Debian's headless Chromium driven by Playwright against the
app served on 127.0.0.1 over a seeded registry, store and ledger. Every page loads without a
console error and its plots render; a ledger event appended by the test shows up in the open
page within 1 s; a control clicked in the page reaches the ledger. Screenshots of every page go
to build/dashboard-screenshots/ (SINGULARITY_SCREENSHOTS overrides it). Never downloads a
browser: skipped where chromium is absent, a failure under CI=true."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dash_seed import API_KEY, seed, settings_for
from live_server import serving

from singularity.dashboard import create_app
from singularity.dashboard.pages import PAGES
from singularity.engine.ledger import Ledger, NewEvent
from singularity.registry import Registry

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("SINGULARITY_SCREENSHOTS", REPO / "build" / "dashboard-screenshots"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        msg = "headless Chromium not installed (apt-get install chromium); .ci/run installs it"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {msg}")
        pytest.skip(msg)
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but the playwright package is missing (pip install -e .[dev])")
        pytest.skip("playwright (python package) not installed")
    return exe


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    exe = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def test_every_page_live_updates_and_controls(browser: Any, tmp_path: Path) -> None:
    seeded = seed(tmp_path)  # registry, store and the engine's ledger (this test appends to it)
    assert seeded.settings == settings_for(tmp_path)
    engine = Ledger(seeded.ledger_url)  # writes as the engine does, from its own connection
    app = create_app(seeded.settings, watch_interval_s=0.1)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    with serving(app) as base:
        ctx = browser.new_context(viewport={"width": 1360, "height": 900})
        page = ctx.new_page()
        page.on("console", lambda m: errors.append(f"{page.url}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"{page.url}: {e}"))
        external: list[str] = []
        page.on("request", lambda r: None if r.url.startswith(base) or r.url.startswith("data:")
                else external.append(r.url))

        visits = [(path, name, plots) for path, name, _t, plots in PAGES]
        visits.insert(3, (f"/strategies/{seeded.champion_id}", "strategy", True))
        for path, name, plots in visits:
            page.goto(base + path)
            page.wait_for_selector("body[data-ready=true]", timeout=10_000)
            if plots:
                page.wait_for_selector("#content .js-plotly-plot .main-svg", timeout=10_000)
                assert page.locator("#content .js-plotly-plot").count() >= 1, path
            page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
            assert API_KEY not in page.content()
        assert errors == []
        assert external == []

        # content that must be on the pages
        page.goto(f"{base}/strategies/{seeded.champion_id}")
        page.wait_for_selector("body[data-ready=true]")
        assert page.locator("#gauntlet tbody tr").count() == 3
        assert page.locator("#lineage a").all_inner_texts() == [f"#{seeded.champion_id}", f"#{seeded.parent_id}"]
        assert page.locator("#report-link").get_attribute("href") == f"/api/strategies/{seeded.champion_id}/report"
        page.goto(f"{base}/api/strategies/{seeded.champion_id}/report")  # the analyst's report, inline plotly
        page.wait_for_selector("#fig-equity .main-svg", timeout=10_000)
        assert errors == []
        page.goto(f"{base}/data")
        page.wait_for_selector("body[data-ready=true]")
        page.click("#store a.warn")
        page.wait_for_selector("#gap-table tbody tr")
        assert page.locator("#gap-table tbody tr td").nth(2).inner_text() == "5"

        # a ledger event appended now appears in the open page within 1 s
        page.goto(f"{base}/ledger")
        page.wait_for_selector("body[data-ready=true]")
        page.wait_for_selector("#live.on", timeout=5_000)
        t0 = time.monotonic()
        [ev] = engine.append([NewEvent("fill", "fill-1", {"client_order_id": "o7", "price": 101.5,
                                                          "quantity": 0.25, "fee": 0.02}, "BTC/USDT")])
        seq = ev.seq
        page.wait_for_selector(f'#ledger tr[data-seq="{seq}"]', timeout=1_000)
        seen_after = time.monotonic() - t0
        assert seen_after < 1.0
        assert "101.5" in page.locator(f'#ledger tr[data-seq="{seq}"]').inner_text()

        # a forge run's new stage reaches the open forge page (no reload, no polling)
        page.goto(f"{base}/forge")
        page.wait_for_selector("body[data-ready=true]")
        page.wait_for_selector("#live.on", timeout=5_000)
        reg = Registry(seeded.settings.database_url)
        reg.set_stage(seeded.running_run_id, "gauntlet", "candidate 1 of 3")
        reg.close()
        row = f'#runs tr[data-run="{seeded.running_run_id}"]'
        page.wait_for_function(f"document.querySelector('{row}').innerText.includes('candidate 1 of 3')",
                               timeout=3_000)
        assert "gauntlet" in page.locator(row).inner_text()

        # a control clicked in the page reaches the ledger
        page.goto(f"{base}/controls")
        page.wait_for_selector("body[data-ready=true]")
        page.select_option("#control-symbol", "ETH/USDT")
        page.click("#control-pause")
        page.wait_for_selector("#control-result.ok", timeout=5_000)
        last = Ledger(seeded.ledger_url).events(after_seq=seq)[-1]
        assert (last.kind, last.payload["symbol"], last.payload["action"]) == ("control", "ETH/USDT", "pause")
        page.wait_for_selector(f'#control-events tr[data-seq="{last.seq}"]', timeout=2_000)
        page.screenshot(path=str(SCREENSHOTS / "controls.png"), full_page=True)
        assert errors == []
        ctx.close()
    engine.close()
    print(f"screenshots in {SCREENSHOTS}; ledger event shown after {seen_after * 1000:.0f} ms")


def test_login_in_the_browser(browser: Any, tmp_path: Path) -> None:
    """With a password set, a page sends the browser to /login; the right password lands on
    the overview with a session cookie that page scripts cannot read."""
    from dash_seed import PASSWORD

    from singularity.dashboard.security import hash_password

    seeded = seed(tmp_path)
    s = settings_for(tmp_path, **{"dashboard.password_hash": hash_password(PASSWORD)})
    with serving(create_app(s)) as base:
        ctx = browser.new_context()
        page = ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{base}/strategies/{seeded.champion_id}")
        assert page.url == f"{base}/login"
        page.fill("input[name=password]", "not it")
        page.click("button[type=submit]")
        page.wait_for_function("document.querySelector('#login-error').innerText.length > 0")
        assert page.inner_text("#login-error") == "wrong password"
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/")
        page.wait_for_selector("body[data-ready=true]")
        assert page.locator("#symbol-table tbody tr").count() == 2
        [cookie] = ctx.cookies()
        assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
        assert page.evaluate("document.cookie") == ""
        assert errors == []
        ctx.close()
