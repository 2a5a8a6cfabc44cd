"""Forge cycles on a Dask distributed cluster (``--cluster tcp://HOST:PORT``).

One whole cycle per Dask task, run inside the task's worker process without a worker pool
(``ForgeOptions.inline``): the cluster's workers are the parallelism, one cycle each, so a
user with a cluster forges the whole universe at once. The task carries the settings without
any secret (``Settings.public_dump``: no exchange keys, the notification token blanked) and no
environment at all (no keys, no ``SINGULARITY_LIVE_CONFIRM``). Its workers write the registry and
read the candles (``data.dir``) themselves, so both must be reachable from every worker
(PostgreSQL and a shared directory on a real cluster). The database URL travels without its
password: a worker takes the registry's URL from its own ``SINGULARITY_DATABASE_URL`` when the
cluster's operator sets it there, otherwise it connects with the password-less URL and the
driver finds the password the usual way (PostgreSQL: ``PGPASSWORD`` or ``~/.pgpass`` on the
worker).

Limitation: a timed-out task is stopped by restarting its worker, which needs a nanny
(``dask worker`` starts one by default; a worker started with ``--no-nanny`` cannot be
restarted, and the timed-out cycle then runs on in it to its end, its run already failed).

The engine's loop never waits on Dask: the client is the synchronous one, which runs its own
event loop in its own thread; connecting, submitting and fetching a result run in a thread,
and a task's end reaches the engine's loop through a done-callback. A task past the cycle
timeout is cancelled and its worker restarted (a thread inside a worker cannot be stopped
otherwise); a task whose worker died is reported by Dask (``KilledWorker``); either way the
cycle's registry run is marked failed. Each cycle has a tag (stored in its run's options) by
which the engine finds its run: progress, and the failure of a dead or timed-out one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

from singularity.engine.scheduler import CycleResult

log = logging.getLogger(__name__)


def cluster_settings_doc(settings: Any) -> dict[str, Any]:
    """What a cluster task may know of the settings: no exchange key, no notification token,
    the database URL without its password (a worker fills it in: :func:`worker_settings`)."""
    doc = settings.public_dump()  # the database URL's password removed there
    notify = doc.get("engine", {}).get("notify")
    if isinstance(notify, dict):
        notify["telegram_token"] = None
    return doc


def worker_settings(settings_doc: dict[str, Any], environ: Any = None) -> Any:
    """The settings a worker runs a cycle with: the task's, with the registry URL taken from the
    worker's own ``SINGULARITY_DATABASE_URL`` when its operator set one (it holds the password)."""
    from singularity.config import DATABASE_URL_ENV, Settings

    env = os.environ if environ is None else environ
    url = env.get(DATABASE_URL_ENV)
    if url:
        settings_doc = {**settings_doc, "database": {**(settings_doc.get("database") or {}), "url": url}}
    return Settings.model_validate(settings_doc)


