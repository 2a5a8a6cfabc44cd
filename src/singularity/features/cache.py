"""Feature cache: Parquet files keyed by (data fingerprint, feature-settings hash, code version).

One entry per (settings, code version, universe: symbols and their first candles) holds the
latest build. Looking data up against it gives one of:

- ``hit``: same candles, the stored frames are returned as they are;
- ``prefix``: the new candles are the stored ones cut at one common time (an ``--until``
  before the end): the stored rows up to there are returned; valid because every feature is
  causal (``assert_causal`` proves the value at t does not depend on later candles);
- ``extend``: the stored candles are a prefix of the new ones (new candles appended): the
  factory recomputes only what the new bars affect and splices it on;
- ``miss``: anything else, a full build.

Parquet files carry the data fingerprint in their name and the manifest (written last, all
writes atomic) names them, so a crash mid-write leaves the previous entry readable.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from singularity import __version__
from singularity.features.catalogue import FeatureSpec
from singularity.features.settings import FeatureSettings
from singularity.storage import atomic_write_bytes, atomic_write_with

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


def _universe_key(universe: dict[str, pd.DataFrame]) -> str:
    parts = [f"{s}@{int(df.index[0].value) if len(df) else 0}" for s, df in universe.items()]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as fh:  # a file object: np.savez would append ".npz" to a name
        np.savez(fh, **arrays)


def _safe(symbol: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in symbol)


@dataclass(frozen=True)
class CacheEntry:
    """What a lookup found: stored frames, their catalogue and per-asset candle counts."""

    relation: str  # "hit", "prefix", "extend"
    frames: dict[str, pd.DataFrame]
    catalogue: list[FeatureSpec]
    rows: dict[str, int]
    resume: dict[str, dict[str, np.ndarray]]


class FeatureCache:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def entry_dir(self, settings: FeatureSettings, universe: dict[str, pd.DataFrame]) -> Path:
        key = f"{settings_hash(settings)[:16]}-{code_version()[:12]}-{_universe_key(universe)[:12]}"
        return self.root / key

    def lookup(
        self, settings: FeatureSettings, universe: dict[str, pd.DataFrame]
    ) -> CacheEntry | None:
        folder = self.entry_dir(settings, universe)
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        assets = manifest["assets"]
        if list(assets) != list(universe):
            return None
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
        for sym, candles in universe.items():
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
            for sym in universe:
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
    ) -> Path:
        folder = self.entry_dir(settings, universe)
        folder.mkdir(parents=True, exist_ok=True)
        assets = {}
        for sym, candles in universe.items():
            fp = data_fingerprint(candles)
            name = f"{_safe(sym)}-{fp[:16]}.parquet"
            frame = frames[sym]
            atomic_write_with(folder / name, lambda tmp, f=frame: f.to_parquet(tmp))
            # the candles themselves: a shorter request is checked against them exactly
            cname = f"{_safe(sym)}-{fp[:16]}.candles.parquet"
            atomic_write_with(folder / cname, lambda tmp, c=candles: c.to_parquet(tmp))
            assets[sym] = {"rows": len(candles), "fingerprint": fp, "file": name,
                           "candles": cname}
            if resume and sym in resume:
                rname = f"{_safe(sym)}-{fp[:16]}.resume.npz"
                atomic_write_with(folder / rname,
                                  lambda tmp, a=resume[sym]: _save_npz(tmp, a))
                assets[sym]["resume"] = rname
        manifest = {
            "settings_hash": settings_hash(settings),
            "code_version": code_version(),
            "assets": assets,
            "catalogue": [spec.to_dict() for spec in catalogue],
        }
        atomic_write_bytes(folder / MANIFEST, json.dumps(manifest, indent=1).encode())
        keep = {a[k] for a in assets.values() for k in ("file", "candles", "resume") if k in a}
        for old in [*folder.glob("*.parquet"), *folder.glob("*.npz")]:
            if old.name not in keep:
                old.unlink(missing_ok=True)
        return folder
