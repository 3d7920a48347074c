"""`osless lock [NAME...]`: write each toolchain's lock (recipes/toolchains/<name>.lock), the exact
Debian packages a bootstrap then installs.

Each toolchain is bootstrapped without its lock into a scratch tarball (never imported: the next build
bootstraps from the new lock, which is part of the image's identity); a derived one's layer is planned
on its base's image (the engine's). What got installed is written in sorted, deterministic text, so
relocking an unchanged archive rewrites the same bytes.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from rich.console import Console

from orchestrator.bootstrap.lock import Lock, render
from orchestrator.bootstrap.lock_checks import lock_path
from orchestrator.cli import shared
from orchestrator.engine import Engine
from orchestrator.errors import UsageError, did_you_mean
from orchestrator.outputs.atomic import write_atomic
from orchestrator.recipe.model import Project, Toolchain
from orchestrator.stages.toolchain import TOOLCHAIN_WORK_DIR, make_lock


def run(args: argparse.Namespace, console: Console) -> int:
    project = shared.project(args)
    work_dir = shared.out_root(args, project) / TOOLCHAIN_WORK_DIR
    engine: Engine | None = None
    for name in _selected(project, args.toolchains):
        # Read again: a base locked just before is part of a derived toolchain's spec.
        project = shared.project(args)
        toolchain = project.toolchains[name]
        if toolchain.base is not None:
            engine = engine or Engine.connect()
            how = f"planning its layer on {toolchain.base.name}"
        else:
            how = "bootstrapping without a lock"
        if not args.quiet:
            console.print(f"toolchain {name}: {how}", markup=False, highlight=False)
        lock = make_lock(toolchain, work_dir, _progress(console, name, quiet=args.quiet), engine=engine)
        path = lock_path(toolchain)
        before = path.read_text() if path.is_file() else None
        text = render(lock)
        write_atomic(path, text.encode())
        shown = path.relative_to(project.root).as_posix()
        console.print(
            f"{shown}: {_summary(lock, toolchain.lock, before == text)}", markup=False, highlight=False
        )
    return 0


def _progress(console: Console, name: str, *, quiet: bool) -> Callable[[str], None]:
    """A toolchain's progress lines (none with -q)."""

    def show(text: str) -> None:
        if not quiet:
            console.print(f"  {name}: {text}", markup=False, highlight=False)

    return show


def _selected(project: Project, names: list[str]) -> list[str]:
    """The named toolchains, or every bootstrapped or derived one; bases before the toolchains that
    extend them (a derived toolchain's lock depends on its base's)."""
    lockable = [n for n, t in project.toolchains.items() if t.bootstrap is not None or t.base is not None]
    for name in names:
        if name not in project.toolchains:
            known = f"known: {', '.join(project.toolchains) or 'none'}"
            raise UsageError(
                f"unknown toolchain {name!r}", hint=did_you_mean(name, project.toolchains) or known
            )
        if name not in lockable:
            raise UsageError(
                f"toolchain {name} uses the image {project.toolchains[name].image} as is: nothing to lock",
                hint="a lock is for toolchains with [toolchain.bootstrap] or `extends`",
            )
    selected = list(dict.fromkeys(names)) if names else sorted(lockable)
    if not selected:
        raise UsageError("no toolchain to lock", hint="locks are for toolchains with [toolchain.bootstrap]")
    return sorted(selected, key=lambda name: _depth(project.toolchains[name]))


def _depth(toolchain: Toolchain) -> int:
    return 0 if toolchain.base is None else 1 + _depth(toolchain.base)


def _summary(lock: Lock, previous: Lock | None, unchanged: bool) -> str:
    """What the new lock holds and, against the previous one, how many versions changed."""
    what = f"{len(lock.packages)} packages"
    if lock.libraries:
        what += f", {len(lock.libraries)} libraries"
    if lock.unpack:
        what += f", {len(lock.unpack)} unpacked"
    if lock.release_date:
        what += f" ({lock.suite} of {lock.release_date})"
    if unchanged:
        return f"{what}, unchanged"
    if previous is None:
        return f"{what}, written"
    changed = sum(1 for p, v in lock.packages.items() if previous.packages.get(p) not in (None, v))
    added = len(lock.packages.keys() - previous.packages.keys())
    removed = len(previous.packages.keys() - lock.packages.keys())
    return f"{what}, updated: {changed} versions changed, {added} packages added, {removed} removed"
