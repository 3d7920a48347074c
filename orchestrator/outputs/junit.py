"""The run as JUnit XML (out/junit.xml), the test report format CI systems display.

One test case per target and stage: classname `<service>.<platform>`, name the stage (toolchain,
build, verify, package, smoke). The stages a target passed are passing cases timed from the report,
the stage it stopped at is a `<failure>` (an `<error>` for an internal error of osless) with the
reason and, for smoke, the stdout diff, and the stages it never reached are `<skipped/>`. A target
with several smoke checks has one more case per check, named `smoke: <check>`, after its smoke case. A
cached target's cases pass with time 0 and a "cached" note in system-out. One `<testsuite>` per service.

The document is valid against the Jenkins / Maven Surefire JUnit schema (tests/data/junit.xsd). Pure:
made from the RunReport alone (`outputs.writers` writes it).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field

from orchestrator.outputs.report import RunReport, Status, TargetReport
from orchestrator.stages.smoke import INTERRUPTED, CheckResult

STAGES = ("toolchain", "build", "verify", "package", "smoke")
# The report's finer timings each case adds up (report.json `seconds`, docs/report.md)
CASE_TIMINGS = {
    "toolchain": ("toolchain",),
    "build": ("fetch", "builder", "workspace", "build", "copy-out"),
    "verify": ("verify",),
    "package": ("package", "load"),
    "smoke": ("smoke",),
}
INTERNAL = "internal error"  # how the pipeline's reasons for a bug of osless begin

# Characters XML 1.0 cannot carry at all (even escaped): most C0 controls, lone surrogates, U+FFFE/F.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@dataclass
class _Counts:
    tests: int = 0
    failures: int = 0
    errors: int = 0
    skipped: int = 0
    seconds: float = 0.0

    def add(self, other: _Counts) -> None:
        self.tests += other.tests
        self.failures += other.failures
        self.errors += other.errors
        self.skipped += other.skipped
        self.seconds += other.seconds


@dataclass
class _Suite:
    name: str
    targets: list[TargetReport] = field(default_factory=list)


def junit_xml(report: RunReport) -> bytes:
    """The whole report as a JUnit XML document (UTF-8, with its declaration)."""
    suites: dict[str, _Suite] = {}
    for target in report.targets:
        suites.setdefault(target.service, _Suite(target.service)).targets.append(target)
    root = ET.Element("testsuites", name="osless build")
    total = _Counts()
    for suite in suites.values():
        element, counts = _testsuite(suite.name, suite.targets, report)
        root.append(element)
        total.add(counts)
    root.attrib.update(
        tests=str(total.tests),
        failures=str(total.failures),
        errors=str(total.errors),
        time=_time(report.seconds),
    )
    ET.indent(root)
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document + b"\n"


def _testsuite(name: str, targets: Sequence[TargetReport], report: RunReport) -> tuple[ET.Element, _Counts]:
    suite = ET.Element("testsuite", name=_text(name))
    properties = ET.SubElement(suite, "properties")
    for key, value in (("osless.version", report.osless_version), ("engine.version", report.engine_version)):
        ET.SubElement(properties, "property", name=key, value=_text(value))
    counts = _Counts()
    for target in targets:
        for case in _testcases(target):
            suite.append(case)
            counts.tests += 1
            counts.failures += case.find("failure") is not None
            counts.errors += case.find("error") is not None
            counts.skipped += case.find("skipped") is not None
            counts.seconds += float(case.get("time", "0"))
    suite.attrib.update(
        tests=str(counts.tests),
        failures=str(counts.failures),
        errors=str(counts.errors),
        skipped=str(counts.skipped),
        time=_time(counts.seconds),
        timestamp=report.started,
    )
    return suite, counts


def _testcases(target: TargetReport) -> list[ET.Element]:
    """The target's five cases: passed up to where it stopped, that stage failed, the rest skipped."""
    classname = f"{target.service}.{target.platform}"
    if target.status is Status.PASSED:
        stopped_at = len(STAGES)
    elif target.failed_stage in STAGES:
        stopped_at = STAGES.index(target.failed_stage)
    else:  # stopped before its first stage (not started, or a bug of ours before it began)
        stopped_at = 0
    never_started = target.status is Status.CANCELLED and target.failed_stage not in STAGES
    cases = []
    for index, stage in enumerate(STAGES):
        case = ET.Element("testcase", name=stage, classname=_text(classname))
        seconds = sum(target.seconds.get(timing, 0.0) for timing in CASE_TIMINGS[stage])
        case.set("time", _time(0.0 if target.cached else seconds))
        if index < stopped_at:
            _passed(case, target, stage)
        elif index == stopped_at and not never_started:
            _stopped(case, target, stage)
        else:
            reached = f"not reached: stopped at {STAGES[stopped_at]}"
            reason = (target.reason or "not started") if never_started else reached
            ET.SubElement(case, "skipped", message=_text(reason))
        cases.append(case)
    if target.smoke and len(target.smoke.checks) > 1:
        cases += [_check_case(classname, target, check) for check in target.smoke.checks]
    return cases


