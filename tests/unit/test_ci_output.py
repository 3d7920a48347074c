"""CI-friendly output: GitHub Actions annotations and log groups, the job summary, exit codes per stage.

Recipe errors go through the real command line with DOCKER_HOST pointing nowhere (a command that
contacted the engine would exit 4); a finished run is a fake Runner's report, so no engine is needed.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from orchestrator.cli.commands import build as build_command
from orchestrator.cli.main import main
from orchestrator.errors import (
    TargetsFailed,
    TargetsFailedAtBuild,
    TargetsFailedAtSmoke,
    TargetsFailedAtToolchain,
    TargetsFailedAtVerify,
    targets_failed,
)
from orchestrator.outputs import github, summary
from orchestrator.outputs.progress import ProgressView
from orchestrator.outputs.report import RunReport, Status, Unsupported
from tests.factories import true_recipe
from tests.run_reports import failed_at_build, failed_at_smoke, report, target

NO_ENGINE = "unix:///nonexistent/docker.sock"
OK_SOURCE = {"sources/ok/main.c": "int main(void) { return 0; }\n"}


@pytest.fixture
def actions(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A GitHub Actions step: its env, a job summary file, and no engine to talk to."""
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_WORKSPACE", str(tmp_path))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "step-summary.md"))
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE)
    return tmp_path / "step-summary.md"


