"""A toolchain held to its lock (lock.py reads and writes the file): where the lock is, a recipe changed
since its lock was made (an error naming what changed), a bootstrap or layer that installed other
versions than the locked ones, and the hint every such error ends with: the command that updates the
lock. Pure: no processes, no engine; make.py and the toolchain stage call these checks.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from orchestrator.bootstrap.lock import lock_file_name, mismatches, relock_command, shown
from orchestrator.bootstrap.lock import recipe_changes as lock_recipe_changes
from orchestrator.bootstrap.spec import (
    bootstrap_packages,
    library_packages,
    recipe_spec_hash,
    unpack_packages,
)
from orchestrator.errors import ToolchainError
from orchestrator.recipe.model import Toolchain


def lock_path(toolchain: Toolchain) -> Path:
    """Where the toolchain's lock is (or would be): `<name>.lock` beside its recipe."""
    return toolchain.file.parent / lock_file_name(toolchain.name)


def relock_hint(toolchain: Toolchain) -> str:
    """How to update the toolchain's lock: the hint of every lock error."""
    command = relock_command(toolchain.name)
    return f"run `{command}` to update {toolchain.name}.lock, then review and commit it"


def check_lock(toolchain: Toolchain) -> None:
    """A lock made from another recipe than the toolchain's (its packages, suite or base changed since)
    is an error naming what changed: the lock would install what the recipe no longer says."""
    lock = toolchain.lock
    if lock is None or lock.spec == recipe_spec_hash(toolchain):
        return
    added, removed = lock_recipe_changes(lock, requested_packages(toolchain))
    changes = [
        *([f"asks for {', '.join(added)} now"] if added else []),
        *([f"no longer asks for {', '.join(removed)}"] if removed else []),
    ] or [
        f"its base {toolchain.base.name} changed (another lock or recipe)"
        if toolchain.base is not None
        else "its suite, mirror, components, variant or wheels changed"
    ]
    raise ToolchainError(
        f"toolchain {toolchain.name}: {toolchain.file.name} changed since {toolchain.name}.lock was "
        f"written: {'; '.join(changes)}",
        hint=relock_hint(toolchain),
    )


def requested_packages(toolchain: Toolchain) -> list[str]:
    """What the recipe asks for, as a lock records it."""
    return sorted({*bootstrap_packages(toolchain), *library_packages(toolchain), *unpack_packages(toolchain)})


def check_installed(toolchain: Toolchain, locked: Mapping[str, str], installed: Mapping[str, str]) -> None:
    """The packages a locked bootstrap (or layer) installed must be exactly the locked ones."""
    if differences := mismatches(locked, installed):
        raise ToolchainError(
            f"toolchain {toolchain.name}: the packages installed differ from {toolchain.name}.lock: "
            f"{shown(differences)}",
            hint=f"the archive changed since the lock was made: {relock_hint(toolchain)}",
        )


@contextmanager
def hint_relock(toolchain: Toolchain) -> Iterator[None]:
    """A locked toolchain's apt failures end with how to update its lock (a version the archive
    dropped is the likely reason)."""
    try:
        yield
    except ToolchainError as error:
        if toolchain.lock is None:
            raise
        hint = f"{error.hint}; " if error.hint else ""
        raise ToolchainError(
            error.message, hint=f"{hint}if the archive dropped a locked version: {relock_hint(toolchain)}"
        ) from error
