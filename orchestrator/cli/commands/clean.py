"""`osless clean [--dry-run] [--all-toolchains] [--all-projects]`: show, with sizes, and remove what
osless left for a project (host/clean.py decides what is osless's): its out/ directory, containers of
osless runs that are gone, its compiler cache and workspace volumes, its services' images loaded into
the engine, and superseded toolchain images. Nothing without osless's marks is touched.

The out/ directory is held (its lock) while cleaning, so that no build of it starts meanwhile; an out/
that a running osless holds is refused (exit 2). What the engine would not remove (a container started
meanwhile uses it) is said, and the command exits 4.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
from collections.abc import Iterable

from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table

from orchestrator.cli import shared
from orchestrator.engine import Engine, Owner
from orchestrator.errors import EngineError
from orchestrator.host import clean
from orchestrator.outputs import outdir
from orchestrator.outputs.sizes import human_size
from orchestrator.stages.toolchain import TOOLCHAIN_WORK_DIR, recorded_images

# Containers first: they free the volumes and images they use; out/ last, while its lock is held.
REMOVAL_ORDER = ("container", "volume", "image", "toolchain", "out")


def run(args: argparse.Namespace, console: Console) -> int:
    project = shared.project(args)
    out_root = shared.out_root(args, project)
    scope = clean.project_scope(
        project,
        host=socket.gethostname(),
        made_images=recorded_images(out_root / TOOLCHAIN_WORK_DIR),
        all_toolchains=args.all_toolchains,
        all_projects=args.all_projects,
    )
    engine = Engine.connect()
    if args.dry_run:
        listing = clean.list_out(out_root, check_lock=True)
        plan = clean.plan(engine.usage(), listing, scope, alive=Owner.alive)
        _print_plan(console, plan, dry_run=True, quiet=args.quiet)
        if listing is not None and listing.holder is not None:
            console.print(
                f"osless clean would refuse: {out_root} is in use by another osless run ({listing.holder})",
                markup=False,
            )
        return 0
    held = outdir.locked(out_root) if out_root.is_dir() else contextlib.nullcontext()
    with held:  # UsageError (exit 2) when a running osless holds it
        plan = clean.plan(
            engine.usage(), clean.list_out(out_root, check_lock=False), scope, alive=Owner.alive
        )
        _print_plan(console, plan, dry_run=False, quiet=args.quiet)
        failed = _remove(engine, plan, console)
    reclaimed = clean.freed(item for item in plan.remove if item not in failed)
    console.print(
        f"reclaimed {human_size(reclaimed)} at least (layers other images share stay)", markup=False
    )
    if failed:
        raise EngineError(
            f"{len(failed)} of {len(plan.remove)} could not be removed",
            hint="they are named above; run `osless clean` again once what uses them has ended",
        )
    return 0


def _name_column() -> Column:
    """Names (paths, ids) wrap rather than lose their middle to an ellipsis on a narrow terminal."""
    return Column("name", overflow="fold")


def _print_plan(console: Console, plan: clean.Plan, *, dry_run: bool, quiet: bool) -> None:
    """The items to remove and those kept, as tables; quiet: the dry run's total only."""
    if quiet:
        if dry_run:
            total = f"{len(plan.remove)} items, {human_size(plan.size)} at least"
            console.print(f"osless clean would remove {total}", markup=False)
        return
    if plan.remove:
        title = "osless clean: would remove" if dry_run else "osless clean: removing"
        table = Table("kind", _name_column(), "size", "why", title=title, title_justify="left")
        for item in _in_order(plan.remove):
            table.add_row(item.kind, escape(item.name), _size(item), escape(item.why))
        table.add_section()
        table.add_row("total", f"{len(plan.remove)} items", human_size(plan.size), "what is freed, at least")
        console.print(table)
    else:
        console.print("osless clean: nothing of osless's to remove", markup=False)
    if plan.keep:
        table = Table("kind", _name_column(), "size", "kept because", title="kept", title_justify="left")
        for item in plan.keep:
            table.add_row(item.kind, escape(item.name), _size(item), escape(item.why))
        console.print(table)
    for note in plan.notes:
        console.print(note, markup=False)


def _in_order(items: Iterable[clean.Item]) -> list[clean.Item]:
    return sorted(items, key=lambda item: (REMOVAL_ORDER.index(item.kind), item.name))


def _size(item: clean.Item) -> str:
    if item.size == clean.UNKNOWN_SIZE:
        return "?"
    return human_size(item.size) + (f" ({human_size(item.shared)} shared)" if item.shared else "")


def _remove(engine: Engine, plan: clean.Plan, console: Console) -> list[clean.Item]:
    """Remove each item of the plan, in REMOVAL_ORDER; the items the engine (or the file system)
    would not remove, each said with its reason."""
    failed = []
    for item in _in_order(plan.remove):
        try:
            reason = _remove_one(engine, item)
        except (EngineError, OSError) as error:
            reason = error.message if isinstance(error, EngineError) else f"{error.strerror or error}"
        if reason is not None:
            failed.append(item)
            console.print(f"could not remove {item.kind} {item.name}: {reason}", markup=False)
    return failed


def _remove_one(engine: Engine, item: clean.Item) -> str | None:
    if item.kind == "container":
        return engine.remove_container(item.ref)
    if item.kind == "volume":
        return engine.remove_volume(item.ref)
    if item.kind == "out":
        clean.remove_out(item)
        return None
    return engine.remove_unused_image(item.ref)  # a service's image or a toolchain's
