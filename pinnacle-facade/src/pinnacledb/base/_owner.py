"""Who writes a journal job, and whether that process is still running.

A RUNNING journal job older than the gc grace period normally belongs to a process that died
(see :mod:`pinnacledb.gc`). A slow but live writer, e.g. an insert of many large by-reference
values that takes longer than the grace period, looks the same by age alone. So every journal
job records its owner (host identity, pid, process start time) and gc, when it runs on the
same host, asks the operating system whether that process still runs. On another host, or
where the answer is not known, gc falls back to the age rule.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Final

from pinnacle_protocols.records import JSONValue

__all__ = ["OWNER_KEY", "current_owner", "owner_alive"]

#: Key of the owner mapping in a journal job's ``args``.
OWNER_KEY: Final = "owner"


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return ""


def _host_id() -> str:
    """Hostname plus, on Linux, the kernel boot id and the pid namespace (containers differ)."""
    try:
        pidns = os.readlink("/proc/self/ns/pid")
    except OSError:
        pidns = ""
    return "|".join((socket.gethostname(), _read("/proc/sys/kernel/random/boot_id"), pidns))


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks) of ``pid`` from /proc, or None if it does not exist."""
    text = _read(f"/proc/{pid}/stat")
    if not text or ")" not in text:
        return None
    rest = text[text.rindex(")") + 2 :].split()
    try:
        return rest[0], int(rest[19])
    except (IndexError, ValueError):
        return None


_cache: dict[int, dict[str, JSONValue]] = {}


def current_owner() -> dict[str, JSONValue]:
    """This process as a journal job owner (computed once per pid, so forks get their own)."""
    pid = os.getpid()
    owner = _cache.get(pid)
    if owner is None:
        stat = _stat(pid)
        owner = {"host": _host_id(), "pid": pid, "start": None if stat is None else stat[1]}
        _cache.clear()
        _cache[pid] = owner
    return dict(owner)


def owner_alive(owner: object) -> bool | None:
    """True if the owning process still runs, False if it is gone, None if not known here.

    Not known: no owner recorded (older jobs, other writers), another host, or a platform
    where a process cannot be probed without side effects (Windows).
    """
    if not isinstance(owner, dict):
        return None
    pid, start = owner.get("pid"), owner.get("start")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return None
    if owner.get("host") != current_owner()["host"]:
        return None
    if pid == os.getpid():
        return start == current_owner()["start"]
    if isinstance(start, int) and not isinstance(start, bool):
        stat = _stat(pid)
        if stat is None:
            return False
        state, started = stat
        return state not in ("Z", "X", "x") and started == start  # zombie, dead or pid reused
    if sys.platform == "win32":  # os.kill would terminate the process there
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    except OSError:
        return None
    return True
