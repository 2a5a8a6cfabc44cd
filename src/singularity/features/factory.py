"""FeatureFactory: every feature family for every asset of a universe, aligned and cached.

Work is spread without nesting pools: the cheap per-asset families (indicators, particle
filter) go to the pool one asset per task; CEEMDAN and the graph family receive the pool
themselves (windows, not assets, are their unit of parallel work) and are called from here.

``build(universe, targets=[...])`` computes the per-asset families (indicators, particle
filter, CEEMDAN, regimes) and returns frames for the target assets only: the other assets feed
the cross-asset graph through their candles alone, so a forge of one symbol does not compute
seven other assets' CEEMDAN. Such a build has its own cache entry (see ``features.cache``).

A family may declare how much trailing context a new candle needs (``tail`` below); when
candles are appended, such a family is recomputed on a tail window only and spliced onto the
cached rows, after checking that the recomputed overlap equals the cached values (if not,
it is recomputed fully). Families without a tail declaration are recomputed fully.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from singularity.errors import DataError
from singularity.features.catalogue import FeatureSpec, check_catalogue
from singularity.features.indicators import indicator_catalogue, indicator_features
from singularity.features.particle_filter import (
    FilterState,
    particle_filter_catalogue,
    particle_filter_frame,
)
from singularity.features.settings import FeatureSettings

WARMUP_COLUMN = "warmup"
OHLCV = ["open", "high", "low", "close", "volume"]
_VERIFY_ROWS = 8  # overlap rows compared before a tail recomputation is trusted


class Pool(Protocol):
    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> Sequence[Any]: ...


@dataclass(frozen=True)
class FeatureSet:
    """One feature frame per asset (per target asset of a targeted build; index = that asset's candle timestamps), the catalogue of
    its feature columns in order, and a boolean ``warmup`` column marking rows where some
    feature is still warming up (values there are left as computed or NaN, never filled)."""

    frames: dict[str, pd.DataFrame]
    catalogue: list[FeatureSpec]
    notes: tuple[str, ...] = ()
    timings: tuple[tuple[str, float], ...] = ()
    """Wall seconds per stage of the build that produced it (empty for a cache hit)."""
    resume: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False,
                                                     compare=False)
    """Per asset: the particle filter's state after the last candle (plain arrays), so the
    cache can continue it on appended candles instead of refiltering everything."""

    @property
    def warmup_mask(self) -> dict[str, pd.Series]:
        return {sym: f[WARMUP_COLUMN] for sym, f in self.frames.items()}

    @property
    def feature_names(self) -> list[str]:
        return [s.name for s in self.catalogue]

    def ready(self, symbol: str, features: Sequence[str] | None = None) -> pd.DataFrame:
        """The rows of ``symbol`` past the warm-up, feature columns only.

        With ``features``, only those columns, past their own (usually shorter) warm-up: a
        strategy that does not read the graph network need not wait for its training window.
        """
        f = self.frames[symbol]
        if features is None:
            return f.loc[~f[WARMUP_COLUMN], self.feature_names]
        warm = {s.name: s.warmup for s in self.catalogue}
        unknown = [n for n in features if n not in warm]
        if unknown:
            raise KeyError(f"unknown feature(s): {', '.join(unknown)}")
        start = max([warm[n] for n in features], default=0)
        return f.iloc[start:][list(features)]


# -- input checks ----------------------------------------------------------------------------


def check_universe(universe: dict[str, pd.DataFrame]) -> None:
    """One-line DataError for empty, malformed, NaN or non-overlapping candles."""
    if not universe:
        raise DataError("no assets given to the feature factory")
    for sym, df in universe.items():
        missing = [c for c in OHLCV if c not in df.columns]
        if missing:
            raise DataError(f"{sym}: candles lack column(s) {', '.join(missing)}")
        if not isinstance(df.index, pd.DatetimeIndex) or df.index.tz is None:
            raise DataError(f"{sym}: candles need a UTC DatetimeIndex (candle open time)")
        if len(df) == 0:
            raise DataError(f"{sym}: no candles")
        if not df.index.is_monotonic_increasing or df.index.has_duplicates:
            raise DataError(f"{sym}: candle timestamps are not strictly increasing")
        values = df[OHLCV].to_numpy(dtype="float64")
        bad = ~np.isfinite(values).all(axis=1)
        if bad.any():
            first = df.index[np.flatnonzero(bad)[0]]
            raise DataError(
                f"{sym}: {int(bad.sum())} candle(s) with NaN or infinite values "
                f"(first at {first}); repair or drop them before building features"
            )
        if (values[:, :4] <= 0).any():
            raise DataError(f"{sym}: non-positive prices; features use log prices")
    if len(universe) > 1:
        start = max(df.index[0] for df in universe.values())
        end = min(df.index[-1] for df in universe.values())
        if start > end:
            spans = ", ".join(f"{s} {d.index[0]:%Y-%m-%d}..{d.index[-1]:%Y-%m-%d}"
                              for s, d in universe.items())
            raise DataError(f"the assets do not overlap in time: {spans}")


def _check_length(universe: dict[str, pd.DataFrame], warmup: int) -> None:
    for sym, df in universe.items():
        if len(df) <= warmup:
            raise DataError(
                f"{sym}: {len(df)} candles, the features need more than {warmup} (warm-up)"
            )


# -- families --------------------------------------------------------------------------------


CoreItem = tuple[str, pd.DataFrame, FeatureSettings, dict[str, np.ndarray] | None,
                 pd.DataFrame | None]


def _asset_core(item: CoreItem) -> tuple[
    str, pd.DataFrame, list[FeatureSpec], dict[str, np.ndarray] | None
]:
    """Indicators + particle filter of one asset (module level: crosses process boundaries).

    With a saved filter state and the cached filter columns of the first ``state.rows``
    candles, the filter only continues over the appended candles (exactly equal to a full
    run). TA-Lib's indicators are recomputed in full: their recursions depend on the start,
    and they cost milliseconds.
    """
    sym, candles, settings, saved, cached_pf = item
    parts, specs = [], []
    state_out = None
    if settings.indicators.enabled:
        frame, sp = indicator_features(candles, settings.indicators)
        parts.append(frame)
        specs += sp
    if settings.particle_filter.enabled:
        pfs = settings.particle_filter
        if saved is not None and cached_pf is not None:
            state = FilterState.from_arrays(saved)
            new, end = particle_filter_frame(candles.iloc[state.rows:], pfs, state)
            frame = pd.concat([cached_pf.iloc[: state.rows], new])
        else:
            frame, end = particle_filter_frame(candles, pfs)
        parts.append(frame)
        specs += particle_filter_catalogue(pfs)
        state_out = end.to_arrays()
    out = pd.concat(parts, axis=1) if parts else pd.DataFrame(index=candles.index)
    return sym, out, specs, state_out


def _optional(module: str) -> Any | None:
    """A family module written in parallel may not exist yet: skip it, with a note."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name == module:
            return None
        raise


def _tail(mod: Any, attr: str, settings: Any) -> tuple[int, int] | None:
    """A family's (context rows, alignment) for tail recomputation, or None (recompute all).
    A module may declare its own. CEEMDAN's default: its strided windows are anchored to the
    epoch, so a recomputation from row a reproduces every row from the first block start at
    or after a + window - 1: one window plus one stride of context suffices (the overlap
    check in ``_family_tail`` guards the assumption)."""
    fn = getattr(mod, attr, None)
    if fn is not None:
        return fn(settings)
    if attr == "ceemdan_tail":
        return settings.window + settings.stride, 1
    return None


_GNN_MODULE = "singularity.features.gnn"


def _import_in_background(module: str) -> threading.Thread | None:
    """Start importing ``module`` in a thread (None when it is imported already). Errors are
    left for the caller's own import of it to raise."""
    if module in sys.modules:
        return None

    def run() -> None:
        with contextlib.suppress(Exception):
            importlib.import_module(module)

    thread = threading.Thread(target=run, name=f"import {module}", daemon=True)
    thread.start()
    return thread


def feature_catalogue(settings: FeatureSettings) -> tuple[list[FeatureSpec], list[str]]:
    """The catalogue of the enabled families without computing anything, and notes on the
    families whose module or catalogue function is not available."""
    specs: list[FeatureSpec] = []
    notes: list[str] = []
    if settings.indicators.enabled:
        specs += indicator_catalogue(settings.indicators)
    if settings.particle_filter.enabled:
        specs += particle_filter_catalogue(settings.particle_filter)
    for family, module, attr in (
        ("ceemdan", "singularity.features.ceemdan", "catalogue"),
        ("graph", "singularity.features.graph", "graph_feature_specs"),
        ("regimes", "singularity.regimes.family", "regime_catalogue"),
    ):
        sub = getattr(settings, family)
        if not sub.enabled:
            continue
        mod = _optional(module)
        fn = getattr(mod, attr, None) if mod is not None else None
        if fn is None:
            notes.append(f"{family} family not listed: {module}.{attr} not available")
        else:
            specs += fn(sub)
    return specs, notes


def _window(full: FeatureSet, universe: dict[str, pd.DataFrame]) -> FeatureSet:
    """The rows of ``universe`` from a build on a longer history; warm-up marks as a build on
    ``universe`` alone would set them (the same number of leading rows)."""
    frames = {}
    for sym in full.frames:
        candles = universe[sym]
        f = full.frames[sym].loc[candles.index].copy()
        warmup = int(full.frames[sym][WARMUP_COLUMN].sum())
        f[WARMUP_COLUMN] = np.arange(len(f)) < warmup
        frames[sym] = f
    return FeatureSet(frames, full.catalogue, full.notes)


def _targets(universe: dict[str, pd.DataFrame], targets: Sequence[str] | None) -> list[str] | None:
    """The targets in universe order, or None when they are the whole universe (a full build,
    with the full build's cache entry)."""
    if targets is None:
        return None
    unknown = [t for t in targets if t not in universe]
    if unknown:
        raise DataError(f"feature target(s) not in the universe: {', '.join(unknown)}")
    own = [sym for sym in universe if sym in set(targets)]
    if not own:
        raise DataError("no feature targets given")
    return None if len(own) == len(universe) else own


class FeatureFactory:
    """Builds the ``FeatureSet`` of a universe; see the module docstring."""

    def __init__(
        self, settings: FeatureSettings, *, pool: Pool | None = None,
        cache_dir: Path | None = None,
        cache_max_bytes: int | None = None,
        cache_max_age_s: float | None = None,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.cache_max_bytes = cache_max_bytes
        self.cache_max_age_s = cache_max_age_s
        self.last_cache_relation: str | None = None

    # -- public ------------------------------------------------------------------------

    def known_warmup(self, n_assets: int) -> int:
        """Warm-up of the enabled families, from their catalogues (nothing computed)."""
        specs, _ = feature_catalogue(self.settings)
        if n_assets < 2:
            specs = [sp for sp in specs if sp.family != "graph"]
        return max([sp.warmup for sp in specs], default=0)

    def build(self, universe: dict[str, pd.DataFrame], *, progress: bool = True,
              targets: Sequence[str] | None = None) -> FeatureSet:
        """Features of ``universe``; with ``targets``, frames of those assets only (the others
        still feed the cross-asset families through their candles, so the targets' values are
        those of a full build)."""
        check_universe(universe)
        universe = {s: df[OHLCV].astype("float64") for s, df in universe.items()}
        own = _targets(universe, targets)
        _check_length(universe, self.known_warmup(len(universe)))
        cache = None
        if self.cache_dir is not None:
            from singularity.features.cache import FeatureCache

            cache = FeatureCache(self.cache_dir, max_bytes=self.cache_max_bytes,
                                 max_age_s=self.cache_max_age_s)
            source = cache.window_source(self.settings, universe, targets=own)
            if source is not None:  # a rolling window inside the entry: see features.cache
                full = self.build(source, progress=progress, targets=own)
                self.last_cache_relation = "window" if self.last_cache_relation == "hit" else (
                    f"window+{self.last_cache_relation}")
                return _window(full, universe)
            entry = cache.lookup(self.settings, universe, targets=own)
            if entry is not None and entry.relation in ("hit", "prefix"):
                _check_length(universe, max([sp.warmup for sp in entry.catalogue], default=0))
                self.last_cache_relation = entry.relation
                return FeatureSet(entry.frames, entry.catalogue)
            if entry is not None:
                self.last_cache_relation = "extend"
                fs = self._compute(universe, progress, previous=entry, targets=own)
                cache.store(self.settings, universe, fs.frames, fs.catalogue, fs.resume,
                            targets=own)
                return fs
        self.last_cache_relation = "miss" if cache is not None else None
        fs = self._compute(universe, progress, targets=own)
        if cache is not None:
            cache.store(self.settings, universe, fs.frames, fs.catalogue, fs.resume, targets=own)
        return fs

    # -- computation -------------------------------------------------------------------

    def _compute(
        self, universe: dict[str, pd.DataFrame], progress: bool, previous: Any = None,
        targets: list[str] | None = None,
    ) -> FeatureSet:
        from rich.console import Console
        from rich.progress import Progress

        s = self.settings
        notes: list[str] = []
        ceemdan = _optional("singularity.features.ceemdan") if s.ceemdan.enabled else None
        graph = _optional("singularity.features.graph") if s.graph.enabled else None
        if s.ceemdan.enabled and ceemdan is None:
            notes.append("ceemdan family skipped: singularity.features.ceemdan not available")
        if s.graph.enabled and graph is None:
            notes.append("graph family skipped: singularity.features.graph not available")
        if s.graph.enabled and len(universe) < 2 and graph is not None:
            notes.append("graph family skipped: it needs two or more assets")
            graph = None
        # the assets whose frames are built: per-asset families run for these only
        own = {sym: universe[sym] for sym in (targets if targets is not None else universe)}
        clock = time.perf_counter()
        timings: list[tuple[str, float]] = []

        def lap(stage: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings.append((stage, round(now - clock, 3)))
            clock = now

        regimes = s.regimes.enabled
        total = len(own) * (2 if ceemdan else 1) + (1 if graph else 0) + (1 if regimes else 0)
        parts: dict[str, list[pd.DataFrame]] = {sym: [] for sym in own}
        catalogue: list[FeatureSpec] = []
        # the bar goes to stderr: stdout stays for results
        with Progress(console=Console(stderr=True), disable=not progress, transient=True) as bar:
            task = bar.add_task("features", total=total)
            items = [(sym, df, s, *self._pf_resume(previous, sym)) for sym, df in own.items()]
            bar.update(task, description="indicators + particle filter")
            # an extension is milliseconds of work per asset: not worth a trip to the pool
            use_pool = self.pool is not None and len(own) > 1 and previous is None
            results = (self.pool.map(_asset_core, items) if use_pool
                       else [_asset_core(it) for it in items])
            resume: dict[str, dict[str, np.ndarray]] = {}
            for sym, frame, specs, state in results:
                parts[sym].append(frame)
                if state is not None:
                    resume[sym] = state
                if not catalogue:
                    catalogue = list(specs)
                bar.advance(task)
            lap("indicators+particle_filter")
            # the GNN's module imports torch in this process (~1.5 CPU-s) before the graph
            # family can start, while the workers would sit idle: import it while they run
            # CEEMDAN instead (this thread only waits on them then)
            gnn_import = (_import_in_background(_GNN_MODULE) if graph is not None and s.graph.gnn_enabled
                          and self.pool is not None else None)
            try:
                if ceemdan is not None:
                    bar.update(task, description="CEEMDAN")
                    ce_specs: list[FeatureSpec] = []
                    tail = _tail(ceemdan, "ceemdan_tail", s.ceemdan)
                    for sym, df in own.items():
                        frame, ce_specs = self._family_tail(
                            lambda c, m=ceemdan: m.ceemdan_features(
                                c["close"], s.ceemdan, pool=self.pool),
                            df, sym, tail, previous, notes, "ceemdan",
                        )
                        parts[sym].append(frame.reindex(df.index))
                        bar.advance(task)
                    catalogue += ce_specs
                    lap("ceemdan")
            finally:  # its failure, if any, is raised by the graph family's own import
                if gnn_import is not None:
                    gnn_import.join()
            if graph is not None:
                bar.update(task, description="cross-asset graph")
                gframes, gspecs = graph.graph_features(universe, s.graph, pool=self.pool)
                for sym, df in own.items():
                    parts[sym].append(gframes[sym].reindex(df.index))
                catalogue += gspecs
                bar.advance(task)
                lap("graph")
            if regimes:
                from singularity.regimes.family import regime_feature_frames

                bar.update(task, description="regimes")
                rframes, rspecs, rnotes = regime_feature_frames(universe, s.regimes, pool=self.pool,
                                                                symbols=list(own))
                for sym in own:
                    parts[sym].append(rframes[sym])
                catalogue += rspecs
                notes += rnotes
                bar.advance(task)
                lap("regimes")
        names = [sp.name for sp in catalogue]
        if len(set(names)) != len(names):
            dupes = sorted({x for x in names if names.count(x) > 1})
            raise ValueError(f"feature names collide across families: {dupes[:5]}")
        warmup = max([sp.warmup for sp in catalogue], default=0)
        _check_length(universe, warmup)
        frames = {}
        for sym, df in own.items():
            frame = pd.concat(parts[sym], axis=1) if parts[sym] else pd.DataFrame(index=df.index)
            check_catalogue(frame.columns, catalogue, sym)
            frame = frame.astype("float64")
            frame[WARMUP_COLUMN] = np.arange(len(df)) < warmup
            frames[sym] = frame
        return FeatureSet(frames, catalogue, tuple(notes), tuple(timings), resume)

    def _pf_resume(
        self, previous: Any, sym: str
    ) -> tuple[dict[str, np.ndarray] | None, pd.DataFrame | None]:
        """The saved filter state and cached filter columns of ``sym``, if the cache has them."""
        if previous is None or not self.settings.particle_filter.enabled:
            return None, None
        saved = previous.resume.get(sym)
        if saved is None or int(saved["rows"][0]) != previous.rows[sym]:
            return None, None
        cols = [sp.name for sp in particle_filter_catalogue(self.settings.particle_filter)]
        return saved, previous.frames[sym][cols]

    def _family_tail(
        self,
        compute: Callable[[pd.DataFrame], tuple[pd.DataFrame, list[FeatureSpec]]],
        candles: pd.DataFrame,
        sym: str,
        tail: tuple[int, int] | None,
        previous: Any,
        notes: list[str],
        family: str,
    ) -> tuple[pd.DataFrame, list[FeatureSpec]]:
        """Compute one per-asset family, on a tail window when the cache allows it."""
        if previous is None or tail is None:
            return compute(candles)
        old_n = previous.rows[sym]
        context, align = tail
        start = max(0, old_n - context - _VERIFY_ROWS)
        start -= start % max(align, 1)
        if start == 0:
            return compute(candles)
        frame, specs = compute(candles.iloc[start:])
        cols = [sp.name for sp in specs]
        cached = previous.frames[sym][cols]
        overlap = candles.index[start + context: old_n]
        a = frame.loc[overlap, cols].to_numpy(dtype="float64")
        b = cached.loc[overlap].to_numpy(dtype="float64")
        if len(overlap) == 0 or not np.allclose(a, b, rtol=1e-9, atol=1e-12, equal_nan=True):
            notes.append(f"{family} {sym}: tail recomputation disagreed with the cache; full")
            return compute(candles)
        spliced = pd.concat([cached.iloc[:old_n], frame.loc[candles.index[old_n:], cols]])
        return spliced, specs
