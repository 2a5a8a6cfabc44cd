"""The Crucible: one asyncio engine for replay, paper and live trading.

Ports and adapters: a feed (``feeds/``) delivers closed candles, a strategy worker
(``strategy``) turns them into target positions in another process, risk limits (``risk``)
bound them, a venue (``venues/``) fills orders, and every step is an event in the ledger
(``ledger``), whose projections (positions, balances, cursors) are updated in the same
transaction. ``core.Engine`` is the loop between them, the same in every mode.

This package's ``__init__`` stays light (the settings module imports it).
"""
