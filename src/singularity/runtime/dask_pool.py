"""The same pool interface on a Dask distributed cluster (scale-out beyond one machine).

``DaskPool("tcp://HOST:PORT")`` connects a client to an existing scheduler. Shared arrays are
scattered to every worker once (``broadcast=True``) and handed to tasks as futures that Dask
resolves on the worker; ``SharedArrays.load()`` then finds them in the worker's cache. Each
batch is one Dask task, retried once by Dask if its worker dies.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import numpy as np

from singularity.runtime.pool import SharedArrays, WorkerError, _remember, split_batches

T = TypeVar("T")
R = TypeVar("R")


def _dask_init() -> None:
    from singularity.runtime.threads import limit_threads

    limit_threads(1)


def _dask_batch(
    fn: Callable[[Any], Any], batch: Sequence[Any], shared: dict[str, dict[str, np.ndarray]]
) -> list[Any]:
    for key, arrays in shared.items():  # futures resolved by Dask into the arrays
        _remember(key, arrays)
    return [fn(x) for x in batch]


class DaskPool:
    """``WorkerPool``'s interface over a Dask scheduler; a context manager."""

    def __init__(self, address: str, *, timeout: float = 30.0) -> None:
        try:
            from distributed import Client
        except ImportError as e:  # pragma: no cover - optional dependency
            raise WorkerError("--cluster needs dask[distributed] installed") from e
        try:
            self._client = Client(address, timeout=timeout)
        except OSError as e:
            raise WorkerError(f"cannot reach the Dask scheduler at {address}: {e}") from e
        self._client.run(_dask_init)
        self._shared: dict[str, Any] = {}

    @property
    def workers(self) -> int:
        info = self._client.scheduler_info()["workers"]
        return max(1, sum(int(w.get("nthreads", 1)) for w in info.values()))

    def share(self, arrays: Mapping[str, np.ndarray]) -> SharedArrays:
        key = uuid.uuid4().hex
        # A list, not a dict: Dask would use dict keys ("code", ...) as the data's keys, and a
        # later share of the same names would clash with (and release) this one.
        names = list(arrays)
        futures = self._client.scatter([arrays[n] for n in names], broadcast=True, hash=False)
        self._shared[key] = dict(zip(names, futures, strict=True))
        handle = SharedArrays(key=key, names=tuple(arrays))
        _remember(key, dict(arrays))  # the parent reads its own copy
        return handle

    def release(self, handle: SharedArrays) -> None:
        futs = self._shared.pop(handle.key, None)
        for fut in (futs or {}).values():
            fut.release()

    def map(
        self,
        fn: Callable[[T], R],
        items: Iterable[T],
        *,
        timeout: float | None = None,
        chunksize: int | None = None,
    ) -> list[R]:
        from distributed import wait

        items = list(items)
        batches = split_batches(items, self.workers, chunksize)
        futures = [
            self._client.submit(_dask_batch, fn, list(b), self._shared, pure=False, retries=1)
            for b in batches
        ]
        total = None if timeout is None else timeout * max(1, -(-len(batches) // self.workers))
        try:
            done = wait(futures, timeout=total)
        except TimeoutError as e:
            self._client.cancel(futures)
            raise WorkerError(f"Dask batches ran past their {timeout:g}s timeout") from e
        del done
        out: list[R] = []
        for part in self._client.gather(futures):
            out.extend(part)
        return out

    def close(self) -> None:
        for futs in self._shared.values():
            for fut in futs.values():
                fut.release()
        self._shared.clear()
        self._client.close()

    def __enter__(self) -> DaskPool:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
