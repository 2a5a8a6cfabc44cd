"""Fixtures of the engine tests (helpers in ``engine_home``)."""

from __future__ import annotations

import pytest
from engine_home import Home, make_home


@pytest.fixture
def btc_home(tmp_path, load_feather) -> Home:
    """2,400 stored candles: 400 of feature history, then the 2,000 the tests replay."""
    return make_home(tmp_path, load_feather("BTC", "1h", tail=2400))
