"""A service's smoke checks: `[smoke]` (one) or `[[smoke]]` (several), each with its arguments, stdin,
project files for the run, timeout and limits, and what it must print and exit with, per platform if
need be (docs/recipes.md, "[smoke]"). The files a check names must be small regular files inside the
project.
"""

from __future__ import annotations

import posixpath
import stat
from pathlib import Path

from orchestrator.recipe.convert import (
    as_bool,
    as_check_name,
    as_duration,
    as_exit_code,
    as_regex,
    as_str,
    as_str_list,
    as_str_table,
    as_table,
    as_text,
    shown,
)
from orchestrator.recipe.model import (
    SMOKE_FILE_LIMIT,
    SMOKE_FILES_LIMIT,
    SMOKE_LIMITS,
    MiB,
    SmokeCheck,
    SmokeExpect,
    SmokeSpec,
)
from orchestrator.recipe.reader import Table
from orchestrator.recipe.shared import known_platform, read_limits


def read_smoke(doc: Table, root: Path, output: str) -> SmokeSpec:
    """`[smoke]` (one check) or `[[smoke]]` (several, run in order); none: the image must exit 0.
    `allow_root` is about the image, so one check that sets it allows root for all."""
    tables, several = doc.tables("smoke")
    checks: list[SmokeCheck] = []
    allow_root = False
    for number, table in enumerate(tables, start=1):
        check = _read_smoke_check(table, root, output, f"check {number}" if several else "smoke")
        allow_root |= table.get("allow_root", as_bool, False)
        if any(other.name == check.name for other in checks):
            table.file.problem(
                (*table.key, "name"), f"check {check.name!r} is named twice", "give each check its own name"
            )
        checks.append(check)
    return SmokeSpec(checks=tuple(checks) or (SmokeCheck(name="smoke"),), allow_root=allow_root)


def _read_smoke_check(table: Table, root: Path, output: str, name: str) -> SmokeCheck:
    stdin = table.optional("stdin", as_str)
    stdin_file = _read_project_file(table, "stdin_file", root)
    if stdin is not None and "stdin_file" in table.data:
        table.file.problem((*table.key, "stdin_file"), "give stdin or stdin_file, not both")
    files = _read_smoke_files(table, root, output)
    inputs = (*files.values(), *((stdin_file,) if stdin_file else ()))
    if sum(_size(path) for path in inputs) > SMOKE_FILES_LIMIT:
        table.file.problem(
            (*table.key, "files"),
            f"the check's files and stdin_file hold more than {SMOKE_FILES_LIMIT // MiB} MiB",
            "smoke tests need small inputs",
        )
    expect = _read_expect(table, SmokeExpect())
    return SmokeCheck(
        name=table.get("name", as_check_name, name),
        args=table.get("args", as_str_list, ()),
        stdin=stdin,
        stdin_file=stdin_file,
        files=files,
        expect=expect,
        platforms=_read_expect_platforms(table, expect),
        timeout=table.get("timeout", as_duration, 30.0),
        limits=read_limits(table, SMOKE_LIMITS),
    )


def _read_expect(table: Table, base: SmokeExpect) -> SmokeExpect:
    """stdout/stdout_matches, stderr/stderr_matches and exit_code; a stream the table says nothing about
    keeps what `base` expects of it (a platform's table over its check's)."""
    streams = {"stdout": (base.stdout, base.stdout_matches), "stderr": (base.stderr, base.stderr_matches)}
    for stream in streams:
        exact = table.optional(stream, as_str)
        pattern = table.optional(f"{stream}_matches", as_regex)
        if stream in table.data and f"{stream}_matches" in table.data:
            table.file.problem(
                (*table.key, f"{stream}_matches"),
                f"give {stream} or {stream}_matches, not both",
                f"{stream} is the exact text, {stream}_matches a regular expression searched in it",
            )
        if stream in table.data or f"{stream}_matches" in table.data:
            streams[stream] = (exact, pattern)
    return SmokeExpect(
        stdout=streams["stdout"][0],
        stdout_matches=streams["stdout"][1],
        stderr=streams["stderr"][0],
        stderr_matches=streams["stderr"][1],
        exit_code=table.get("exit_code", as_exit_code, base.exit_code),
    )


def _read_expect_platforms(table: Table, base: SmokeExpect) -> dict[str, SmokeExpect]:
    """`[smoke.platforms."linux/386"]`: what the check must give on that platform instead."""
    platforms = table.optional("platforms", as_table) or {}
    expected: dict[str, SmokeExpect] = {}
    for platform, value in platforms.items():
        key = (*table.key, "platforms", platform)
        if not known_platform(table.file, key, platform):
            continue
        if not isinstance(value, dict):
            table.file.problem(key, "expected a table", 'e.g. { stdout = "32\\n" }')
            continue
        expected[platform] = _read_expect(Table(table.file, key, value), base)
    return expected


def _read_smoke_files(table: Table, root: Path, output: str) -> dict[str, Path]:
    """`files = { "/smoke/input.json" = "tests/data/x.json" }`: project files for the smoke run only."""
    files: dict[str, str] = table.get("files", as_str_table, {})
    key = (*table.key, "files")
    resolved: dict[str, Path] = {}
    for target, relative in files.items():
        if (
            not target.startswith("/")
            or target == "/"
            or "\0" in target
            or posixpath.normpath(target) != target
            or target == f"/{output}"
        ):
            table.file.problem(
                key, f"{shown(target)} is not an absolute, normalized image path other than the binary"
            )
        elif any(other.startswith(f"{target}/") for other in files):
            table.file.problem(key, f"{shown(target)} is both a file and the directory of another file")
        elif (path := _project_file(table, key, relative, root)) is not None:
            resolved[target] = path
    return resolved


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:  # gone since it was checked: the run says so
        return 0


def _read_project_file(table: Table, name: str, root: Path) -> Path | None:
    text = table.optional(name, as_text)
    return None if text is None else _project_file(table, (*table.key, name), text, root)


def _project_file(table: Table, key: tuple[str, ...], text: str, root: Path) -> Path | None:
    """A file relative to the project root: after symlinks and `..` inside it, regular, not too large."""
    if "\0" in text:
        table.file.problem(key, f"{shown(text)} holds a NUL character")
        return None
    if Path(text).is_absolute():
        table.file.problem(key, f"{shown(text)} is absolute", "give a file relative to the project root")
        return None
    try:
        path = (root / text).resolve()
        info = path.stat() if path.is_relative_to(root) else None
    except FileNotFoundError:
        table.file.problem(key, f"{shown(text)} is missing")
        return None
    except (OSError, RuntimeError) as error:  # a symlink loop, a name too long, no permission
        table.file.problem(key, f"cannot read {shown(text)}: {shown(str(error), 200)[1:-1]}")
        return None
    if info is None:
        table.file.problem(key, f"{shown(text)} leads outside the project, to {path}", "keep it inside")
    elif not stat.S_ISREG(info.st_mode):
        table.file.problem(key, f"{shown(text)} is not a regular file")
    elif info.st_size > SMOKE_FILE_LIMIT:
        table.file.problem(
            key,
            f"{shown(text)} is larger than {SMOKE_FILE_LIMIT // MiB} MiB",
            "smoke tests need small inputs",
        )
    else:
        return path
    return None
