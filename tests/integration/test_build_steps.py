"""Real builds in the gcc toolchain, for linux/amd64: a multi-file C program built in its writable
workspace by steps (with make when the toolchain image has it, with cc and ar always), by a script,
and builds that fail, each named by its step and program."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.bootstrap.spec import image_reference
from orchestrator.recipe.loader import load_project
from tests.conftest import REPO_ROOT, remove_project_volumes
from tests.factories import MAIN_C
from tests.integration.conftest import OslessRun, run_osless

pytestmark = pytest.mark.integration
AMD64 = "linux/amd64"
SLUG = "linux-amd64"

SOURCES = {
    "sources/calc/util.h": "int times(int a, int b);\n",
    "sources/calc/util.c": '#include "util.h"\nint times(int a, int b) { return a * b; }\n',
    "sources/calc/main.c": (
        '#include <stdio.h>\n#include "util.h"\n'
        'int main(void) { printf("6 * 7 = %d\\n", times(6, 7)); return 0; }\n'
    ),
    "sources/calc/Makefile": (
        "calc: main.o libutil.a\n\t$(CC) -static -o $@ main.o libutil.a\n"
        "libutil.a: util.o\n\t$(AR) rcs $@ util.o\n"
        "%.o: %.c util.h\n\t$(CC) -Os -Wall -Werror -c -o $@ $<\n"
    ),
    "sources/broken/main.c": MAIN_C,
    "sources/broken/broken.c": "int broken(void) { return 1 }\n",
}
SMOKE = '[smoke]\nstdout = "6 * 7 = 42\\n"\ntimeout = "20s"\n'


def _recipe(name: str, source: str, build: str, smoke: str = "") -> str:
    return (
        f'[service]\nname = "{name}"\nsource = "sources/{source}"\ntoolchain = "gcc"\n'
        f'platforms = ["{AMD64}"]\n\n[build]\n{build}\n{smoke}'
    )


RECIPES = {
    # cc and ar by hand: objects and an archive written next to the sources, in the workspace
    "steps": _recipe(
        "calc-steps",
        "calc",
        'steps = [\n  ["{CC}", "-Os", "-c", "-o", "util.o", "util.c"],\n'
        '  ["ar", "rcs", "libutil.a", "util.o"],\n'
        '  ["{CC}", "-static", "-Os", "-o", "calc", "main.c", "libutil.a"],\n]\nartifact = "calc"',
        SMOKE,
    ),
    # shell syntax that would collide with placeholders, and the placeholders as variables
    "script": _recipe(
        "calc-script",
        "calc",
        'script = \'\'\'\nf=util.c\n"$CC" -Os -c -o "${f%.c}.o" "$f"\nar rcs libutil.a util.o\n'
        'test "$WORKSPACE" = "$(pwd)" && test "$JOBS" -ge 1 && test "$GNU_TRIPLE" = x86_64-linux-gnu\n'
        '"$CC" -static -Os -o "$OUTPUT" main.c libutil.a\n\'\'\'',
        SMOKE,
    ),
    "missing-tool": _recipe(
        "missing-tool", "calc", 'steps = [["true"], ["osless-no-such-tool", "-j{JOBS}"]]\nartifact = "calc"'
    ),
    "failing-step": _recipe(
        "failing-step",
        "broken",
        'steps = [\n  ["{CC}", "-c", "main.c"],\n  ["{CC}", "-c", "broken.c"],\n'
        '  ["{CC}", "-o", "x", "main.o"],\n]\n'
        'artifact = "x"',
    ),
    "shared-only": _recipe(
        "shared-only", "broken", 'command = ["{CC}", "-static", "-o", "{output}", "main.c", "-lthread_db"]'
    ),
    "no-library": _recipe(
        "no-library", "broken", 'command = ["{CC}", "-static", "-o", "{output}", "main.c", "-losless_nolib"]'
    ),
    "timeout": _recipe(
        "timeout", "broken", 'steps = [["true"], ["sleep", "60"]]\nartifact = "x"\ntimeout = "4s"'
    ),
}
MAKE_RECIPE = _recipe(
    "calc-make",
    "calc",
    'steps = [["make", "-j{JOBS}", "CC={CC}", "AR=ar"], ["strip", "calc"]]\nartifact = "calc"',
    SMOKE,
)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, docker_client: Any) -> Iterator[Path]:
    """The test project: the shipped toolchain recipes, these recipes and sources (calc's read-only)."""
    root = tmp_path_factory.mktemp("build-steps") / "project"
    (root / "recipes" / "toolchains").mkdir(parents=True)
    for toolchain in (REPO_ROOT / "recipes" / "toolchains").glob("*.toml"):
        (root / "recipes" / "toolchains" / toolchain.name).write_text(toolchain.read_text())
    for relative, text in SOURCES.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    (root / "sources" / "calc").chmod(0o555)  # a read-only source tree: the workspace is writable anyway
    for name, text in RECIPES.items():
        (root / "recipes" / f"{name}.toml").write_text(text)
    reference = image_reference(load_project(root).toolchains["gcc"])
    if _has_make(docker_client, reference):
        (root / "recipes" / "make.toml").write_text(MAKE_RECIPE)
    try:
        yield root
    finally:
        (root / "sources" / "calc").chmod(0o755)
        remove_project_volumes(root)


def _has_make(docker_client: Any, reference: str) -> bool:
    if not docker_client.images.list(name=reference):
        return True  # osless will bootstrap it, from a recipe that has make
    output = docker_client.containers.run(
        reference, ["sh", "-c", "command -v make || true"], remove=True, network_mode="none"
    )
    return bool(output.strip())


@pytest.fixture(scope="module")
def built(project: Path, tmp_path_factory: pytest.TempPathFactory) -> OslessRun:
    return run_osless(project, "build", "--platform", AMD64, out=tmp_path_factory.mktemp("out"), timeout=1200)


def _log(run: OslessRun, service: str) -> str:
    return (run.out / service / SLUG / "build.log").read_text()


def _reason(run: OslessRun, service: str) -> str:
    target = run.target(service, AMD64)
    assert target["status"] == "failed" and target["failed_stage"] == "build", target
    return str(target["reason"])


@pytest.mark.parametrize("service", ["calc-steps", "calc-script"])
def test_a_multi_file_program_builds_in_its_writable_workspace(
    built: OslessRun, project: Path, service: str
) -> None:
    target = built.target(service, AMD64)
    assert target["status"] == "passed", target
    binary = built.out / service / SLUG / "bin" / service
    assert subprocess.run([binary], capture_output=True, text=True, check=True).stdout == "6 * 7 = 42\n"
    assert not (project / "sources" / "calc" / "util.o").exists()  # the source is untouched
    log = _log(built, service)
    assert f"[osless] workspace /workspace/{service}/{SLUG}: a writable copy of /project/sources/calc" in log


def test_each_step_has_its_section_in_build_log(built: OslessRun) -> None:
    log = _log(built, "calc-steps")
    sections = log.split("\n\n")
    assert [section.splitlines()[0] for section in sections] == [
        "[osless] workspace /workspace/calc-steps/linux-amd64: a writable copy of /project/sources/calc",
        "$ gcc -Os -c -o util.o util.c",
        "$ ar rcs libutil.a util.o",
        "$ gcc -static -Os -o calc main.c libutil.a",
    ]
    assert (
        sections[0].splitlines()[1] == "$ cp -a -- /project/sources/calc/. /workspace/calc-steps/linux-amd64/"
    )
    assert all("[osless] exit code 0 after " in section for section in sections)
    assert log.rstrip().splitlines()[-1].startswith("[osless] built in ")


def test_make_builds_in_the_workspace(built: OslessRun, project: Path) -> None:
    if not (project / "recipes" / "make.toml").exists():
        pytest.skip("the gcc toolchain image has no make yet (rebuild it from recipes/toolchains/gcc.toml)")
    target = built.target("calc-make", AMD64)
    assert target["status"] == "passed", target
    log = _log(built, "calc-make")
    assert "$ make -j2 CC=gcc AR=ar" in log or "$ make -j1 CC=gcc AR=ar" in log
    assert "ar rcs libutil.a util.o" in log and "$ strip calc" in log
    binary = built.out / "calc-make" / SLUG / "bin" / "calc-make"
    assert subprocess.run([binary], capture_output=True, text=True, check=True).stdout == "6 * 7 = 42\n"


def test_a_missing_program_names_the_step_and_the_toolchain(built: OslessRun) -> None:
    reason = _reason(built, "missing-tool")
    assert reason.startswith(
        "step 2/2: 'osless-no-such-tool' is not in the gcc toolchain image (add the package that provides "
        "it: a toolchain that extends gcc, docs/recipes.md) (log: "
    ), reason
    assert "timeout" not in reason and "compiler" not in reason
    log = _log(built, "missing-tool")
    assert "$ osless-no-such-tool -j" in log and "[osless] exit code 127 after" in log


def test_a_failing_step_is_named_with_its_first_error(built: OslessRun) -> None:
    reason = _reason(built, "failing-step")
    assert reason.startswith("step 2/3 (gcc) exited with 1: broken.c:1:"), reason
    assert "error: expected ';'" in reason
    log = _log(built, "failing-step")
    assert "$ gcc -c broken.c" in log and "$ gcc -o x main.o" not in log  # the build stopped there


def test_a_library_with_only_a_shared_object_is_explained(built: OslessRun) -> None:
    reason = _reason(built, "shared-only")
    assert reason.startswith(
        "the build command (gcc) exited with 1: libthread_db.a is missing for linux/amd64: the -dev package "
        "ships only a shared library (/usr/lib/x86_64-linux-gnu/libthread_db.so); a static binary cannot "
        "link it"
    ), reason
    absent = _reason(built, "no-library")
    assert "libosless_nolib is not installed for linux/amd64" in absent, absent
    assert "such as libosless_nolib-dev:{DEBIAN_ARCH} (here libosless_nolib-dev:amd64" in absent


def test_a_step_that_outlives_the_build_timeout_is_named(built: OslessRun) -> None:
    reason = _reason(built, "timeout")
    assert reason.startswith("step 2/2 (sleep) timed out: the build took longer than its timeout of 4s"), (
        reason
    )
    assert built.target("timeout", AMD64)["seconds"]["build"] < 30


def test_the_report_names_no_compiler(built: OslessRun) -> None:
    report = json.loads((built.out / "report.json").read_text())
    assert not [t for t in report["targets"] if "compiler exited" in (t["reason"] or "")]


def test_an_engine_given_with_engine_builds_in_a_workspace_too(project: Path, tmp_path: Path) -> None:
    """An engine given with --engine gets the source copied into the builder (it may not see this
    machine's files): the workspace is copied from there. The local engine, named, stands in for one."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    run = run_osless(project, "build", "calc-steps", "--engine", f"{AMD64}={host}", out=tmp_path / "out")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.target("calc-steps", AMD64)["status"] == "passed"
    assert "a writable copy of /project/sources/calc" in _log(run, "calc-steps")
