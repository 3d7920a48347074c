"""Smoke checks for real programs, without an engine: how `[smoke]` and `[[smoke]]` are read (stdin,
test files from the project, expectations per platform, regular expressions), how a run is judged,
how several checks make one result, and how the report, JUnit, the summary and the cache see them."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import xmlschema

from orchestrator.errors import RecipeError
from orchestrator.image import oci
from orchestrator.outputs import summary
from orchestrator.outputs.junit import junit_xml
from orchestrator.outputs.report import Status, TargetReport, to_jsonable
from orchestrator.pipeline import cache
from orchestrator.pipeline.provenance import Provenance
from orchestrator.platforms import PLATFORMS
from orchestrator.recipe.loader import load_project
from orchestrator.recipe.model import SMOKE_FILE_LIMIT, Service, SmokeCheck, SmokeExpect, SmokeSpec
from orchestrator.stages.smoke import (
    INTERRUPTED,
    CheckResult,
    SmokeResult,
    check_image_tag,
    combined,
    judge,
    read_project_file,
    smoke_files,
    smoke_input,
)
from tests.conftest import REPO_ROOT
from tests.factories import service_recipe
from tests.run_reports import report, target

# The recipe's lines: [service] on 1, [build] on 6, its command on 7; the smoke text starts on line 8.
FIRST_SMOKE_LINE = 8


def project(root: Path, smoke: str, files: dict[str, str] | None = None) -> Path:
    """A project with the shipped toolchains and a service "s" whose recipe ends with `smoke` (or begins
    with it, when it is a top-level `smoke = ...`)."""
    shutil.copytree(REPO_ROOT / "recipes" / "toolchains", root / "recipes" / "toolchains")
    every = {"sources/s/main.c": "int main(void) { return 0; }\n", **(files or {})}
    top = smoke.startswith("smoke =")
    every["recipes/s.toml"] = (smoke if top else "") + service_recipe("s", more="" if top else smoke)
    for relative, text in every.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    return root


def load(root: Path, smoke: str, files: dict[str, str] | None = None) -> Service:
    return load_project(project(root, smoke, files)).services["s"]


def problems(root: Path, smoke: str, files: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(RecipeError) as raised:
        load(root, smoke, files)
    return [str(problem) for problem in raised.value.problems]


# --- reading the recipe -------------------------------------------------------------------------


def test_no_smoke_table_is_one_check_that_wants_exit_0(tmp_path: Path) -> None:
    service = load(tmp_path, "")
    assert service.smoke == SmokeSpec(checks=(SmokeCheck(name="smoke"),), allow_root=False)
    assert service.smoke.args == ()


def test_one_smoke_table_is_still_one_check(tmp_path: Path) -> None:
    smoke = '[smoke]\nargs = ["--quiet"]\nstdout = "hi\\n"\nexit_code = 3\ntimeout = "5s"\n'
    (check,) = load(tmp_path, smoke).smoke.checks
    assert (check.name, check.args, check.timeout) == ("smoke", ("--quiet",), 5.0)
    assert check.expect == SmokeExpect(stdout="hi\n", exit_code=3)
    assert check.expected("linux/arm64") == check.expect


SEVERAL = """
[[smoke]]
name = "inline"
args = ["-"]
stdin = "hello\\n"
stdout = "HELLO\\n"
stderr_matches = '^read \\d+ bytes$'

[smoke.platforms."linux/386"]
stdout_matches = "^32-bit"

[[smoke]]
stdin_file = "tests/data/input.txt"
files = { "/smoke/input.json" = "tests/data/x.json", "/etc/app.conf" = "sources/s/main.c" }
exit_code = 2
allow_root = false

