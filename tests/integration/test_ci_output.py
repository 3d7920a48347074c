"""A real build as GitHub Actions runs it: folded log, annotations, junit.xml, summaries, exit code."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest
import xmlschema

from tests.conftest import REPO_ROOT
from tests.factories import HI_C, passing_and_failing, smoked_c_recipe
from tests.integration.conftest import run_osless

pytestmark = pytest.mark.integration

SCHEMA = xmlschema.XMLSchema(REPO_ROOT / "tests" / "data" / "junit.xsd")


def test_one_passing_one_failing_target_in_github_actions(
    make_project: Callable[[dict[str, str]], Path], tmp_path: Path
) -> None:
    project = make_project(passing_and_failing("good", "mismatch"))
    step_summary = tmp_path / "step-summary.md"
    step_summary.write_text("# before osless\n")
    env = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(step_summary)}
    run = run_osless(project, "build", out=tmp_path / "out", env=env)
    assert run.returncode == 12, run.stdout + run.stderr  # a smoke test failed

    # The log: groups that open and close in turn, then the failed target as an annotation.
    lines = run.stdout.splitlines()
    markers = [line for line in lines if line.startswith(("::group::", "::endgroup::"))]
    assert len(markers) == 6 and markers[0] == "::group::toolchains", markers
    assert markers[1::2] == ["::endgroup::"] * 3  # each group closed before the next opens
    assert markers[2].startswith("::group::targets") and markers[4].startswith("::group::images")
    errors = [line for line in lines if line.startswith("::error title=mismatch linux/amd64::")]
    assert len(errors) == 1 and "smoke: " in errors[0] and "-hello%0A+hi" in errors[0], run.stdout
    assert not any(line.startswith("::error title=good") for line in lines)

    # junit.xml: valid, the failure on the smoke case with the diff, the passing target green.
    junit = tmp_path / "out" / "junit.xml"
    SCHEMA.validate(str(junit))
    root = ET.parse(junit).getroot()
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("10", "1", "0")
    cases = {(c.get("classname"), c.get("name")): c for c in root.iter("testcase")}
    failure = cases["mismatch.linux/amd64", "smoke"].find("failure")
    assert failure is not None and "stdout differs" in (failure.get("message") or "")
    assert "-hello" in (failure.text or "") and "+hi" in (failure.text or "")
    good = [case for (classname, _), case in cases.items() if classname == "good.linux/amd64"]
    assert len(good) == 5
    assert all(len(case.findall("failure")) + len(case.findall("skipped")) == 0 for case in good)
    assert float(cases["good.linux/amd64", "build"].get("time") or 0) > 0

    # The summaries: out/summary.md always, and the same appended to the job summary.
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "| mismatch | linux/amd64 | ❌ **failed** | smoke |" in summary
    assert "| good | linux/amd64 | ✅ passed |" in summary
    assert step_summary.read_text() == "# before osless\n" + summary


def test_a_build_failure_exits_10_and_shows_in_junit(
    make_project: Callable[[dict[str, str]], Path], tmp_path: Path
) -> None:
    project = make_project(
        {
            "sources/c/hello.c": HI_C,
            "sources/broken/hello.c": "int main(void) { return missing; }\n",
            "recipes/good.toml": smoked_c_recipe("good", "c", stdout="hi\\n", exit_code=0),
            "recipes/broken.toml": smoked_c_recipe("broken", "broken", stdout="hi\\n", exit_code=0),
        }
    )
    run = run_osless(project, "build", out=tmp_path / "out", env={"GITHUB_ACTIONS": "false"})
    assert run.returncode == 10, run.stdout + run.stderr
    assert "::" not in run.stdout  # plain log lines outside GitHub Actions
    junit = tmp_path / "out" / "junit.xml"
    SCHEMA.validate(str(junit))
    cases = {(c.get("classname"), c.get("name")): c for c in ET.parse(junit).getroot().iter("testcase")}
    failure = cases["broken.linux/amd64", "build"].find("failure")
    assert failure is not None and "missing" in (failure.get("message") or "")
    assert cases["broken.linux/amd64", "smoke"].find("skipped") is not None
