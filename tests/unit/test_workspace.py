"""Kept workspaces without an engine: the diff of two source manifests, the plan a build follows (sync or
a fresh copy, and why), build.log's notes, the host records, the volume names, and the sync script run
by this machine's sh on real directories; the recipe's `incremental` key."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from orchestrator.errors import RecipeError
from orchestrator.recipe.loader import load_project
from orchestrator.recipe.model import BuildSpec
from orchestrator.stages import workspace
from orchestrator.stages.workspace import Plan, Record, SourceEntry, read_source
from tests.conftest import REPO_ROOT
from tests.factories import MAIN_C, service_recipe

MakeProject = Callable[[dict[str, str]], Path]
BUILD = "b" * 64


def _file(content: str, mode: int = 0o644) -> SourceEntry:
    return SourceEntry(kind="file", mode=mode, content=content)


DIRECTORY = SourceEntry(kind="directory")
OLD = {
    "Makefile": _file("m"),
    "src": DIRECTORY,
    "src/a.c": _file("a"),
    "src/b.c": _file("b"),
    "src/old": DIRECTORY,
    "src/old/x.c": _file("x"),
    "run.sh": _file("r", 0o755),
    "current": SourceEntry(kind="link", content="src"),
}


def _record(entries: dict[str, SourceEntry] | None = None, build: str = BUILD) -> Record:
    return Record(token="1" * 32, build=build, entries=OLD if entries is None else entries)


# --- What changed ---


def test_nothing_changed_is_an_empty_diff() -> None:
    assert workspace.diff(OLD, dict(OLD)) == ([], [])


def test_changed_new_and_removed_entries_are_found() -> None:
    new = {**OLD, "src/a.c": _file("a2"), "src/c.c": _file("c"), "run.sh": _file("r", 0o644)}
    del new["src/b.c"]
    new["current"] = SourceEntry(kind="link", content="elsewhere")
    assert workspace.diff(OLD, new) == (["current", "run.sh", "src/a.c", "src/c.c"], ["src/b.c"])


def test_a_new_or_removed_directory_is_one_path() -> None:
    new = {k: v for k, v in OLD.items() if not k.startswith("src/old")}
    new |= {"lib": DIRECTORY, "lib/y.c": _file("y"), "lib/deep": DIRECTORY, "lib/deep/z.c": _file("z")}
    assert workspace.diff(OLD, new) == (["lib"], ["src/old"])


def test_a_kind_change_is_a_change_and_covers_what_was_inside() -> None:
    new = {k: v for k, v in OLD.items() if not k.startswith("src/old")} | {"src/old": _file("now a file")}
    assert workspace.diff(OLD, new) == (["src/old"], [])  # rm -rf, then cp -a: src/old/x.c goes too


# --- The plan: sync or a fresh copy, and why ---


def test_without_a_record_the_build_gets_a_fresh_copy() -> None:
    plan = workspace.plan(None, OLD, BUILD, refused=None)
    assert plan.expected is None
    assert plan.why == "no previous successful build in this out/ with this toolchain image"


@pytest.mark.parametrize("refused", [workspace.REBUILD, workspace.NOT_INCREMENTAL])
def test_rebuild_and_the_recipe_refuse_a_kept_workspace(refused: str) -> None:
    plan = workspace.plan(_record(), OLD, BUILD, refused=refused)
    assert plan.expected is None and plan.why == refused


def test_other_commands_or_environment_give_a_fresh_copy() -> None:
    plan = workspace.plan(_record(build="c" * 64), OLD, BUILD, refused=None)
    assert plan.expected is None and plan.why == "the build's commands or environment changed"


def test_a_matching_record_gives_a_sync_with_a_new_token() -> None:
    new = {**OLD, "src/a.c": _file("a2")}
    plan = workspace.plan(_record(), new, BUILD, refused=None)
    assert plan.expected == "1" * 32 and plan.why is None
    assert plan.changed == ("src/a.c",) and plan.removed == ()
    assert len(plan.token) == 32 and plan.token != plan.expected
    assert workspace.plan(_record(), new, BUILD, refused=None).token != plan.token  # random
    assert plan.record == Record(token=plan.token, build=BUILD, entries=new)  # what success records


def test_too_many_changes_give_a_fresh_copy() -> None:
    new = {f"f{index}.c": _file("x") for index in range(workspace.MAX_PATHS + 1)}
    plan = workspace.plan(_record({}), new, BUILD, refused=None)
    assert (
        plan.expected is None and plan.why == f"{workspace.MAX_PATHS + 1} changes (a sync takes at most 2000)"
    )
    long = {f"{'d' * 200}{index}": _file("x") for index in range(workspace.MAX_PATH_BYTES // 200)}
    assert workspace.plan(_record({}), long, BUILD, refused=None).why is not None  # too many bytes


def test_a_changed_name_that_is_not_utf8_gives_a_fresh_copy() -> None:
    name = b"caf\xe9.c".decode(errors="surrogateescape")
    plan = workspace.plan(_record({}), {name: _file("x")}, BUILD, refused=None)
    assert plan.expected is None and plan.why == "a changed file's name is not UTF-8"


# --- The command and what build.log says ---


def test_paths_are_arguments_after_the_fixed_ones() -> None:
    plan = Plan(
        token="t", build=BUILD, entries={}, expected="e", changed=("$(reboot).c", "-rf"), removed=("x y",)
    )
    command = workspace.command(
        plan,
        output="/osless-out/s/linux-amd64",
        workspace="/workspace/s/linux-amd64",
        source="/project/sources/s",
    )
    assert command[:4] == ["sh", "-c", workspace.SCRIPT, "sh"]
    assert command[4:] == [
        "/osless-out/s/linux-amd64",
        "/workspace/s/linux-amd64",
        "/project/sources/s",
        "/workspace/s/.linux-amd64.token",
        "e",
        "t",
        "1",
        "./x y",
        "./$(reboot).c",
        "./-rf",
    ]


def test_the_notes_say_what_was_done_and_why() -> None:
    plan = Plan(token="t", build=BUILD, entries=OLD, expected="e", changed=("src/a.c",))
    kept = workspace.outcome(plan, b"kept\n", source="/project/s")
    assert (
        kept.kept
        and kept.note == "workspace kept from the previous build: 1 file changed (src/a.c), 0 removed"
    )
    fresh = Plan(token="t", build=BUILD, entries=OLD, why=workspace.REBUILD)
    assert (
        workspace.outcome(fresh, b"fresh\n", source="/project/s").note
        == "a fresh copy of /project/s: --rebuild"
    )
    notes = {
        word: workspace.outcome(plan, f"{word}\n".encode(), source="/p").note for word in ("stale", "missing")
    }
    assert notes == {
        "stale": "a fresh copy of /p: the previous build failed or was interrupted",
        "missing": "a fresh copy of /p: the previous workspace is gone (its volume was removed)",
    }
    assert not workspace.outcome(plan, b"failed\n", source="/p").kept


def test_the_summary_names_a_few_paths_and_directories() -> None:
    entries = {**OLD, "lib": DIRECTORY}
    many = tuple(f"f{index}.c" for index in range(7))
    plan = Plan(
        token="t", build=BUILD, entries=entries, expected="e", changed=("lib", *many), removed=("a", "b")
    )
    assert workspace.summary(plan) == (
        "8 paths changed (lib/, f0.c, f1.c, f2.c, f3.c and 3 more), 2 removed (a, b)"
    )


# --- Records and volumes ---


def test_a_record_round_trips_and_a_foreign_one_is_none(tmp_path: Path) -> None:
    path = workspace.record_path(tmp_path, "osless-work-x", "svc", "linux-arm-v7")
    assert path == tmp_path / ".workspaces" / "osless-work-x" / "svc" / "linux-arm-v7.json"
    assert workspace.read_record(path) is None
    name = b"caf\xe9.c".decode(errors="surrogateescape")
    record = _record({**OLD, name: _file("x")})
    workspace.write_record(path, record)
    assert workspace.read_record(path) == record
    for text in ("{", json.dumps({"format": 99}), json.dumps({"format": 1, "token": "t"})):
        path.write_text(text)
        assert workspace.read_record(path) is None


def test_a_volume_per_out_directory_and_namespace(tmp_path: Path) -> None:
    def name(out: Path, namespace: str = "") -> str:
        return workspace.volume_name(
            toolchain="gcc", project="p" * 16, out_root=out, image_id="i" * 64, namespace=namespace
        )

    assert name(tmp_path / "out").startswith("osless-work-gcc-pppppppppppp-")
    assert name(tmp_path / "out").endswith("-iiiiiiiiiiii")
    assert name(tmp_path / "out") == name(tmp_path / "x" / ".." / "out")  # resolved
    assert name(tmp_path / "out") != name(tmp_path / "other")
    assert name(tmp_path / "out", "-check-run-a").endswith("-iiiiiiiiiiii-check-run-a")


# --- The script, run by this machine's sh ---


def _tree(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)


def _prepare(plan: Plan, source: Path, work: Path) -> str:
    completed = subprocess.run(
        workspace.command(plan, output=str(work.parent / "out"), workspace=str(work), source=str(source)),
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout.strip()


def _marker(work: Path) -> str:
    return (work.parent / f".{work.name}.token").read_text().strip()


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    source, work = tmp_path / "source", tmp_path / "workspace" / "svc" / "linux-amd64"
    _tree(source, {"Makefile": "all:\n", "src/a.c": "a\n", "src/b.c": "b\n", "notes": "n\n"})
    return source, work


def test_the_first_copy_is_fresh_and_writable(dirs: tuple[Path, Path]) -> None:
    source, work = dirs
    (source / "src").chmod(0o555)
    try:
        plan = workspace.plan(None, read_source(source).entries, BUILD, refused=None)
        assert _prepare(plan, source, work) == "fresh"
    finally:
        (source / "src").chmod(0o755)
    assert (work / "src" / "a.c").read_text() == "a\n" and os.access(work / "src", os.W_OK)
    assert _marker(work) == plan.token


def test_a_kept_workspace_is_synced_and_changed_files_are_newer_than_objects(dirs: tuple[Path, Path]) -> None:
    source, work = dirs
    first = workspace.plan(None, read_source(source).entries, BUILD, refused=None)
    _prepare(first, source, work)
    (work / "src" / "a.o").write_text("object")  # what the build made
    os.utime(work / "src" / "b.c", (1000, 1000))
    (source / "src" / "a.c").write_text("a2\n")
    os.utime(source / "src" / "a.c", (1000, 1000))  # older than the object: a copy keeps the mtime
    (source / "notes").unlink()
    _tree(source, {"lib/deep/c.c": "c\n"})
    second = workspace.plan(first.record, read_source(source).entries, BUILD, refused=None)
    assert (second.changed, second.removed) == (("lib", "src/a.c"), ("notes",))
    assert _prepare(second, source, work) == "kept"
    assert (work / "src" / "a.c").read_text() == "a2\n" and (work / "src" / "a.o").exists()
    assert (work / "src" / "a.c").stat().st_mtime > (work / "src" / "a.o").stat().st_mtime
    assert (work / "src" / "b.c").stat().st_mtime == 1000  # unchanged: untouched
    assert not (work / "notes").exists() and (work / "lib" / "deep" / "c.c").read_text() == "c\n"
    assert _marker(work) == second.token


def test_a_marker_that_is_not_the_records_gives_a_fresh_copy(dirs: tuple[Path, Path]) -> None:
    source, work = dirs
    first = workspace.plan(None, read_source(source).entries, BUILD, refused=None)
    _prepare(first, source, work)
    (work / "src" / "half.o").write_text("interrupted")
    (work.parent / f".{work.name}.token").write_text("another build's\n")
    second = workspace.plan(first.record, read_source(source).entries, BUILD, refused=None)
    assert second.expected == first.token
    assert _prepare(second, source, work) == "stale"
    assert not (work / "src" / "half.o").exists()


def test_a_missing_workspace_gives_a_fresh_copy(dirs: tuple[Path, Path]) -> None:
    source, work = dirs
    plan = workspace.plan(_record({}), read_source(source).entries, BUILD, refused=None)
    assert _prepare(plan, source, work) == "missing"
    assert (work / "Makefile").exists()


def test_a_sync_that_cannot_be_done_falls_back_to_a_fresh_copy(dirs: tuple[Path, Path]) -> None:
    source, work = dirs
    first = workspace.plan(None, read_source(source).entries, BUILD, refused=None)
    _prepare(first, source, work)
    (work / "src" / "a.c").unlink()
    (work / "src" / "b.c").unlink()
    (work / "src").rmdir()  # the build removed a directory of the source
    (source / "src" / "a.c").write_text("a2\n")
    second = workspace.plan(first.record, read_source(source).entries, BUILD, refused=None)
    assert _prepare(second, source, work) == "failed"
    assert (work / "src" / "a.c").read_text() == "a2\n" and (work / "src" / "b.c").exists()


def test_the_new_token_is_written_before_the_copy(dirs: tuple[Path, Path]) -> None:
    """A copy that fails leaves a marker no record holds: the next build starts afresh."""
    source, work = dirs
    plan = workspace.plan(None, read_source(source).entries, BUILD, refused=None)
    completed = subprocess.run(
        workspace.command(
            plan, output=str(work.parent / "out"), workspace=str(work), source=str(source / "missing")
        ),
        capture_output=True,
        check=False,
    )
    assert completed.returncode != 0
    assert _marker(work) == plan.token


# --- The recipe's `incremental` ---


def _service_build(make_project: MakeProject, more: str) -> BuildSpec:
    root = make_project({"recipes/s.toml": service_recipe("s", more=more), "sources/s/main.c": MAIN_C})
    return load_project(root).services["s"].build


def test_incremental_is_true_unless_the_recipe_says_false(make_project: MakeProject) -> None:
    assert _service_build(make_project, "").incremental is True


def test_incremental_false_is_read(make_project: MakeProject) -> None:
    assert _service_build(make_project, "incremental = false\n").incremental is False


def test_incremental_must_be_a_boolean(make_project: MakeProject) -> None:
    with pytest.raises(RecipeError) as raised:
        _service_build(make_project, 'incremental = "no"\n')
    assert [f"{p.key}: {p.message}" for p in raised.value.problems] == [
        "build.incremental: expected a boolean, got string"
    ]


def test_the_schema_knows_incremental() -> None:
    schema = json.loads(
        (REPO_ROOT / "orchestrator" / "recipe" / "schema" / "service.schema.json").read_text()
    )
    validator = Draft202012Validator(schema)
    recipe = {
        "service": {"name": "s", "source": "s", "toolchain": "gcc", "platforms": ["linux/amd64"]},
        "build": {"command": ["true"], "incremental": False},
    }
    assert not list(validator.iter_errors(recipe))
    recipe["build"]["incremental"] = "no"  # type: ignore[index]
    assert list(validator.iter_errors(recipe))


@pytest.mark.parametrize("name", ["../cache/go-build", "/etc", "a//b", "./a", "a/..", ""])
def test_a_record_naming_a_path_outside_the_workspace_is_no_record(tmp_path: Path, name: str) -> None:
    """Its removed paths would be removed by the sync: a record edited in out/ cannot reach beyond."""
    path = tmp_path / "record.json"
    entries = {"main.c": SourceEntry(kind="file", mode=0o644, content="0" * 64)}
    workspace.write_record(path, Record(token="t", build=BUILD, entries=entries))
    assert workspace.read_record(path) is not None
    tampered = {**entries, name: SourceEntry(kind="file", mode=0o644, content="0" * 64)}
    workspace.write_record(path, Record(token="t", build=BUILD, entries=tampered))
    assert workspace.read_record(path) is None