def forge_task(settings_doc: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """Runs on a Dask worker: one forge cycle in this process; its ``forge --json`` document."""
    from singularity.forge.cycle import ForgeOptions, run_forge

    settings = worker_settings(settings_doc)
    opts = ForgeOptions(**{**options, "inline": True, "progress": False})
    return run_forge(settings, opts, say=lambda _m: None).to_json_dict()


def _connect(address: str, timeout_s: float) -> Any:
    from distributed import Client

    return Client(address, timeout=timeout_s, set_as_default=False)


def _tagged(reg: Any, symbol: str, tag: str) -> dict[str, Any] | None:
    for r in reg.runs(symbol=symbol, limit=50):
        if ((r.settings or {}).get("options") or {}).get("tag") == tag:
            return {"id": r.id, "stage": r.stage, "stage_detail": r.stage_detail, "pid": r.pid,
                    "host": r.host, "stage_seconds": dict(r.stage_seconds or {}), "status": r.status,
                    "error": r.error}
    return None


def run_of_tag(url: str, symbol: str, tag: str, *, recover: bool = False) -> dict[str, Any] | None:
    """The registry run of the cycle tagged ``tag`` (None until its task has started it);
    ``recover``: the registry's crash recovery runs first (a run whose worker process is gone
    is failed as interrupted)."""
    from singularity.registry import Registry

    with Registry(url, recover=recover) as reg:
        return _tagged(reg, symbol, tag)


def fail_run(url: str, symbol: str, tag: str, error: str) -> int | None:
    """Mark the tagged cycle's run failed unless it has ended; opening the registry first runs
    its crash recovery (a run whose worker process is gone is failed as interrupted)."""
    from singularity.registry import Registry

    with Registry(url) as reg:  # opening recovers
        row = _tagged(reg, symbol, tag)
        if row is None:
            return None
        if row["status"] == "running":
            reg.finish_run(row["id"], status="failed", seconds=0.0, stage_seconds=row["stage_seconds"],
                           error=error[:2000])
    return int(row["id"])


class ClusterRunner:
    """Submits cycles to the cluster at ``address``; one client for the engine's lifetime."""

    def __init__(self, address: str, settings_doc: dict[str, Any], *, connect_timeout_s: float = 30.0) -> None:
        self.address = address
        self.settings_doc = settings_doc
        self.connect_timeout_s = connect_timeout_s
        self._client: Any = None
        self._lock = asyncio.Lock()

    async def client(self) -> Any:
        async with self._lock:
            if self._client is None:
                self._client = await asyncio.to_thread(_connect, self.address, self.connect_timeout_s)
            return self._client

    async def workers(self) -> int:
        """Workers the cluster has now (the pipeline status's pool row)."""
        c = await self.client()
        info = await asyncio.to_thread(c.scheduler_info)
        return len(info.get("workers", {}))

    async def run(self, symbol: str, options: dict[str, Any], *, timeout_s: float, registry_url: str,
                  on_start: Callable[[str], None] | None = None) -> CycleResult:
        """Run one cycle (``options``: ForgeOptions fields) on the cluster to its end or timeout."""
        t0 = time.monotonic()
        tag = options.get("tag") or uuid.uuid4().hex
        options = {**options, "tag": tag}
        client = await self.client()
        key = f"forge-{symbol.replace('/', '-')}-{tag}"
        fut = await asyncio.to_thread(client.submit, forge_task, self.settings_doc, options, key=key, pure=False)
        if on_start is not None:
            on_start(tag)
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[None] = loop.create_future()

        def done(_f: Any) -> None:  # on the client's thread
            loop.call_soon_threadsafe(lambda: ended.done() or ended.set_result(None))

        fut.add_done_callback(done)
        timed_out = False
        try:
            await asyncio.wait_for(asyncio.shield(ended), timeout_s)
        except TimeoutError:
            timed_out = True
        except asyncio.CancelledError:  # the engine stops: the task must not run on
            with contextlib.suppress(BaseException):
                await asyncio.shield(asyncio.to_thread(self._kill, fut))
            raise
        seconds = time.monotonic() - t0
        if timed_out:
            await asyncio.to_thread(self._kill, fut)
            error = f"timed out after {timeout_s:g} s on the cluster: task cancelled, its worker restarted"
            run_id = await asyncio.to_thread(fail_run, registry_url, symbol, tag, error)
            return CycleResult(symbol, "failed", run_id, None, error, seconds, None, 0)
        status, out, error = await asyncio.to_thread(_outcome, fut)
        if status == "succeeded" and out is not None:
            # an attempt whose worker died before Dask rescheduled the task left a run behind:
            # opening the registry fails it (its process is gone)
            row = await asyncio.to_thread(run_of_tag, registry_url, symbol, tag, recover=True)
            return CycleResult(symbol, "succeeded", out.get("run_id"), out.get("champion"), "", seconds, 0,
                               int(row["pid"]) if row else 0, out)
        run_id = await asyncio.to_thread(fail_run, registry_url, symbol, tag, f"on the cluster: {error}")
        return CycleResult(symbol, "failed", run_id, None, error, seconds, None, 0)

    def _kill(self, fut: Any) -> None:
        """Cancel the task and restart the worker running it (its thread cannot be stopped)."""
        c = self._client
        with contextlib.suppress(Exception):
            busy = [w for w, keys in c.processing().items() if fut.key in keys]
            c.cancel(fut, force=True)
            if busy:
                c.restart_workers(busy, timeout=60)

    async def close(self) -> None:
        c, self._client = self._client, None
        if c is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(c.close)


def _outcome(fut: Any) -> tuple[str, dict[str, Any] | None, str]:
    try:
        return "succeeded", fut.result(timeout=30), ""
    except Exception as e:  # the cycle's own error, or KilledWorker: a worker died running it
        name = type(e).__name__
        if name == "KilledWorker":
            return "failed", None, f"worker died running the cycle (KilledWorker): {e}"[:400]
        return "failed", None, f"{name}: {e}"[:400]
