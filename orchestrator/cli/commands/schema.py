"""`osless schema [KIND]`: the JSON Schema of a kind of recipe, for editors; `--write [DIR]`: both
schemas written into DIR (default: the project's recipes/.schema, where `#:schema` lines point)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from orchestrator.errors import UsageError
from orchestrator.recipe.jsonschema import KINDS, PROJECT_SCHEMAS, schema_text, write_schemas


def run(args: argparse.Namespace, console: Console) -> int:
    if args.write is False:
        console.file.write(schema_text(args.kind or "service"))
        return 0
    if args.kind is not None or args.write in KINDS:  # `--write service` reads as a directory otherwise
        raise UsageError("--write writes both schemas", hint="`osless schema KIND` prints one")
    directory = args.project / PROJECT_SCHEMAS if args.write is True else Path(args.write)
    for path in write_schemas(directory):
        if not args.quiet:
            console.print(f"wrote {path}", markup=False)
    return 0
