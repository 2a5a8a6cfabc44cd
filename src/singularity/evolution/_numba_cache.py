"""Keeps numba's on-disk cache of the fused evaluator consistent with the code it inlines.

numba's ``cache=True`` checks only the source file of the cached function itself: when an
inlined dependency changes (the backtest kernel, the primitives' kernels, the fitness code),
``run_plan`` would keep running the old compiled version. At import we compare a digest of
those sources with the one recorded beside the cache, and drop the dependent cache files when
it differs, so they recompile once.
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_DEPENDENCIES = (
    _HERE / "primitives.py",
    _HERE / "kernels.py",
    _HERE / "fitness.py",
    _HERE / "interpreter.py",
    _HERE.parent / "backtest" / "kernel.py",
)
_DEPENDENT_PREFIXES = ("interpreter.", "fitness.", "kernels.")


def refresh_stale_cache() -> None:
    cache_dir = _HERE / "__pycache__"
    digest = hashlib.sha256()
    for path in _DEPENDENCIES:
        with contextlib.suppress(OSError):
            digest.update(path.read_bytes())
    stamp = cache_dir / "numba-deps.sha256"
    want = digest.hexdigest()
    with contextlib.suppress(OSError):
        if stamp.read_text() == want:
            return
    with contextlib.suppress(OSError):  # another process may be doing the same: harmless
        cache_dir.mkdir(exist_ok=True)
        for f in cache_dir.iterdir():
            if f.name.startswith(_DEPENDENT_PREFIXES) and f.suffix in (".nbi", ".nbc"):
                f.unlink(missing_ok=True)
        from singularity.storage import atomic_write_bytes

        atomic_write_bytes(stamp, want.encode())
