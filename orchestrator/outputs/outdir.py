"""The output directory: usable or a usage error naming it, and held by one run at a time.

A run that writes into out/ (`build`, `assemble`) takes an exclusive `flock` on `out/.lock` and writes
its pid, start time and command line into it. A second run on the same out/ does not wait: it exits at
once (exit 2) naming the holder, so two runs never interleave their writes. The lock is released when
the process ends, however it ends (the kernel drops it), so a crashed run never leaves out/ locked;
the file itself stays.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from orchestrator.errors import UsageError

LOCK_FILE = ".lock"


def _unusable(path: Path, error: OSError) -> UsageError:
    reason = error.strerror or type(error).__name__
    return UsageError(
        f"the output directory {path} cannot be used: {reason}",
        hint="give a writable directory with --out DIR",
    )


def prepare(out_root: Path) -> None:
    """Create out_root when missing; a file in its place or a directory osless cannot write is a usage
    error naming it."""
    if out_root.exists() and not out_root.is_dir():
        raise UsageError(
            f"the output directory {out_root} is not a directory",
            hint="remove that file, or give another directory with --out DIR",
        )
    try:
        out_root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _unusable(out_root, error) from error


@contextlib.contextmanager
def locked(out_root: Path) -> Iterator[Path]:
    """Hold out_root for this run: exits at once (UsageError, exit 2) when another run holds it."""
    prepare(out_root)
    path = out_root / LOCK_FILE
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as error:
        raise _unusable(out_root, error) from error
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise _unusable(out_root, error) from error
            raise UsageError(
                f"the output directory {out_root} is in use by another osless run ({holder(path)})",
                hint="wait for that run to end, or give another directory with --out DIR",
            ) from None
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        record = f"pid {os.getpid()}\nstarted {stamp}\ncommand {' '.join(sys.argv)}\n".encode()
        try:
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, record, 0)
        except OSError as error:  # a full disk: the lock still holds, only the note about it is lost
            if error.errno != errno.ENOSPC:
                raise _unusable(out_root, error) from error
        yield path
    finally:
        os.close(descriptor)  # releases the lock


def holder(path: Path) -> str:
    """Who holds the lock, as its file says: 'pid N, started T'."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "unknown holder"
    fields = dict(line.partition(" ")[::2] for line in lines if " " in line)
    if "pid" not in fields:
        return "unknown holder"
    return f"pid {fields['pid']}" + (f", started {fields['started']}" if "started" in fields else "")
