"""Feature cache: Parquet files keyed by (data fingerprint, feature-settings hash, code version).

One entry per (settings, code version, universe symbols) holds the latest build. Looking data
up against it gives one of:

- ``hit``: same candles, the stored frames are returned as they are;
- ``prefix``: the new candles are the stored ones cut at one common time (an ``--until``
  before the end): the stored rows up to there are returned; valid because every feature is
  causal (``assert_causal`` proves the value at t does not depend on later candles);
- ``extend``: the stored candles are a prefix of the new ones (new candles appended): the
  factory recomputes only what the new bars affect and splices it on;
- ``window``: the request starts later than the entry, inside it (``forge --bars N`` slides
  its first candle every bar): the factory takes the stored candles before the request's first
  one, looks that longer series up (a hit, or an extension when candles were appended) and
  returns the request's rows. Values are those of a build from the entry's first candle (each
  feature at t reads candles up to t only; an indicator with unending memory, like an EMA,
  differs from a build started later by what it remembers of the older candles); the warm-up
  marks are those of a build on the request alone, so the same rows are ready either way. An
  entry whose span would exceed ``MAX_SPAN_FACTOR`` times the request is rebuilt from the
  request's first candle instead, so it cannot grow without limit;
- ``miss``: anything else, a full build.

Entries are evicted by age (unused for ``max_age_s``) and size (least recently used first
until the cache is under ``max_bytes``) after every store; ``singularity cache`` shows and prunes.

A targeted build (``FeatureFactory.build(..., targets=...)``: frames of some assets only, the
others feeding the cross-asset families through their candles) has its own entry: the targets are
part of the key and of the manifest, whose assets all list their candles but only the targets
their feature file, so an entry never offers a partial set of frames as a full build's.

Parquet files carry the data fingerprint in their name and the manifest (written last, all
writes atomic) names them, so a crash mid-write leaves the previous entry readable.

Several processes (forge cycles, the engine) share the cache. Each entry has a lock file beside
it: a lookup holds it shared, a store exclusive, so a writer never deletes a file that a reader
is reading or that another writer has just named in its manifest. A manifest that names a
missing or unreadable file (written by an older version, or damaged by hand) is a miss, and the
manifest is removed so that the next store repairs the entry.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from singularity import __version__
from singularity.features.catalogue import FeatureSpec
from singularity.features.settings import FeatureSettings
from singularity.storage import atomic_write_bytes, atomic_write_with, sweep_temp_files

MANIFEST = "manifest.json"


def data_fingerprint(candles: pd.DataFrame) -> str:
    """SHA-256 of the timestamps and OHLCV values, in order."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(candles.index.asi8).tobytes())
    cols = ["open", "high", "low", "close", "volume"]
    h.update(np.ascontiguousarray(candles[cols].to_numpy(dtype="float64")).tobytes())
    return h.hexdigest()


def settings_hash(settings: FeatureSettings) -> str:
    return hashlib.sha256(settings.model_dump_json().encode()).hexdigest()


