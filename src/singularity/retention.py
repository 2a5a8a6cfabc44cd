"""What a long-running installation accumulates in its data directory, and its pruning.

Feature caches are evicted by size and age (``features.cache``); artifacts, reports and per-run
logs are removed past ``retention.generated_days``, except those of a strategy that is still a
champion (the engine trades it; its report is what a person reads about it). Temporary files
of killed writers older than an hour are removed everywhere under the data directory (no write
lasts that long; the stores sweep their own under their locks sooner).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from singularity.config import Settings
from singularity.features.cache import MANIFEST, FeatureCache, dir_size
from singularity.storage import TEMP_SUFFIX

STALE_TEMP_S = 3600.0
GENERATED = ("artifacts", "reports", "runs")


@dataclass(frozen=True)
class Usage:
    kind: str
    path: Path
    items: int
    bytes: int
    oldest: float | None
    newest: float | None


def _mtime(p: Path) -> float:
    """Newest modification time under ``p`` (a file or a folder)."""
    try:
        newest = p.stat().st_mtime
    except OSError:
        return 0.0
    if p.is_dir():
        for root, _d, files in os.walk(p):
            for f in files:
                try:
                    newest = max(newest, os.stat(os.path.join(root, f)).st_mtime)
                except OSError:
                    continue
    return newest


def _size(p: Path) -> int:
    try:
        return dir_size(p) if p.is_dir() else p.stat().st_size
    except OSError:
        return 0


def feature_cache_roots(data_dir: Path) -> list[Path]:
    """Every folder holding feature-cache entries (forge, engine, CLI caches)."""
    roots = {m.parent.parent for m in data_dir.glob(f"**/{MANIFEST}")
             if (m.parent.parent / f".{m.parent.name}.lock").exists()}
    return sorted(roots)


def stale_temp_files(data_dir: Path, older_than_s: float = STALE_TEMP_S) -> list[Path]:
    cutoff = time.time() - older_than_s
    out = []
    for p in data_dir.glob(f"**/.*{TEMP_SUFFIX}"):
        try:
            if p.is_file() and p.stat().st_mtime < cutoff:
                out.append(p)
        except OSError:
            continue
    return sorted(out)


def usage(settings: Settings) -> list[Usage]:
    data_dir = Path(settings.data.dir)
    rows = []
    for root in feature_cache_roots(data_dir):
        entries = FeatureCache(root).entries()
        rows.append(Usage("feature cache", root, len(entries), sum(e.bytes for e in entries),
                          min((e.last_used for e in entries), default=None),
                          max((e.last_used for e in entries), default=None)))
    for kind in GENERATED:
        d = data_dir / kind
        items = sorted(d.iterdir()) if d.is_dir() else []
        times = [_mtime(p) for p in items]
        rows.append(Usage(kind, d, len(items), sum(_size(p) for p in items),
                          min(times, default=None), max(times, default=None)))
    temps = stale_temp_files(data_dir)
    rows.append(Usage("stale temp files", data_dir, len(temps), sum(_size(p) for p in temps),
                      min((_mtime(p) for p in temps), default=None),
                      max((_mtime(p) for p in temps), default=None)))
    return rows


_RUN = re.compile(r"run-(\d+)")
_STRATEGY = re.compile(r"strategy-(\d+)")


def _protected(names: Iterable[str], champion_runs: set[int], champions: set[int]) -> set[str]:
    keep = set()
    for n in names:
        if (m := _RUN.match(n)) and int(m[1]) in champion_runs:
            keep.add(n)
        if (m := _STRATEGY.match(n)) and int(m[1]) in champions:
            keep.add(n)
    return keep


@dataclass(frozen=True)
class Pruned:
    kind: str
    path: Path
    bytes: int


def prune(settings: Settings, *, dry_run: bool = False, champions: set[int] | None = None,
          champion_runs: set[int] | None = None, now: float | None = None) -> list[Pruned]:
    """Apply the retention settings; return what was (or, dry, would be) removed."""
    r = settings.retention
    data_dir = Path(settings.data.dir)
    now = time.time() if now is None else now
    out: list[Pruned] = []
    for root in feature_cache_roots(data_dir):
        cache = FeatureCache(root)
        if dry_run:
            entries = cache.entries()
            total = sum(e.bytes for e in entries)
            for e in entries:
                if now - e.last_used > r.feature_cache_days * 86_400 or total > r.feature_cache_mb * 2**20:
                    out.append(Pruned("feature cache", e.path, e.bytes))
                    total -= e.bytes
        else:
            for e in cache.evict(max_bytes=r.feature_cache_mb * 2**20,
                                 max_age_s=r.feature_cache_days * 86_400):
                out.append(Pruned("feature cache", e.path, e.bytes))
    cutoff = now - r.generated_days * 86_400
    for kind in GENERATED:
        d = data_dir / kind
        if not d.is_dir():
            continue
        items = sorted(d.iterdir())
        keep = _protected((p.name for p in items), champion_runs or set(), champions or set())
        for p in items:
            if p.name in keep or _mtime(p) >= cutoff:
                continue
            out.append(Pruned(kind, p, _size(p)))
            if not dry_run:
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
    for p in stale_temp_files(data_dir):
        out.append(Pruned("stale temp files", p, _size(p)))
        if not dry_run:
            p.unlink(missing_ok=True)
    return out