[smoke.platforms."linux/arm64"]
exit_code = 4
stderr = "arm\\n"
"""
SEVERAL_FILES = {"tests/data/input.txt": "from a file\n", "tests/data/x.json": "{}\n"}


def test_several_checks_each_with_stdin_files_and_platform_expectations(tmp_path: Path) -> None:
    service = load(tmp_path, SEVERAL, SEVERAL_FILES)
    inline, from_file = service.smoke.checks
    assert (inline.name, inline.args, inline.stdin, inline.stdin_file) == ("inline", ("-",), "hello\n", None)
    assert inline.expect == SmokeExpect(stdout="HELLO\n", stderr_matches=r"^read \d+ bytes$")
    # A platform that says something about stdout replaces the check's stdout expectation, the rest stays.
    assert inline.expected("linux/386") == SmokeExpect(
        stdout_matches="^32-bit", stderr_matches=r"^read \d+ bytes$"
    )
    assert inline.expected("linux/amd64") == inline.expect
    assert from_file.name == "check 2"  # the default name of the second [[smoke]]
    assert from_file.stdin is None
    assert from_file.stdin_file == (tmp_path / "tests/data/input.txt").resolve()
    assert from_file.files == {
        "/smoke/input.json": (tmp_path / "tests/data/x.json").resolve(),
        "/etc/app.conf": (tmp_path / "sources/s/main.c").resolve(),
    }
    assert from_file.expected("linux/arm64") == SmokeExpect(stderr="arm\n", exit_code=4)
    assert from_file.expected("linux/riscv64") == SmokeExpect(exit_code=2)
    assert service.smoke.args == ("-",)


def test_allow_root_in_any_check_allows_root_for_the_image(tmp_path: Path) -> None:
    smoke = '[image]\nuser = "0"\n[[smoke]]\nargs = []\n[[smoke]]\nallow_root = true\n'
    assert load(tmp_path, smoke).smoke.allow_root


def test_an_inline_array_of_tables_is_read_too(tmp_path: Path) -> None:
    checks = load(tmp_path, 'smoke = [{ args = ["a"] }, { name = "b", stdout = "" }]\n').smoke.checks
    assert [(c.name, c.args, c.expect.stdout) for c in checks] == [("check 1", ("a",), None), ("b", (), "")]


def test_a_symlink_to_a_project_file_is_followed(tmp_path: Path) -> None:
    root = project(tmp_path, '[smoke]\nstdin_file = "link"\n', {"data/real.txt": "x"})
    (root / "link").symlink_to("data/real.txt")
    assert load_project(root).services["s"].smoke.checks[0].stdin_file == (root / "data/real.txt").resolve()


BAD = [
    (
        '[[smoke]]\nargs = []\n[[smoke]]\nstdout_matches = "(unclosed"\n',
        f":{FIRST_SMOKE_LINE + 3}: smoke[1].stdout_matches: '(unclosed' is not a regular expression: "
        "missing ), unterminated subpattern at position 0",
    ),
    (
        '[smoke]\nstderr_matches = "a{2,1}"\n',
        f":{FIRST_SMOKE_LINE + 1}: smoke.stderr_matches: 'a{{2,1}}' is not a regular expression",
    ),
    (
        '[smoke]\n[smoke.platforms."linux/386"]\nstdout_matches = "*"\n',
        f":{FIRST_SMOKE_LINE + 2}: smoke.platforms.\"linux/386\".stdout_matches: '*' is not a regular",
    ),
    (
        '[smoke]\nstdout = "a"\nstdout_matches = "a"\n',
        "smoke.stdout_matches: give stdout or stdout_matches, not both",
    ),
    (
        '[smoke]\nstdin = "a"\nstdin_file = "sources/s/main.c"\n',
        "smoke.stdin_file: give stdin or stdin_file, not both",
    ),
    ('[smoke]\nstdin_file = "nowhere.txt"\n', "smoke.stdin_file: 'nowhere.txt' is missing"),
    (
        '[smoke]\nstdin_file = "../outside.txt"\n',
        "smoke.stdin_file: '../outside.txt' leads outside the project",
    ),
    ('[smoke]\nstdin_file = "/etc/passwd"\n', "smoke.stdin_file: '/etc/passwd' is absolute"),
    ('[smoke]\nstdin_file = "sources"\n', "smoke.stdin_file: 'sources' is not a regular file"),
    ('[smoke]\nstdin_file = "a\\u0000b"\n', "smoke.stdin_file: 'a\\x00b' holds a NUL character"),
    ("[smoke]\nstdin_file = 3\n", "smoke.stdin_file: expected a string, got integer"),
    (
        '[smoke]\nfiles = { "relative" = "sources/s/main.c" }\n',
        "'relative' is not an absolute, normalized image path",
    ),
    ('[smoke]\nfiles = { "/" = "sources/s/main.c" }\n', "'/' is not an absolute, normalized image path"),
    ('[smoke]\nfiles = { "/a/../b" = "sources/s/main.c" }\n', "'/a/../b' is not an absolute, normalized"),
    (
        '[smoke]\nfiles = { "/s" = "sources/s/main.c" }\n',
        "'/s' is not an absolute, normalized image path other than the binary",
    ),
    (
        '[smoke]\nfiles = { "/d" = "sources/s/main.c", "/d/e" = "sources/s/main.c" }\n',
        "smoke.files: '/d' is both a file and the directory of another file",
    ),
    (
        '[smoke]\nfiles = { "/x" = "../../etc/passwd" }\n',
        "smoke.files: '../../etc/passwd' leads outside the project",
    ),
    (
        '[[smoke]]\nname = "a"\n[[smoke]]\nname = "a"\n',
        f":{FIRST_SMOKE_LINE + 3}: smoke[1].name: check 'a' is named twice",
    ),
    ('[smoke]\nname = "two\\nlines"\n', "smoke.name: 'two\\nlines' is not a check name"),
    ('[smoke]\nname = ""\n', "smoke.name: must not be empty"),
    ("smoke = []\n", "smoke: must not be empty"),
    ("smoke = [1]\n", "smoke[0]: expected a table, got integer"),
    ('smoke = "yes"\n', "smoke: expected a table, got string"),
    (
        '[[smoke]]\nargs = []\n[[smoke]]\nstdot = "x"\n',
        f":{FIRST_SMOKE_LINE + 3}: smoke[1].stdot: unknown key (did you mean 'stdout'?)",
    ),
    (
        '[smoke]\n[smoke.platforms."linux/arm65"]\nstdout = ""\n',
        "unknown platform 'linux/arm65' (did you mean 'linux/arm64'?",
    ),
    ('[smoke]\nplatforms = { "linux/arm64" = "x" }\n', 'smoke.platforms."linux/arm64": expected a table'),
    (
        '[smoke]\n[smoke.platforms."linux/arm64"]\nargs = ["x"]\n',
        'smoke.platforms."linux/arm64".args: unknown key',
    ),
    ("[smoke]\nexit_code = 256\n", "smoke.exit_code: 256 is not an exit code"),
    ("[[smoke]]\n[smoke.limits]\npids = 0\n", "smoke[0].limits.pids:"),
]


@pytest.mark.parametrize(("smoke", "fragment"), BAD, ids=[fragment[:50] for _, fragment in BAD])
def test_a_bad_smoke_table_is_a_problem_naming_file_line_and_key(
    tmp_path: Path, smoke: str, fragment: str
) -> None:
    found = problems(tmp_path, smoke)
    assert any(fragment in problem for problem in found), found
    assert all(problem.startswith("recipes/s.toml") for problem in found), found


def test_a_stdin_file_larger_than_the_limit_is_refused(tmp_path: Path) -> None:
    root = project(tmp_path, '[smoke]\nstdin_file = "big"\n')
    with (root / "big").open("wb") as big:
        big.truncate(SMOKE_FILE_LIMIT + 1)  # sparse: no disk used
    with pytest.raises(RecipeError) as raised:
        load_project(root)
    assert "smoke.stdin_file: 'big' is larger than 64 MiB" in str(raised.value.problems[0])


def test_a_symlink_out_of_the_project_is_refused(tmp_path: Path) -> None:
    root = project(tmp_path, '[smoke]\nfiles = { "/x" = "link" }\n')
    (root / "link").symlink_to("/etc/hostname")
    with pytest.raises(RecipeError) as raised:
        load_project(root)
    assert "'link' leads outside the project, to /etc/hostname" in str(raised.value.problems[0])


# --- judging a run --------------------------------------------------------------------------------


def verdict(
    expect: SmokeExpect, stdout: str = "", stderr: str = "", exit_code: int = 0
) -> tuple[str | None, str | None]:
    return judge(expect, stdout=stdout, stderr=stderr, exit_code=exit_code, timed_out=False, timeout=30)


def test_exact_stdout() -> None:
    assert verdict(SmokeExpect(stdout="hi\n"), "hi\n") == (None, None)
    reason, diff = verdict(SmokeExpect(stdout="hi\n"), "hi")
    assert reason == "stdout differs from the recipe"
    assert diff is not None and "--- expected stdout (recipe)" in diff and "+hi  [no newline at end]" in diff


def test_stdout_matches_is_searched_anywhere_unless_anchored() -> None:
    assert verdict(SmokeExpect(stdout_matches=r"\d+-bit"), "this is a 64-bit build\n") == (None, None)
    assert verdict(SmokeExpect(stdout_matches=r"^64-bit$"), "64-bit\n") == (
        None,
        None,
    )  # $ before the last \n
    assert verdict(SmokeExpect(stdout_matches=r"(?s)\Aa.*z\Z"), "a\nb\nz") == (None, None)
    reason, diff = verdict(SmokeExpect(stdout_matches=r"^64-bit$"), "a 64-bit build\n")
    assert (reason, diff) == ("stdout does not match '^64-bit$'", None)


def test_exact_stderr_and_stderr_matches() -> None:
    assert verdict(SmokeExpect(stderr="warn\n"), stderr="warn\n") == (None, None)
    reason, diff = verdict(SmokeExpect(stderr="warn\n"), stderr="error\n")
    assert reason == "stderr differs from the recipe"
    assert (
        diff is not None and "--- expected stderr (recipe)" in diff and "-warn" in diff and "+error" in diff
    )
    assert verdict(SmokeExpect(stderr_matches="(?i)usage"), stderr="Usage: x\n") == (None, None)
    assert (
        verdict(SmokeExpect(stderr_matches="usage"), stderr="Usage: x\n")[0]
        == "stderr does not match 'usage'"
    )


def test_stdout_and_stderr_are_told_apart() -> None:
    """stdout's expectation is not met by stderr, nor the other way round."""
    assert (
        verdict(SmokeExpect(stdout="hi\n"), stdout="", stderr="hi\n")[0] == "stdout differs from the recipe"
    )
    assert verdict(SmokeExpect(stderr_matches="hi"), stdout="hi\n")[0] == "stderr does not match 'hi'"


