"""The per-symbol table of ``singularity run`` (redrawn on a terminal while the engine runs)
and of ``status``: exact values after a short replay, on a fixed-width terminal, and whole
names and numbers when the output is a pipe."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from functools import partial

from engine_home import EXPRESSION, SYMBOL, make_home
from rich.console import Console

from singularity.cli.engine_cmd import _live_table, live_document, symbol_table
from singularity.engine.assemble import RunOptions, build_replay, run_engine
from singularity.engine.ledger import Ledger, ledger_url

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _expected(home, candles):
    """The row's cells computed from the candles and the ledger's fills and decisions alone."""
    led = Ledger(ledger_url(home.settings, "replay"))
    fills = [e.payload for e in led.events(kinds=["fill"])]
    assert len(fills) >= 2
    qty = sum(f["quantity"] for f in fills)
    close = float(candles["close"].iloc[-1])
    cash = home.settings.engine.capital - sum(f["quantity"] * f["price"] + f["fee"] for f in fills)
    equity = cash + qty * close
    last = candles.index[-1]
    before = [d.payload for d in led.events(kinds=["decision"]) if d.payload["candle"][:10] < last.strftime("%Y-%m-%d")]
    day_pnl = equity - before[-1]["equity"]  # a day starts at the previous day's last close
    assert qty > 0 and abs(day_pnl) > 1.0
    return [SYMBOL, last.strftime("%Y-%m-%d %H:%M"), f"{close:.2f}", f"{qty:.6f}", f"{equity:.2f}",
            f"{day_pnl:.2f}", f"{home.strategy_id}: {EXPRESSION}", "", "done"]  # no regime watch


def _row(text):
    line = next(ln for ln in ANSI.sub("", text).splitlines() if SYMBOL in ln)
    return [c.strip() for c in line.strip().strip("│┃").split("│")]


def test_the_live_table_shows_the_replay_exact_values(tmp_path, load_feather):
    # ends on 2026-02-18 14:00, long since that day's 05:00 open: a position and a day's PnL
    candles = load_feather("BTC", "1h", tail=500).iloc[:-13]
    home = make_home(tmp_path, candles, chunk=8)
    term = io.StringIO()
    screen = Console(file=term, width=160, force_terminal=True, color_system=None)
    engine = build_replay(home.settings, RunOptions(mode="replay", symbols=(SYMBOL,), timeframe="1h",
                                                    start=candles.index[400]),
                          extra_tasks=[partial(_live_table, out=screen, every_s=0.05)])
    run_engine(engine)
    # it was drawn on the terminal while the replay ran, with the strategy named in full
    drawn = ANSI.sub("", term.getvalue())
    assert drawn.count("engine (replay)") >= 2 and f"{home.strategy_id}: {EXPRESSION}" in drawn
    # the table of the finished run: the exact values on a fixed-width terminal
    out = Console(file=io.StringIO(), width=160, force_terminal=True, color_system=None)
    out.print(symbol_table(live_document(engine)))
    assert _row(out.file.getvalue()) == _expected(home, candles)
    # on an 80-column terminal the cells fold, they are never cut with an ellipsis
    narrow = Console(file=io.StringIO(), width=80, force_terminal=True, color_system=None)
    narrow.print(symbol_table(live_document(engine)))
    text = ANSI.sub("", narrow.file.getvalue())
    assert "…" not in text
    body = text.split("┡")[1].splitlines()[1:-1]  # the row's lines, below the header
    folded = [[c.strip() for c in ln.strip().strip("│").split("│")] for ln in body]
    whole = ["".join(cells[i] for cells in folded) for i in range(9)]
    assert whole == [c.replace(" ", "") for c in _expected(home, candles)]

    # 'status' to a pipe (not a tty) with COLUMNS=40: one whole row, no name or number cut
    env = dict(home.env(), COLUMNS="40")
    res = subprocess.run([sys.executable, "-m", "singularity", "status", "--mode", "replay"], env=env,
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "\x1b[" not in res.stdout
    exp = _expected(home, candles)
    assert _row(res.stdout) == [*exp[:6], str(home.strategy_id), "", "done"]
