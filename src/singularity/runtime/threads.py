"""Thread limits for compute workers.

Each worker process is one core's worth of work: BLAS/OpenMP, numba, LightGBM and torch must
not start their own thread pools inside it (two cores, eight processes each with eight threads
is how the earlier system thrashed). The environment variables are handed to the worker
BEFORE its interpreter imports anything heavy (loky's ``env=``); ``limit_threads`` then pins the
libraries already loaded, explicitly, rather than hoping a variable was read in time.
"""

from __future__ import annotations

import os
import sys
from typing import Any

THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "NUMBA_NUM_THREADS",
)

# threadpoolctl's limiter must stay referenced or the limit may be undone.
_LIMITER: list[Any] = []


def thread_env(n: int = 1) -> dict[str, str]:
    """Environment for a child process whose native libraries use ``n`` threads."""
    return {name: str(n) for name in THREAD_ENV_VARS}


def limit_threads(n: int = 1) -> None:
    """Limit every native thread pool of THIS process to ``n`` threads."""
    os.environ.update(thread_env(n))
    from threadpoolctl import threadpool_limits

    _LIMITER.clear()
    _LIMITER.append(threadpool_limits(limits=n))
    import numba

    # NUMBA_NUM_THREADS is read at numba import; set_num_threads caps it when already loaded.
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    if "torch" in sys.modules:  # never import torch just to limit it
        torch = sys.modules["torch"]
        torch.set_num_threads(n)