def test_exit_code_and_every_problem_at_once() -> None:
    assert verdict(SmokeExpect(exit_code=3), exit_code=3) == (None, None)
    expect = SmokeExpect(stdout="a\n", stderr_matches="b", exit_code=0)
    reason, diff = verdict(expect, stdout="x\n", stderr="", exit_code=1)
    assert reason == "exit code 1, expected 0; stdout differs from the recipe; stderr does not match 'b'"
    assert diff is not None and "-a" in diff


def test_a_timeout_is_the_only_reason() -> None:
    reason = judge(SmokeExpect(stdout="x"), stdout="", stderr="", exit_code=-1, timed_out=True, timeout=2.5)
    assert reason == ("did not finish within 2.5s", None)


def test_no_expectation_but_the_exit_code_accepts_any_output() -> None:
    assert verdict(SmokeExpect(), "anything", "at all") == (None, None)


# --- several checks, one result ------------------------------------------------------------------


def result(
    name: str, *, reason: str | None = None, diff: str | None = None, seconds: float = 1.0
) -> CheckResult:
    return CheckResult(
        name=name,
        passed=reason is None,
        exit_code=0 if reason is None else 1,
        stdout=f"{name} out\n",
        stderr="",
        seconds=seconds,
        reason=reason,
        diff=diff,
    )


