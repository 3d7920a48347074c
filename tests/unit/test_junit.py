"""out/junit.xml from a RunReport: one case per target and stage, valid against the JUnit schema."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
import xmlschema

from orchestrator.outputs.junit import STAGES, junit_xml
from orchestrator.outputs.report import RunReport, Status
from tests.conftest import REPO_ROOT
from tests.run_reports import failed_at_build, failed_at_smoke, report, target

SCHEMA = xmlschema.XMLSchema(REPO_ROOT / "tests" / "data" / "junit.xsd")


@pytest.fixture
def mixed() -> RunReport:
    return report(
        target("good"),
        target("good", "linux/arm64", cached=True),
        failed_at_build(),
        failed_at_smoke(),
    )


def parse(document: bytes) -> ET.Element:
    SCHEMA.validate(document.decode())
    root = ET.fromstring(document)
    assert root.tag == "testsuites"
    return root


def cases(root: ET.Element, classname: str) -> dict[str, ET.Element]:
    found = {c.get("name", ""): c for c in root.iter("testcase") if c.get("classname") == classname}
    assert list(found) == list(STAGES), f"{classname}: {list(found)}"
    return found


def outcome(case: ET.Element) -> str:
    kinds = [child.tag for child in case if child.tag in {"failure", "error", "skipped"}]
    assert len(kinds) <= 1, kinds
    return kinds[0] if kinds else "passed"


def test_the_document_is_valid_junit_with_one_case_per_target_and_stage(mixed: RunReport) -> None:
    root = parse(junit_xml(mixed))
    assert [s.get("name") for s in root.iter("testsuite")] == ["good", "broken", "mismatch"]
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("time")) == (
        "20",
        "2",
        "0",
        "12.500",
    )
    broken = next(s for s in root.iter("testsuite") if s.get("name") == "broken")
    counts = {k: broken.get(k) for k in ("tests", "failures", "errors", "skipped", "timestamp")}
    assert counts == {
        "tests": "5",
        "failures": "1",
        "errors": "0",
        "skipped": "3",
        "timestamp": "2025-01-02T03:04:05Z",
    }


def test_passed_stages_carry_their_times(mixed: RunReport) -> None:
    good = cases(parse(junit_xml(mixed)), "good.linux/amd64")
    assert {name: outcome(case) for name, case in good.items()} == dict.fromkeys(STAGES, "passed")
    assert {name: case.get("time") for name, case in good.items()} == {
        "toolchain": "0.000",
        "build": "2.500",
        "verify": "0.250",
        "package": "0.500",
        "smoke": "0.750",
    }
    assert good["smoke"].findtext("system-out") == "hi\n"


def test_a_cached_target_passes_with_a_note(mixed: RunReport) -> None:
    cached = cases(parse(junit_xml(mixed)), "good.linux/arm64")
    for case in cached.values():
        assert outcome(case) == "passed" and case.get("time") == "0.000"
        assert "cached" in (case.findtext("system-out") or "")


def test_a_build_failure_fails_that_case_and_skips_the_rest(mixed: RunReport) -> None:
    broken = cases(parse(junit_xml(mixed)), "broken.linux/amd64")
    assert {name: outcome(case) for name, case in broken.items()} == {
        "toolchain": "passed",
        "build": "failure",
        "verify": "skipped",
        "package": "skipped",
        "smoke": "skipped",
    }
    failure = broken["build"].find("failure")
    assert failure is not None
    assert failure.get("message") == "hello.c:1: error: 'missing' undeclared"
    assert "/out/build.log" in (failure.text or "")
    assert broken["build"].get("time") == "1.500"
    skipped = broken["smoke"].find("skipped")
    assert skipped is not None and "stopped at build" in (skipped.get("message") or "")


def test_a_smoke_failure_carries_the_reason_and_the_diff(mixed: RunReport) -> None:
    mismatch = cases(parse(junit_xml(mixed)), "mismatch.linux/arm64")
    assert [outcome(c) for c in mismatch.values()] == ["passed"] * 4 + ["failure"]
    failure = mismatch["smoke"].find("failure")
    assert failure is not None
    assert failure.get("message") == "exit code 3, expected 0; stdout differs"
    assert "-hello\n+hi" in (failure.text or "")
    # The escape character of the stderr is not XML: replaced, the rest (with <&>) kept.
    assert mismatch["smoke"].findtext("system-err") == "warning <&> \ufffd[31m\n"


def test_toolchain_internal_error_and_cancelled_targets() -> None:
    toolchain = target(
        "t", status=Status.FAILED, failed_stage="toolchain", reason="mmdebstrap failed", seconds={}
    )
    internal = target(
        "i", status=Status.FAILED, failed_stage="verify", reason="internal error: KeyError: 'x'", seconds={}
    )
    queued = target(
        "q", status=Status.CANCELLED, failed_stage="queued", reason="not started: the run was stopped"
    )
    root = parse(junit_xml(report(toolchain, internal, queued)))
    assert [outcome(c) for c in cases(root, "t.linux/amd64").values()] == ["failure"] + ["skipped"] * 4
    assert [outcome(c) for c in cases(root, "i.linux/amd64").values()] == [
        "passed",
        "passed",
        "error",
        "skipped",
        "skipped",
    ]
    skipped = [c.find("skipped") for c in cases(root, "q.linux/amd64").values()]
    assert all(s is not None and s.get("message") == "not started: the run was stopped" for s in skipped)
    assert (root.get("failures"), root.get("errors")) == ("1", "1")


def test_the_schema_rejects_what_ci_would_reject() -> None:
    """The XSD really checks: a testsuite without its counts, a case without a name."""
    assert not SCHEMA.is_valid('<testsuites><testsuite name="a"/></testsuites>')
    assert not SCHEMA.is_valid(
        '<testsuites><testsuite name="a" tests="1" failures="0" errors="0"><testcase/></testsuite>'
        "</testsuites>"
    )
    assert not SCHEMA.is_valid('<testsuites time="1.5s"/>')
