"""What the market allows a rule: long-only or both sides, and what a short pays per bar.

Light on purpose (settings only): the engine imports it at start-up, where the forge's
gauntlet (SciPy) would add seconds to every restart.
"""

from __future__ import annotations

from singularity.config import Settings


def long_only(settings: Settings) -> bool:
    """Long-only by choice (evolution.long_only) or because a spot market cannot be short."""
    return settings.evolution.long_only or settings.costs.long_only


def short_rate_per_bar(settings: Settings, timeframe: str) -> float:
    """Borrow/funding charge per bar on a short position; 0 where shorts are not allowed."""
    return 0.0 if long_only(settings) else settings.costs.short_rate_per_bar(timeframe)