def test_one_check_is_the_result_as_before() -> None:
    smoke = combined(False, [result("smoke", reason="exit code 1, expected 0", diff="D")])
    assert (smoke.passed, smoke.reason, smoke.diff, smoke.exit_code, smoke.stdout) == (
        False,
        "exit code 1, expected 0",
        "D",
        1,
        "smoke out\n",
    )
    assert [check.name for check in smoke.checks] == ["smoke"]


def test_the_target_passes_only_when_every_check_passes() -> None:
    passed = combined(True, [result("a"), result("b", seconds=2.0)])
    assert (passed.passed, passed.reason, passed.diff, passed.stdout, passed.seconds) == (
        True,
        None,
        None,
        "a out\n",
        3.0,
    )
    assert passed.emulated
    failed = combined(
        False,
        [
            result("a"),
            result("b", reason="stdout differs from the recipe", diff="-x\n+y"),
            result("c", reason="exit code 1, expected 0"),
        ],
    )
    assert not failed.passed
    assert failed.reason == (
        "2 of 3 checks failed: 'b': stdout differs from the recipe; 'c': exit code 1, expected 0"
    )
    assert failed.diff == "check 'b':\n-x\n+y"
    assert failed.stdout == "b out\n"  # the first check that failed


def test_an_interrupted_check_makes_the_result_interrupted() -> None:
    assert combined(False, [result("a"), result("b", reason=INTERRUPTED)]).reason == INTERRUPTED


