"""Incremental builds in kept workspaces, for linux/amd64 with the gcc toolchain: a multi-file C program
built by make, changed one file at a time. A changed file is the only one recompiled (then the program
relinked); a removed file leaves the workspace; a failed build, `--rebuild` and `incremental = false`
each give the next build a fresh copy of the source."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.conftest import OslessRun, run_osless

pytestmark = pytest.mark.integration
AMD64 = "linux/amd64"
SLUG = "linux-amd64"
SOURCE = "sources/multi"
FILES = {
    f"{SOURCE}/parts.h": "int part_a(void);\nint part_b(void);\n",
    f"{SOURCE}/a.c": '#include "parts.h"\nint part_a(void) { return 2; }\n',
    f"{SOURCE}/b.c": '#include "parts.h"\nint part_b(void) { return 3; }\n',
    f"{SOURCE}/main.c": (
        '#include <stdio.h>\n#include "parts.h"\n'
        'int main(void) { printf("a * b = %d\\n", part_a() * part_b()); return 0; }\n'
    ),
    f"{SOURCE}/Makefile": (
        "OBJECTS = main.o a.o b.o\n"
        "multi: $(OBJECTS)\n\t$(CC) -static -o $@ $(OBJECTS)\n"
        "%.o: %.c parts.h\n\t$(CC) -Os -c -o $@ $<\n"
    ),
    f"{SOURCE}/notes.txt": "not part of the program\n",
}
# make, then a listing of the workspace (what the sync left there), then the binary is `multi`
BUILD = '[["make", "CC={CC}"], ["ls", "-1A"]]'
SMOKE = "[smoke]\nstdout_matches = '^a \\* b = [0-9]+\\n$'\ntimeout = \"20s\"\n"
COMPILE = re.compile(r"^\S+ -Os -c -o (\S+) (\S+)$", re.MULTILINE)


def _recipe(name: str, more: str = "") -> str:
    return (
        f'[service]\nname = "{name}"\nsource = "{SOURCE}"\ntoolchain = "gcc"\nplatforms = ["{AMD64}"]\n'
        f'[build]\nsteps = {BUILD}\nartifact = "multi"\n{more}{SMOKE}'
    )


@pytest.fixture
def project(make_project: Callable[[dict[str, str]], Path]) -> Path:
    return make_project(
        {
            **FILES,
            "recipes/multi.toml": _recipe("multi"),
            "recipes/copied.toml": _recipe("copied", "incremental = false\n"),
        }
    )


def _build(project: Path, out: Path, *args: str) -> OslessRun:
    return run_osless(project, "build", "--platform", AMD64, *args, out=out, timeout=600)


def _passed(run: OslessRun, service: str = "multi") -> dict[str, object]:
    target = run.target(service, AMD64)
    assert target["status"] == "passed", (target, run.stdout, run.stderr)
    return target


def _log(run: OslessRun, service: str = "multi") -> str:
    return (run.out / service / SLUG / "build.log").read_text()


def _compiled(log: str) -> list[str]:
    """The sources make compiled, in build.log's order."""
    return [source for _, source in COMPILE.findall(log)]


def _workspace_note(log: str) -> str:
    """What the first section says was done to the workspace (the line after its `$` header)."""
    return log.splitlines()[2]


def _output(run: OslessRun, service: str = "multi") -> str:
    binary = run.out / service / SLUG / "bin" / service
    return subprocess.run([binary], capture_output=True, text=True, check=True).stdout


def test_changing_one_file_recompiles_only_that_file(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = _build(project, out, "multi")
    _passed(first)
    assert sorted(_compiled(_log(first))) == ["a.c", "b.c", "main.c"]
    assert _workspace_note(_log(first)) == (
        f"a fresh copy of /project/{SOURCE}: no previous successful build in this out/ with this "
        "toolchain image"
    )
    assert _output(first) == "a * b = 6\n"

    (project / SOURCE / "b.c").write_text('#include "parts.h"\nint part_b(void) { return 7; }\n')
    second = _build(project, out, "multi")
    _passed(second)  # the smoke test ran on the relinked binary
    log = _log(second)
    assert log.startswith(
        f"[osless] workspace /workspace/multi/{SLUG}: kept from the previous build, synced with "
        f"/project/{SOURCE}\n"
    ), log
    assert _workspace_note(log) == "workspace kept from the previous build: 1 file changed (b.c), 0 removed"
    assert _compiled(log) == ["b.c"], log  # a.c and main.c: their objects were kept
    assert "-static -o multi main.o a.o b.o" in log  # relinked
    assert _output(second) == "a * b = 14\n"


def test_a_removed_file_leaves_the_kept_workspace(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _passed(first := _build(project, out, "multi"))
    assert "\nnotes.txt\n" in _log(first)  # the listing step
    (project / SOURCE / "notes.txt").unlink()
    (project / SOURCE / "docs").mkdir()
    (project / SOURCE / "docs" / "README").write_text("new\n")
    second = _build(project, out, "multi")
    _passed(second)
    log = _log(second)
    assert _workspace_note(log) == (
        "workspace kept from the previous build: 1 path changed (docs/), 1 removed (notes.txt)"
    )
    listing = log.split("$ ls -1A\n", 1)[1]
    assert "notes.txt" not in listing and "\ndocs\n" in listing and "\nb.o\n" in listing, listing
    assert _compiled(log) == []  # nothing make builds from changed


def test_a_failed_build_gives_the_next_one_a_fresh_copy(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _passed(_build(project, out, "multi"))
    b = project / SOURCE / "b.c"
    working = b.read_text()
    b.write_text("int part_b(void) { return 3 }\n")
    failed = _build(project, out, "multi")
    assert failed.target("multi", AMD64)["status"] == "failed"
    assert _compiled(_log(failed)) == ["b.c"]  # the failure happened in the kept workspace
    b.write_text(working)
    again = _build(project, out, "multi")
    _passed(again)
    assert _workspace_note(_log(again)) == (
        f"a fresh copy of /project/{SOURCE}: the previous build failed or was interrupted"
    )
    assert sorted(_compiled(_log(again))) == ["a.c", "b.c", "main.c"]


def test_rebuild_and_incremental_false_give_a_fresh_copy(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = _build(project, out)
    _passed(first, "multi")
    _passed(first, "copied")
    (project / SOURCE / "a.c").write_text('#include "parts.h"\nint part_a(void) { return 5; }\n')
    second = _build(project, out)
    assert _workspace_note(_log(second, "multi")).startswith("workspace kept from the previous build: 1 file")
    assert _workspace_note(_log(second, "copied")) == (
        f"a fresh copy of /project/{SOURCE}: incremental = false in the recipe"
    )
    assert sorted(_compiled(_log(second, "copied"))) == ["a.c", "b.c", "main.c"]
    assert _output(second, "copied") == "a * b = 15\n"
    rebuilt = _build(project, out, "multi", "--rebuild")
    _passed(rebuilt)
    assert _workspace_note(_log(rebuilt)) == f"a fresh copy of /project/{SOURCE}: --rebuild"
    assert sorted(_compiled(_log(rebuilt))) == ["a.c", "b.c", "main.c"]
