"""One owner per output folder: a kernel-held lock on ``out/.lock``.

``fcntl.flock`` is released by the kernel when the owning process exits, however it exits
(a crash or SIGKILL included), so a dead run never leaves a stale lock. The lock file holds
the owner's pid and command line, for the message a second run prints. The file stays in the
folder after the run; only the kernel lock says whether the folder is in use.
"""
from __future__ import annotations

import fcntl
import os
import sys

from ..validation import UsageError

__all__ = ["FolderLocked", "RunLock", "lock_holder"]

LOCK_NAME = ".lock"


class FolderLocked(UsageError):
    """Another process owns the output folder."""


def _describe(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip() or "another process"
    except OSError:
        return "another process"


def lock_holder(out: str) -> str | None:
    """Who holds ``out``'s lock right now (from its lock file), or None if it is free.
    Looks without creating anything, so a refused command leaves the folder as it was."""
    path = os.path.join(out, LOCK_NAME)
    if not os.path.isfile(path):
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _describe(path)
    finally:
        os.close(fd)               # closing drops the probe's own shared lock
    return None


class RunLock:
    """``with RunLock(out):`` owns ``out`` (created if needed) for the block, or raises
    :class:`FolderLocked` at once, naming the running process."""

    def __init__(self, out: str):
        self.out = out
        self._fd: int | None = None

    def __enter__(self) -> "RunLock":
        path = os.path.join(self.out, LOCK_NAME)
        try:
            os.makedirs(self.out, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise UsageError(f"--out {self.out}: cannot write there ({err.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FolderLocked(f"--out {self.out} is in use by {_describe(path)}; "
                               "choose another folder or wait for that run to end") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} ({' '.join(sys.argv)[:200]})\n".encode())
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.close(self._fd)     # the kernel drops the lock with the last descriptor
            self._fd = None
