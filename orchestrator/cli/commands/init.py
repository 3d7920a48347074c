"""`osless init [PATH...]`: a service recipe for each source directory, from what its language proposes.

PATHs are relative to the project root (`-C`, default the current directory), as a recipe's `source`
is, and must stay inside it; the default is the project root itself. Each recipe is written to
recipes/<name>.toml, never over an existing file; `--dry-run` prints them instead. Every PATH is
checked before anything is written: all recipes or none.

A new project needs no setup: the toolchain a recipe names, when the project lacks it and osless ships
it, is copied into recipes/toolchains/ (never over a file), and recipes/.schema/, when missing, gets the
JSON Schemas the recipes' `#:schema` lines name.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from orchestrator.errors import UsageError
from orchestrator.languages.proposals import read_text
from orchestrator.recipe.init import (
    TOOLCHAINS,
    InitPlan,
    check_name,
    plan_service,
    recipe_text,
    service_name,
    toolchain_copy,
)
from orchestrator.recipe.jsonschema import PROJECT_SCHEMAS, write_schemas
from orchestrator.recipe.loader import load_toolchains
from orchestrator.recipe.model import Toolchain

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

SCHEMAS_WHY = "the JSON Schemas the recipes' #:schema lines name, for editors"


def run(args: argparse.Namespace, console: Console) -> int:
    root = args.project.resolve()
    plans = _plans(root, args)
    shipped = {plan.toolchain.name: plan.toolchain for plan in plans if plan.shipped}
    for toolchain in shipped.values():
        _check_toolchain_free(root, toolchain)
    schemas = None if (root / PROJECT_SCHEMAS).exists() else f"{PROJECT_SCHEMAS.as_posix()}/"
    if args.dry_run:
        for toolchain in shipped.values():
            sys.stderr.write(f"would write {_toolchain_file(toolchain)} ({_shipped(toolchain)})\n")
        if schemas is not None:
            sys.stderr.write(f"would write {schemas} ({SCHEMAS_WHY})\n")
        for plan in plans:
            console.out(recipe_text(plan), end="", highlight=False)
        return 0
    for toolchain in shipped.values():
        _write_toolchain(root, toolchain)
        if not args.quiet:
            _say(console, f"wrote {_toolchain_file(toolchain)} ({_shipped(toolchain)})")
    if schemas is not None:
        write_schemas(root / PROJECT_SCHEMAS)
        if not args.quiet:
            _say(console, f"wrote {schemas} ({SCHEMAS_WHY})")
    for plan in plans:
        _write(root, plan, console, quiet=args.quiet)
    return 0


def _plans(root: Path, args: argparse.Namespace) -> list[InitPlan]:
    """A plan for each PATH, all checked before anything is written."""
    paths: list[str] = args.paths or ["."]
    if args.name is not None and len(paths) > 1:
        raise UsageError("--name names one service", hint="give one PATH with --name")
    toolchains = load_toolchains(root)
    claimed = _service_names(root)
    plans: list[InitPlan] = []
    for text in paths:
        source = _source_directory(root, text)
        if args.name is not None:
            check_name(args.name, "given with --name")
        name = args.name if args.name is not None else service_name(source)
        if not args.dry_run:
            _check_free(root, name, claimed, plans)
        plans.append(plan_service(root, source, name, toolchains))
    return plans


def _source_directory(root: Path, text: str) -> Path:
    """PATH as a directory inside the project root (relative paths are the root's, like `source`)."""
    if "\0" in text:
        raise UsageError(f"{text!r} holds a NUL character")
    path = (root / text).resolve()
    if not path.is_relative_to(root):
        raise UsageError(
            f"{text} leads outside the project, to {path}",
            hint=f"sources are directories inside the project root {root} (-C names another root)",
        )
    if not path.is_dir():
        raise UsageError(f"{text} is {'not a directory' if path.exists() else 'missing'} (in {root})")
    return path


def _service_names(root: Path) -> dict[str, str]:
    """The service names the project's recipes claim, by name: the file claiming each (recipes that
    cannot be read claim none; `osless list` reports them)."""
    names: dict[str, str] = {}
    for path in sorted((root / "recipes").glob("*.toml")):
        try:
            document = tomllib.loads(read_text(path) or "")
        except (tomllib.TOMLDecodeError, RecursionError):
            continue
        service = document.get("service")
        if isinstance(service, dict) and isinstance(service.get("name"), str):
            names.setdefault(service["name"], path.relative_to(root).as_posix())
    return names


def _check_free(root: Path, name: str, claimed: dict[str, str], plans: list[InitPlan]) -> None:
    """The name is nobody's, before anything is written: no recipe file of that name, no recipe
    claiming it, no other PATH of this command making it."""
    file = f"recipes/{name}.toml"
    if (root / file).exists():
        raise UsageError(
            f"{file} exists: osless init does not overwrite a recipe",
            hint="remove it first, pass --name for another service, or --dry-run to print the new recipe",
        )
    if name in claimed:
        raise UsageError(f"{claimed[name]} already defines the service {name!r}", hint="pass --name")
    if any(plan.name == name for plan in plans):
        raise UsageError(f"two PATHs make the service {name!r}", hint="init them one by one, with --name")


def _toolchain_file(toolchain: Toolchain) -> str:
    return f"{TOOLCHAINS.as_posix()}/{toolchain.name}.toml"


def _shipped(toolchain: Toolchain) -> str:
    return f"the {toolchain.name} toolchain osless ships"


def _check_toolchain_free(root: Path, toolchain: Toolchain) -> None:
    """The shipped toolchain's file name is free: a file of that name defines another toolchain."""
    file = _toolchain_file(toolchain)
    if (root / file).exists():
        raise UsageError(
            f"{file} defines no toolchain named {toolchain.name!r}, so osless init cannot write "
            f"{_shipped(toolchain)} there",
            hint=f"name that file after its toolchain, or copy {_shipped(toolchain)} into the project",
        )


def _write_toolchain(root: Path, toolchain: Toolchain) -> None:
    """The shipped toolchain's recipe in the project's recipes/toolchains/, created (never replaced)."""
    path = root / _toolchain_file(toolchain)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with path.open("x", encoding="utf-8") as stream:
            stream.write(toolchain_copy(toolchain))
    except FileExistsError:
        raise UsageError(f"{_toolchain_file(toolchain)} appeared meanwhile: osless init keeps it") from None


def _say(console: Console, line: str) -> None:
    console.print(line, markup=False, highlight=False)


def _write(root: Path, plan: InitPlan, console: Console, *, quiet: bool) -> None:
    """The recipe in recipes/<name>.toml, created (never replaced: a file that appeared meanwhile stays);
    quiet: what it wrote and what to check, without the next command."""
    path = root / "recipes" / f"{plan.name}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with path.open("x", encoding="utf-8") as stream:
            stream.write(recipe_text(plan))
    except FileExistsError:
        raise UsageError(
            f"recipes/{plan.name}.toml exists: osless init does not overwrite a recipe"
        ) from None
    proposal = plan.proposal
    platforms = len(plan.toolchain.platforms)
    lines = [
        f"wrote recipes/{plan.name}.toml: {proposal.language}, {proposal.found}; toolchain "
        f"{plan.toolchain.name}, every platform it builds for ({platforms})",
        *(f"  check: {note}" for note in proposal.notes),
        *(f"  check: needs {need.what}, which no toolchain of the project installs" for need in plan.unmet),
        *([] if quiet else [f"next: osless build {plan.name}"]),
    ]
    for line in lines:
        _say(console, line)
