"""Who a process is, in a way that survives pid reuse and host renames.

A pid alone is not an identity: after the process ends the kernel hands the number to another
one, and after a reboot every number starts again. A process is identified by (machine id,
boot id, pid, start time); the host name is only a label (it can change under a running system).
"""

from __future__ import annotations

import os
import socket
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import psutil

_START_TOLERANCE_S = 0.05  # create_time() has clock-tick resolution (10 ms)


def _read_first_line(*paths: str) -> str:
    for p in paths:
        try:
            line = Path(p).read_text().strip()
        except OSError:
            continue
        if line:
            return line
    return ""


@cache
def machine_id() -> str:
    """A stable id of this machine (systemd's machine-id), or the host name where there is none."""
    return _read_first_line("/etc/machine-id", "/var/lib/dbus/machine-id") or socket.gethostname()


def boot_id() -> str:
    """The id of this boot of the machine ('' where the platform has none)."""
    return _read_first_line("/proc/sys/kernel/random/boot_id")


def process_start_time(pid: int) -> float | None:
    """Start time of ``pid`` (seconds since the epoch), None if there is no such process."""
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess, ValueError):
        return None
    except psutil.AccessDenied:
        return None


def _zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False


@dataclass(frozen=True)
class ProcessIdentity:
    machine: str
    boot: str
    pid: int
    started: float | None

    @classmethod
    def current(cls) -> ProcessIdentity:
        import os

        return cls(machine_id(), boot_id(), os.getpid(), process_start_time(os.getpid()))


def is_gone(*, machine: str, boot: str, pid: int, started: float | None) -> bool | None:
    """Whether the recorded process has ended: True, False, or None if this machine cannot tell
    (the process ran on another machine)."""
    if machine and machine != machine_id():
        return None
    if boot and boot_id() and boot != boot_id():
        return True  # the machine rebooted since
    if pid <= 0:
        return True
    if _zombie(pid):
        return True  # ended, not yet reaped (an orphan waits for init to reap it)
    now_started = process_start_time(pid)
    if now_started is None:
        return not psutil.pid_exists(pid)
    if started is None:
        return False  # a live pid and nothing to compare it with: assume it is the same process
    return abs(now_started - started) > _START_TOLERANCE_S


PARENT_ENV = "SINGULARITY_ENGINE_PID"
"""Set by the engine's scheduler for a forge child: the pid whose death ends the child."""


def exit_with_parent_from_env(environ: dict[str, str] | None = None) -> bool:
    """When ``SINGULARITY_ENGINE_PID`` names this process's parent, start a daemon thread that
    ends the process once the parent is gone (re-parented): an engine killed with SIGKILL leaves
    no forge cycle running (its pool workers follow through their own watchdog). True if
    watching."""
    import threading

    from singularity.runtime.pool import _watch_parent

    raw = (os.environ if environ is None else environ).get(PARENT_ENV, "")
    if not raw.isdigit() or int(raw) != os.getppid():
        return False
    threading.Thread(target=_watch_parent, args=(int(raw),), name="singularity-engine-watchdog",
                     daemon=True).start()
    return True


def shutdown_executor(ex: ProcessPoolExecutor | None, *, kill: bool = False) -> None:
    """Shut a process pool down, killing its processes first when asked (a hung worker would
    otherwise hold ``shutdown`` forever)."""
    if ex is None:
        return
    if kill:
        for p in list(getattr(ex, "_processes", {}).values()):
            p.kill()
    ex.shutdown(wait=True, cancel_futures=True)