@pytest.fixture
def outside_actions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a GitHub Actions step, whatever the environment running the tests says."""
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


def test_escaping_follows_the_actions_runner() -> None:
    assert github.escape_data("100% done\r\nnext: a,b") == "100%25 done%0D%0Anext: a,b"
    assert github.escape_property("100% a:b,c\n") == "100%25 a%3Ab%2Cc%0A"
    line = github.command("error", "x\ny", file="a,b.toml", line=3, col=None, title="t: 1%")
    assert line == "::error file=a%2Cb.toml,line=3,title=t%3A 1%25::x%0Ay"
    assert github.command("endgroup") == "::endgroup::"
    assert github.active({"GITHUB_ACTIONS": "true"}) and not github.active({"CI": "true"})


def test_recipe_errors_are_annotations_on_their_file_line_and_column(
    actions: Path, make_project: Callable[[dict[str, str]], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(
        {
            **OK_SOURCE,
            "recipes/typo.toml": true_recipe("typo", key="comand"),
            "recipes/percent.toml": true_recipe("percent", platform="linux/100%,x"),
            "recipes/syntax.toml": true_recipe("syntax").replace('["true"]', '["true",\n  oops ]'),
        }
    )
    assert main(["-C", str(project), "build"]) == 3
    out = capsys.readouterr().out
    errors = [line for line in out.splitlines() if line.startswith("::error ")]
    assert len(errors) == 4, out  # typo: unknown key and missing command; percent; syntax
    # Paths relative to the workspace, as GitHub resolves them; `:` and `,` escaped in properties.
    assert (
        "::error file=project/recipes/typo.toml,line=7,title=invalid recipe%3A build.comand::"
        "unknown key (did you mean 'command'?)"
    ) in errors
    syntax = next(line for line in errors if "syntax.toml" in line)
    assert re.match(r"::error file=project/recipes/syntax\.toml,line=8,col=3,title=invalid recipe::", syntax)
    percent = next(line for line in errors if "percent.toml" in line)
    assert "'linux/100%25,x'" in percent and "%0A" not in percent
    # The job summary says so too.
    assert "4 problems in recipes, nothing was built" in actions.read_text()
    assert "recipes/syntax.toml:8:3" in actions.read_text()


def test_no_workflow_commands_outside_github_actions(
    outside_actions: None,
    monkeypatch: pytest.MonkeyPatch,
    make_project: Callable[[dict[str, str]], Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE)
    project = make_project({**OK_SOURCE, "recipes/typo.toml": true_recipe("typo", key="comand")})
    assert main(["-C", str(project), "build"]) == 3
    captured = capsys.readouterr()
    assert "::" not in captured.out and "recipes/typo.toml:7" in captured.err


def test_phases_are_groups_that_never_nest() -> None:
    output = io.StringIO()
    console = Console(file=output, force_terminal=True, width=200)  # as with FORCE_COLOR: still no live view
    with ProgressView(console, groups=True) as view:
        view.step("before", "any phase")
        view.phase("toolchains")
        view.step("toolchain gcc", "present")
        view.phase("targets: 2")
        view.step("a linux/amd64", "build")
        view.phase("images")
    lines = output.getvalue().splitlines()
    markers = [line for line in lines if line.startswith("::")]
    assert markers == [
        "::group::toolchains",
        "::endgroup::",
        "::group::targets: 2",
        "::endgroup::",
        "::group::images",
        "::endgroup::",
    ]
    assert lines.index("::group::toolchains") < next(i for i, s in enumerate(lines) if "gcc" in s)
    silent = io.StringIO()
    with ProgressView(Console(file=silent, force_terminal=False), groups=False) as view:
        view.phase("toolchains")
    assert silent.getvalue() == ""


class FakeRunner:
    """Stands in for the pipeline: walks through the phases and returns a prepared report."""

    result: RunReport

    def __init__(self, project: Any, options: Any, engine: Any, view: ProgressView, *rest: Any) -> None:
        self.view = view

    def run(self, targets: Any) -> RunReport:
        self.view.phase("toolchains")
        self.view.step("toolchain gcc", "present", done=True)
        self.view.phase("targets")
        for t in self.result.targets:
            self.view.step(f"{t.service} {t.platform}", t.status.value, done=True)
        return self.result

    def cancel(self) -> None:
        raise AssertionError("not interrupted")


class FakeEngine:
    @staticmethod
    def connect(*args: Any, **kwargs: Any) -> FakeEngine:
        return FakeEngine()


def _build(
    monkeypatch: pytest.MonkeyPatch, make_project: Callable[[dict[str, str]], Path], result: RunReport
) -> int:
    monkeypatch.setattr(build_command, "Engine", FakeEngine)
    monkeypatch.setattr(build_command, "Runner", type("Runner", (FakeRunner,), {"result": result}))
    project = make_project({**OK_SOURCE, "recipes/ok.toml": true_recipe("ok")})
    return main(["-C", str(project), "build", "--out", str(project / "out")])


def test_a_finished_run_in_github_actions(
    actions: Path,
    monkeypatch: pytest.MonkeyPatch,
    make_project: Callable[[dict[str, str]], Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = report(target("good"), target("good", "linux/arm64", cached=True), failed_at_smoke())
    assert _build(monkeypatch, make_project, result) == TargetsFailedAtSmoke.exit_code == 12
    out = capsys.readouterr().out
    lines = out.splitlines()
    # Phases fold; the summary table and the annotations come after the last group closed.
    assert [line for line in lines if line.startswith(("::group::", "::endgroup::"))] == [
        "::group::toolchains",
        "::endgroup::",
        "::group::targets",
        "::endgroup::",
    ]
    errors = [line for line in lines if line.startswith("::error")]
    assert errors[0] == (
        "::error title=mismatch linux/arm64::smoke: exit code 3, expected 0; stdout differs%0A"
        "--- expected stdout%0A+++ actual stdout%0A@@ -1 +1 @@%0A-hello%0A+hi"
    )
    assert errors[1] == "::error title=osless::1 of 3 targets failed"
    assert lines.index(errors[0]) > max(i for i, s in enumerate(lines) if s == "::endgroup::")
    table = actions.read_text()
    assert "| service | platform | result | failed stage | reason | binary size | image size |" in table
    assert "| mismatch | linux/arm64 | ❌ **failed** | smoke | exit code 3, expected 0; stdout differs |" in (
        table
    )
    assert "| good | linux/arm64 | ✅ passed (cached) |  |  | 781.2 KiB | 800.8 KiB |" in table
    assert "**Total:** 3 targets: 2 passed (1 cached), 1 failed" in table


def test_the_step_summary_is_appended_not_replaced(
    actions: Path,
    monkeypatch: pytest.MonkeyPatch,
    make_project: Callable[[dict[str, str]], Path],
) -> None:
    actions.write_text("# earlier step\n")
    assert _build(monkeypatch, make_project, report(target("good"))) == 0
    text = actions.read_text()
    assert text.startswith("# earlier step\n## osless build: 1 target, all passed\n")


def test_the_earliest_failing_stage_decides_the_exit_code(
    outside_actions: None,
    monkeypatch: pytest.MonkeyPatch,
    make_project: Callable[[dict[str, str]], Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = report(failed_at_smoke(), failed_at_build(), target("good"))
    assert _build(monkeypatch, make_project, result) == 10
    out = capsys.readouterr().out
    assert "::" not in out  # no workflow commands outside GitHub Actions


@pytest.mark.parametrize(
    ("stages", "kind", "code"),
    [
        (["smoke"], TargetsFailedAtSmoke, 12),
        (["verify", "smoke"], TargetsFailedAtVerify, 11),
        (["smoke", "build", "verify"], TargetsFailedAtBuild, 10),
        (["smoke", "toolchain"], TargetsFailedAtToolchain, 5),
        (["package", "smoke"], TargetsFailed, 6),
        (["queued"], TargetsFailed, 6),
        (["queued", "smoke"], TargetsFailedAtSmoke, 12),
        ([], TargetsFailed, 6),
    ],
)
def test_exit_codes_per_stage(stages: list[str], kind: type[TargetsFailed], code: int) -> None:
    error = targets_failed("failed", stages)
    assert type(error) is kind and error.exit_code == code


def test_markdown_cells_stay_in_their_cell() -> None:
    odd = target(
        "odd",
        status=Status.FAILED,
        failed_stage="verify",
        reason="a | b\nc <script>",
        image=None,
    )
    unsupported = [Unsupported(service="odd", platform="linux/s390x", reason="no musl")]
    text = summary.markdown(replace(report(odd), unsupported=unsupported))
    assert "| a \\| b c &lt;script&gt; |" in text
    assert "- odd linux/s390x: no musl" in text


def test_an_unwritable_step_summary_is_left_out(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "missing" / "summary.md"))
    assert github.append_step_summary("## x") is None
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))
    assert github.append_step_summary("## x") == tmp_path / "summary.md"
    assert (tmp_path / "summary.md").read_text() == "## x\n"