def test_the_result_reads_back_from_its_json() -> None:
    smoke = combined(True, [result("a"), result("b", reason="r", diff="d")])
    data = json.loads(json.dumps(to_jsonable(smoke)))
    assert SmokeResult.from_json(data) == smoke
    old = {key: value for key, value in data.items() if key != "checks"}  # a report without checks
    assert SmokeResult.from_json(old).checks == ()


def test_a_target_report_with_checks_reads_back(tmp_path: Path) -> None:
    smoke = combined(False, [result("a"), result("b", reason="r")])
    written = target("s", smoke=smoke, status=Status.FAILED, failed_stage="smoke", reason=smoke.reason)
    read = TargetReport.from_json(json.loads(json.dumps(to_jsonable(written))))
    assert read.smoke == smoke


# --- what a check brings: stdin and files ----------------------------------------------------------


def test_stdin_inline_is_utf8_and_a_file_is_read_as_bytes(tmp_path: Path) -> None:
    assert smoke_input(SmokeCheck(name="a", stdin="é\n")) == "é\n".encode()
    data = tmp_path / "in.bin"
    data.write_bytes(b"\x00\xff")
    assert smoke_input(SmokeCheck(name="a", stdin_file=data)) == b"\x00\xff"
    assert smoke_input(SmokeCheck(name="a")) is None


def test_a_file_that_became_a_symlink_or_a_fifo_since_is_not_read(tmp_path: Path) -> None:
    (tmp_path / "link").symlink_to("/etc/hostname")
    with pytest.raises(OSError):
        read_project_file(tmp_path / "link")
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(OSError, match="not a regular file"):
        read_project_file(tmp_path / "fifo")  # opened without blocking, then refused
    (tmp_path / "big").write_bytes(b"x" * 11)
    with pytest.raises(OSError, match="larger than"):
        read_project_file(tmp_path / "big", limit=10)