def _check_case(classname: str, target: TargetReport, check: CheckResult) -> ET.Element:
    """One smoke check of a target with several: passed with its output, failed with its reason and diff."""
    case = ET.Element("testcase", name=_text(f"smoke: {check.name}"), classname=_text(classname))
    case.set("time", _time(0.0 if target.cached else check.seconds))
    if target.cached:
        note = _cached_note(target)
        ET.SubElement(case, "system-out").text = note
        return case
    if check.reason == INTERRUPTED:
        ET.SubElement(case, "skipped", message=_text(check.reason))
        return case
    if not check.passed:
        reason = check.reason or "failed"
        failure = ET.SubElement(case, "failure", message=_text(reason), type="osless.smoke")
        failure.text = _text("\n".join([reason, *(["", check.diff.rstrip("\n")] if check.diff else [])]))
    if check.stdout:
        ET.SubElement(case, "system-out").text = _text(check.stdout)
    if check.stderr:
        ET.SubElement(case, "system-err").text = _text(check.stderr)
    return case


def _cached_note(target: TargetReport) -> str:
    if target.result_from == "remote-cache":
        return (
            "remote cache: inputs unchanged, the passed result of another run was downloaded, checked "
            "and its binary verified again; " + "; ".join(target.notes)
        )
    return "cached: inputs unchanged, the passed result of an earlier run was reused"


def _passed(case: ET.Element, target: TargetReport, stage: str) -> None:
    if target.cached:
        note = _cached_note(target)
        ET.SubElement(case, "system-out").text = note
    elif stage == "smoke" and target.smoke:
        _smoke_output(case, target)


def _stopped(case: ET.Element, target: TargetReport, stage: str) -> None:
    """The stage the target stopped at: a failure, an error (a bug of ours), or skipped (cancelled)."""
    reason = target.reason or f"{target.status.value} at {target.failed_stage or 'start'}"
    if target.status is Status.CANCELLED:
        ET.SubElement(case, "skipped", message=_text(reason))
        return
    kind = "error" if reason.startswith(INTERNAL) else "failure"
    details = [reason]
    if stage == "build" and target.log:
        details.append(f"build log: {target.log}")
    if stage == "verify":
        details += [
            f"{finding.get('severity')} {finding.get('id')}: {finding.get('message')}"
            for finding in target.verify_findings
            if finding.get("severity") == "error"
        ]
    if stage == "smoke" and target.smoke and target.smoke.diff:
        details += ["", target.smoke.diff.rstrip("\n")]
    failure = ET.SubElement(case, kind, message=_text(reason), type=f"osless.{stage}")
    failure.text = _text("\n".join(details))
    if stage == "smoke" and target.smoke:
        _smoke_output(case, target)


def _smoke_output(case: ET.Element, target: TargetReport) -> None:
    assert target.smoke is not None
    if target.smoke.stdout:
        ET.SubElement(case, "system-out").text = _text(target.smoke.stdout)
    if target.smoke.stderr:
        ET.SubElement(case, "system-err").text = _text(target.smoke.stderr)


def _text(value: str) -> str:
    """Text XML can carry: characters it forbids become U+FFFD."""
    return _NOT_XML.sub("\ufffd", value)


def _time(seconds: float) -> str:
    return f"{max(seconds, 0.0):.3f}"