@lru_cache(maxsize=1)
def code_version() -> str:
    """Package version plus a hash of the features package's sources: editing a feature's code
    invalidates what it computed."""
    h = hashlib.sha256(__version__.encode())
    for path in sorted(Path(__file__).parent.glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


MAX_SPAN_FACTOR = 2.0
"""A window lookup may use an entry spanning at most this many times the request's rows."""


def _universe_key(universe: dict[str, pd.DataFrame], targets: list[str] | None = None) -> str:
    # The symbols only: a request that starts later (a rolling window) finds the same entry.
    # A targeted build's key names its targets (a full build's key is unchanged).
    key = "|".join(universe)
    if targets is not None:
        key += "#targets:" + "|".join(targets)
    return hashlib.sha256(key.encode()).hexdigest()


def dir_size(path: Path) -> int:
    """Bytes of the regular files under ``path`` (0 if it vanished meanwhile)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(root, f)).st_size
    return total


@dataclass(frozen=True)
class EntryInfo:
    path: Path
    bytes: int
    last_used: float
    """Epoch seconds of the last store or hit (the manifest's modification time)."""


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as fh:  # a file object: np.savez would append ".npz" to a name
        np.savez(fh, **arrays)


def _safe(symbol: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in symbol)


@contextlib.contextmanager
def entry_lock(folder: Path, *, exclusive: bool) -> Iterator[None]:
    """Cross-process lock of one cache entry (a lock file beside its folder; flock is released
    by the kernel if the holder dies)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder.parent / f".{folder.name}.lock", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # closing releases the lock


class _Damaged(Exception):
    """A manifest names a file that is missing or unreadable."""


@dataclass(frozen=True)
class CacheEntry:
    """What a lookup found: stored frames, their catalogue and per-asset candle counts."""

    relation: str  # "hit", "prefix", "extend"
    frames: dict[str, pd.DataFrame]
    catalogue: list[FeatureSpec]
    rows: dict[str, int]
    resume: dict[str, dict[str, np.ndarray]]


class FeatureCache:
    def __init__(self, root: str | Path, *, max_bytes: int | None = None,
                 max_age_s: float | None = None) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s

    # -- housekeeping ----------------------------------------------------------------------

    def entries(self) -> list[EntryInfo]:
        out = []
        if not self.root.is_dir():
            return out
        for p in self.root.iterdir():
            if not p.is_dir() or p.name.startswith("."):
                continue
            try:
                used = (p / MANIFEST).stat().st_mtime
            except OSError:
                used = p.stat().st_mtime if p.exists() else 0.0
            out.append(EntryInfo(p, dir_size(p), used))
        return sorted(out, key=lambda e: e.last_used)

    def evict(self, *, max_bytes: int | None = None, max_age_s: float | None = None,
              keep: Path | None = None) -> list[EntryInfo]:
        """Remove entries unused for ``max_age_s``, then the least recently used until the
        cache holds at most ``max_bytes``; ``keep`` (the entry just written) stays. An entry in
        use by another process (its lock held) is skipped."""
        import time

        max_bytes = self.max_bytes if max_bytes is None else max_bytes
        max_age_s = self.max_age_s if max_age_s is None else max_age_s
        entries = self.entries()
        total = sum(e.bytes for e in entries)
        now = time.time()
        removed = []
        for e in entries:  # oldest first
            if keep is not None and e.path == keep:
                continue
            too_old = max_age_s is not None and now - e.last_used > max_age_s
            too_big = max_bytes is not None and total > max_bytes
            if not (too_old or too_big):
                continue
            if self._remove(e.path):
                total -= e.bytes
                removed.append(e)
        return removed

    def _remove(self, folder: Path) -> bool:
        import shutil

        fd = os.open(folder.parent / f".{folder.name}.lock", os.O_RDWR | os.O_CREAT, 0o666)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # being read or written right now
            # The lock file stays: removing it would let two processes lock different files.
            shutil.rmtree(folder, ignore_errors=True)
            return True
        finally:
            os.close(fd)

    # -- lookups ---------------------------------------------------------------------------

    def window_source(self, settings: FeatureSettings, universe: dict[str, pd.DataFrame],
                      targets: list[str] | None = None) -> dict[str, pd.DataFrame] | None:
        """For a request that starts inside the entry: the stored candles before its first
        candle followed by the request (a universe the entry covers as a hit or extension);
        None when the window relation does not apply."""
        folder = self.entry_dir(settings, universe, targets)
        try:
            with entry_lock(folder, exclusive=False):
                manifest = json.loads((folder / MANIFEST).read_text())
                assets = manifest["assets"]
                if list(assets) != list(universe) or manifest.get("targets") != targets:
                    return None
                out = {}
                for sym, candles in universe.items():
                    if len(candles) == 0:
                        return None
                    stored = pd.read_parquet(folder / assets[sym]["candles"])
                    start = candles.index[0]
                    if len(stored) == 0 or not stored.index[0] < start <= stored.index[-1]:
                        return None
                    before = stored.loc[stored.index < start, candles.columns]
                    if len(before) + len(candles) > MAX_SPAN_FACTOR * len(candles):
                        return None  # rebuild from the request: the entry re-anchors there
                    out[sym] = pd.concat([before, candles])
                return out
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def entry_dir(self, settings: FeatureSettings, universe: dict[str, pd.DataFrame],
                  targets: list[str] | None = None) -> Path:
        key = (f"{settings_hash(settings)[:16]}-{code_version()[:12]}-"
               f"{_universe_key(universe, targets)[:12]}")
        return self.root / key

    def lookup(
        self, settings: FeatureSettings, universe: dict[str, pd.DataFrame],
        targets: list[str] | None = None,
    ) -> CacheEntry | None:
        folder = self.entry_dir(settings, universe, targets)
        try:
            with entry_lock(folder, exclusive=False):
                return self._lookup(folder, universe, targets)
        except _Damaged:
            self._repair(folder)
            return None

    def _repair(self, folder: Path) -> None:
        with entry_lock(folder, exclusive=True):
            try:
                manifest = json.loads((folder / MANIFEST).read_text())
                names = [a[k] for a in manifest["assets"].values()
                         for k in ("file", "candles", "resume") if k in a]
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                names = None
            if names is None or not all((folder / n).is_file() for n in names):
                (folder / MANIFEST).unlink(missing_ok=True)

    def _lookup(self, folder: Path, universe: dict[str, pd.DataFrame],
                targets: list[str] | None) -> CacheEntry | None:
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError) as e:
            raise _Damaged(str(e)) from e
        try:
            entry = self._read_entry(folder, manifest, universe, targets)
        except (OSError, KeyError, TypeError, ValueError) as e:  # pyarrow errors are ValueErrors
            raise _Damaged(str(e)) from e
        if entry is not None:
            with contextlib.suppress(OSError):
                os.utime(folder / MANIFEST)  # last use, for eviction
        return entry

    def _read_entry(self, folder: Path, manifest: dict, universe: dict[str, pd.DataFrame],
                    targets: list[str] | None) -> CacheEntry | None:
        assets = manifest["assets"]
        if list(assets) != list(universe) or manifest.get("targets") != targets:
            return None
        own = list(universe) if targets is None else targets
        relations = set()
        for sym, candles in universe.items():
            stored_rows, fp = assets[sym]["rows"], assets[sym]["fingerprint"]
            n = len(candles)
            if n == stored_rows and data_fingerprint(candles) == fp:
                relations.add("hit")
            elif n > stored_rows and data_fingerprint(candles.iloc[:stored_rows]) == fp:
                relations.add("extend")
            elif n < stored_rows and n > 0:
                relations.add("prefix")  # confirmed below against the stored candles
            else:
                return None
        if len(relations - {"hit"}) > 1:
            return None  # some assets grew while others shrank: rebuild
        relation = next(iter(relations - {"hit"}), "hit")
        # a prefix must cut every asset at one common time: the cross-asset features of
        # one asset read the others, so only a common cut reproduces a fresh build
        cut = max(c.index[-1] for c in universe.values())
        frames = {}
        for sym in own:  # a targeted entry holds the targets' frames only
            candles = universe[sym]
            frame = pd.read_parquet(folder / assets[sym]["file"])
            if relation == "prefix":
                stored = pd.read_parquet(folder / assets[sym]["candles"])
                stored = stored.loc[stored.index <= cut]
                if not stored.equals(candles[stored.columns]):
                    return None
                frame = frame.iloc[: len(candles)]
            frames[sym] = frame
        catalogue = [FeatureSpec(**d) for d in manifest["catalogue"]]
        rows = {sym: assets[sym]["rows"] for sym in universe}
        resume = {}
        if relation == "extend":
            for sym in own:
                name = assets[sym].get("resume")
                if name:
                    with np.load(folder / name) as z:
                        resume[sym] = {k: z[k] for k in z.files}
        return CacheEntry(relation, frames, catalogue, rows, resume)

    def store(
        self,
        settings: FeatureSettings,
        universe: dict[str, pd.DataFrame],
        frames: dict[str, pd.DataFrame],
        catalogue: list[FeatureSpec],
        resume: dict[str, dict[str, np.ndarray]] | None = None,
        targets: list[str] | None = None,
    ) -> Path:
        """Store a build; with ``targets``, ``frames`` holds exactly those assets' frames."""
        folder = self.entry_dir(settings, universe, targets)
        if sorted(frames) != sorted(universe if targets is None else targets):
            raise ValueError(f"frames of {sorted(frames)} do not match the entry's targets")
        with entry_lock(folder, exclusive=True):
            self._store(folder, settings, universe, frames, catalogue, resume, targets)
        if self.max_bytes is not None or self.max_age_s is not None:
            self.evict(keep=folder)
        return folder

    def _store(
        self,
        folder: Path,
        settings: FeatureSettings,
        universe: dict[str, pd.DataFrame],
        frames: dict[str, pd.DataFrame],
        catalogue: list[FeatureSpec],
        resume: dict[str, dict[str, np.ndarray]] | None,
        targets: list[str] | None,
    ) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        sweep_temp_files(folder)  # under the exclusive lock: left by killed writers
        assets = {}
        for sym, candles in universe.items():
            fp = data_fingerprint(candles)
            # the candles themselves: a shorter request is checked against them exactly
            cname = f"{_safe(sym)}-{fp[:16]}.candles.parquet"
            atomic_write_with(folder / cname, lambda tmp, c=candles: c.to_parquet(tmp))
            assets[sym] = {"rows": len(candles), "fingerprint": fp, "candles": cname}
            if sym in frames:  # not for an asset that only feeds a targeted build
                name = f"{_safe(sym)}-{fp[:16]}.parquet"
                atomic_write_with(folder / name, lambda tmp, f=frames[sym]: f.to_parquet(tmp))
                assets[sym]["file"] = name
            if resume and sym in resume:
                rname = f"{_safe(sym)}-{fp[:16]}.resume.npz"
                atomic_write_with(folder / rname,
                                  lambda tmp, a=resume[sym]: _save_npz(tmp, a))
                assets[sym]["resume"] = rname
        manifest = {
            "settings_hash": settings_hash(settings),
            "code_version": code_version(),
            "assets": assets,
            **({"targets": targets} if targets is not None else {}),
            "catalogue": [spec.to_dict() for spec in catalogue],
        }
        atomic_write_bytes(folder / MANIFEST, json.dumps(manifest, indent=1).encode())
        # Safe under the exclusive lock: no reader is between its manifest and its files.
        keep = {a[k] for a in assets.values() for k in ("file", "candles", "resume") if k in a}
        for old in [*folder.glob("*.parquet"), *folder.glob("*.npz")]:
            if old.name not in keep:
                old.unlink(missing_ok=True)
        return folder