def test_files_keep_the_executable_bit_and_are_readable_by_anyone(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("d")
    (tmp_path / "tool").write_text("t")
    (tmp_path / "data").chmod(0o600)
    (tmp_path / "tool").chmod(0o700)
    check = SmokeCheck(name="a", files={"/in/data": tmp_path / "data", "/in/tool": tmp_path / "tool"})
    assert [(e.path, e.data, e.mode) for e in smoke_files(check)] == [
        ("/in/data", b"d", 0o644),
        ("/in/tool", b"t", 0o755),
    ]


def test_the_files_go_into_a_layer_of_their_own_over_the_shipped_image() -> None:
    config = oci.ImageConfig(platform=PLATFORMS["linux/amd64"], entrypoint=("/s",), user="65534", created=7)
    shipped = oci.build_image([oci.FileEntry(path="/s", data=b"binary")], config, annotations={"a": "b"})
    derived = oci.with_layer(shipped, [oci.FileEntry(path="/smoke/in.json", data=b"{}", mode=0o644)])
    assert derived.layers[0] == shipped.layers[0] and len(derived.layers) == 2
    with tarfile.open(fileobj=io.BytesIO(derived.layers[1].data)) as tar:
        assert tar.getnames() == ["smoke", "smoke/in.json"]
    derived_config = json.loads(derived.config.data)
    shipped_config = json.loads(shipped.config.data)
    assert derived_config["rootfs"]["diff_ids"] == [
        *shipped_config["rootfs"]["diff_ids"],
        derived.layers[1].digest,
    ]
    assert derived_config["config"] == shipped_config["config"]  # the same entrypoint, user, labels
    assert json.loads(derived.manifest.data)["annotations"] == {"a": "b"}
    assert derived.image_id != shipped.image_id


def test_a_check_image_tag_is_private_to_the_run() -> None:
    class FakeEngine:  # only its run id is read
        run_id = "0123456789ab"

    service = load_project(REPO_ROOT).services["hello-c"]
    tag = check_image_tag(FakeEngine(), service, PLATFORMS["linux/arm/v7"], 1)  # type: ignore[arg-type]
    assert tag.startswith("osless-smoke:0123456789ab-") and tag.endswith("-armv7-1")
    assert not tag.startswith(service.image.repository)


# --- the cache key -------------------------------------------------------------------------------------


def key_of(service: Service) -> str:
    project = load_project(REPO_ROOT)
    return cache.target_key(
        cache.KeyInputs(
            service=service,
            toolchain=project.toolchains["gcc"],
            toolchain_image_id="sha256:" + "1" * 64,
            platform=PLATFORMS["linux/amd64"],
            source_digest="a" * 64,
            provenance=Provenance(revision=None, source_date_epoch=0),
        )
    )


def test_the_key_follows_the_content_of_smoke_files_not_their_place(tmp_path: Path) -> None:
    first = load(tmp_path / "one", SEVERAL, SEVERAL_FILES)
    second = load(tmp_path / "two", SEVERAL, SEVERAL_FILES)
    assert key_of(first) == key_of(second)  # the same recipe and files in another place
    (tmp_path / "two" / "tests/data/x.json").write_text('{"changed": true}\n')
    assert key_of(first) != key_of(second)
    (tmp_path / "two" / "tests/data/x.json").write_text("{}\n")
    (tmp_path / "two" / "tests/data/input.txt").write_text("other stdin\n")
    assert key_of(first) != key_of(second)


def test_the_key_follows_expectations_per_platform(tmp_path: Path) -> None:
    service = load(tmp_path, SEVERAL, SEVERAL_FILES)
    inline = service.smoke.checks[0]
    changed = dataclasses.replace(inline, platforms={"linux/386": SmokeExpect(stdout="32\n")})
    other = dataclasses.replace(
        service, smoke=dataclasses.replace(service.smoke, checks=(changed, *service.smoke.checks[1:]))
    )
    assert key_of(service) != key_of(other)


def test_a_smoke_file_gone_is_a_recipe_error_for_the_key(tmp_path: Path) -> None:
    service = load(tmp_path, SEVERAL, SEVERAL_FILES)
    (tmp_path / "tests/data/x.json").unlink()
    with pytest.raises(RecipeError) as raised:
        key_of(service)
    assert "x.json: cannot read it: No such file or directory" in str(raised.value.problems[0])


# --- JUnit and the summary -----------------------------------------------------------------------------

SCHEMA = xmlschema.XMLSchema(REPO_ROOT / "tests" / "data" / "junit.xsd")


def several_checks_failed() -> TargetReport:
    smoke = combined(
        True, [result("plain"), result("json", reason="stdout differs from the recipe", diff="-a\n+b")]
    )
    return target(
        "multi", "linux/arm64", status=Status.FAILED, failed_stage="smoke", reason=smoke.reason, smoke=smoke
    )


def test_junit_has_a_case_per_check_when_there_are_several() -> None:
    document = junit_xml(report(target("single"), several_checks_failed()))
    SCHEMA.validate(document.decode())
    root = ET.fromstring(document)
    names = [(c.get("classname"), c.get("name")) for c in root.iter("testcase")]
    assert [name for classname, name in names if classname == "single.linux/amd64"] == [
        "toolchain", "build", "verify", "package", "smoke"
    ]  # fmt: skip
    multi = {
        name: c
        for c in root.iter("testcase")
        if c.get("classname") == "multi.linux/arm64"
        for name in [c.get("name")]
    }
    assert list(multi) == ["toolchain", "build", "verify", "package", "smoke", "smoke: plain", "smoke: json"]
    assert multi["smoke"].find("failure") is not None  # the stage as before, for existing consumers
    assert multi["smoke: plain"].find("failure") is None
    assert multi["smoke: plain"].findtext("system-out") == "plain out\n"
    failure = multi["smoke: json"].find("failure")
    assert failure is not None and failure.get("message") == "stdout differs from the recipe"
    assert "-a\n+b" in (failure.text or "")
    suite = next(s for s in root.iter("testsuite") if s.get("name") == "multi")
    assert (suite.get("tests"), suite.get("failures")) == ("7", "2")


def test_junit_check_cases_of_a_cached_target_pass() -> None:
    smoke = combined(False, [result("a"), result("b")])
    root = ET.fromstring(junit_xml(report(target("c", smoke=smoke, cached=True))))
    cases = [c for c in root.iter("testcase") if (c.get("name") or "").startswith("smoke: ")]
    assert len(cases) == 2 and all(
        c.get("time") == "0.000" and "cached" in (c.findtext("system-out") or "") for c in cases
    )


def test_the_summary_lists_each_check_of_targets_with_several() -> None:
    text = summary.markdown(report(target("single"), several_checks_failed()))
    assert "Smoke checks:" in text
    assert "- multi linux/arm64: ✅ plain, ❌ json (stdout differs from the recipe)" in text
    assert "single linux/amd64:" not in text
