"""Notifications go to a local webhook and a local stand-in of Telegram's bot API, never to
the internet; an unreachable endpoint costs the engine nothing."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from engine_home import SYMBOL, make_home

from singularity.engine.assemble import RunOptions, attach_notifier, build_replay, run_engine
from singularity.engine.ledger import Ledger, ledger_url


def _server():
    got: list[tuple[str, dict]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append((self.path, json.loads(body)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_a) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, got


def test_fills_reach_the_webhook_and_telegram(tmp_path, load_feather) -> None:
    srv, got = _server()
    url = f"http://127.0.0.1:{srv.server_address[1]}"
    try:
        home = make_home(tmp_path, load_feather("BTC", "1h", tail=700), extra=(
            f'[engine.notify]\nwebhook_url = "{url}/hook"\ntelegram_token = "123:abc"\n'
            f'telegram_chat_id = "42"\ntelegram_api_url = "{url}"\nkinds = ["fill"]\n'))
        opts = RunOptions(mode="replay", symbols=(SYMBOL,), timeframe="1h", start=home.candles.index[400])
        engine = build_replay(home.settings, opts)
        n = attach_notifier(engine, home.settings)
        run_engine(engine)
    finally:
        srv.shutdown()
    fills = Ledger(ledger_url(home.settings, "replay")).events(kinds=["fill"])
    hooks = [b for p, b in got if p == "/hook"]
    tele = [b for p, b in got if p == "/bot123:abc/sendMessage"]
    # every fill the engine recorded before it stopped was sent (the sender is stopped with it)
    assert 0 < len(hooks) <= len(fills) and len(tele) == len(hooks) and n.failed == 0
    first = fills[0].payload
    assert hooks[0]["kind"] == "fill" and hooks[0]["symbol"] == SYMBOL
    assert hooks[0]["payload"]["client_order_id"] == first["client_order_id"]
    assert tele[0] == {"chat_id": "42", "text": hooks[0]["text"]} and hooks[0]["text"].startswith(f"{SYMBOL} fill: ")
    assert "123:abc" not in repr(home.settings)  # the token is a secret


def test_unreachable_webhook_is_logged_and_dropped(tmp_path, load_feather) -> None:
    home = make_home(tmp_path, load_feather("BTC", "1h", tail=600), extra=(
        '[engine.notify]\nwebhook_url = "http://127.0.0.1:9/none"\ntimeout_s = 0.5\n'))
    opts = RunOptions(mode="replay", symbols=(SYMBOL,), timeframe="1h", start=home.candles.index[400])
    engine = build_replay(home.settings, opts)
    n = attach_notifier(engine, home.settings)
    stats = run_engine(engine)
    assert stats["candles"] == 200 and n.sent == 0
