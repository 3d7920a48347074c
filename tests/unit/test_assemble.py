"""`osless assemble` on inputs that need no engine: what it checks, and how it moves targets' files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.ci.assemble import assemble
from orchestrator.engine import Engine
from orchestrator.errors import UsageError
from orchestrator.outputs.report import REPORT_SCHEMA
from orchestrator.recipe.loader import load_project
from orchestrator.recipe.model import Project
from tests.conftest import REPO_ROOT


@pytest.fixture(scope="module")
def project() -> Project:
    return load_project(REPO_ROOT)


def no_engine() -> Engine:
    raise AssertionError("no engine is needed to merge failed targets")


def failed(service: str, platform: str, built_in: Path) -> dict[str, Any]:
    """A target that failed to build in the output directory `built_in` (on another machine)."""
    slug = platform.replace("/", "-")
    return {
        "service": service,
        "platform": platform,
        "status": "failed",
        "failed_stage": "build",
        "reason": f"exit 1; see {built_in}/{service}/{slug}/build.log",
        "toolchain_image": "sha256:" + "1" * 64,
        "binary": None,
        "verify_findings": [],
        "image": None,
        "smoke": None,
        "seconds": {"build": 1.5},
        "log": f"{built_in}/{service}/{slug}/build.log",
        "cached": False,
        "engine": "default",
    }


def output_dir(root: Path, *targets: dict[str, Any], started: str = "2026-01-01T00:00:00Z") -> Path:
    root.mkdir(parents=True)
    report = {
        "schema": REPORT_SCHEMA,
        "osless_version": "0.1.0",
        "engine_version": "20.10",
        "started": started,
        "seconds": 10.0,
        "toolchains": {"go": "sha256:" + "1" * 64},
        "targets": list(targets),
        "images": [],
        "unsupported": [],
        "summary": {"targets": len(targets), "failed": len(targets)},
    }
    (root / "report.json").write_text(json.dumps(report))
    for target in targets:
        directory = root / target["service"] / target["platform"].replace("/", "-")
        directory.mkdir(parents=True)
        (directory / "build.log").write_text(f"log of {target['service']} {target['platform']}\n")
    return root


def test_failed_targets_are_merged_in_build_order_with_their_files(project: Project, tmp_path: Path) -> None:
    machine = Path("/home/runner/work/osless/osless/out")  # where they were built: not here
    one = output_dir(
        tmp_path / "one", failed("hello-go", "linux/s390x", machine), started="2026-01-01T00:00:09Z"
    )
    two = output_dir(
        tmp_path / "two", failed("hello-go", "linux/amd64", machine), failed("hello-c", "linux/386", machine)
    )
    out = tmp_path / "out"
    report = assemble(project, [one, two], out, connect=no_engine)
    assert [(t.service, t.platform) for t in report.targets] == [
        ("hello-c", "linux/386"),
        ("hello-go", "linux/amd64"),
        ("hello-go", "linux/s390x"),
    ]
    assert report.images == [] and report.started == "2026-01-01T00:00:00Z" and report.seconds == 10.0
    for target in report.targets:
        log = out / target.service / target.platform.replace("/", "-") / "build.log"
        assert target.log == str(log) and log.read_text() == f"log of {target.service} {target.platform}\n"
        assert target.reason == f"exit 1; see {log}"
    written = json.loads((out / "report.json").read_text())
    assert written["summary"] == {"targets": 3, "failed": 3}
    assert (out / "junit.xml").is_file() and (out / "summary.md").is_file()


def test_the_toolchains_their_pulled_digests_and_locks_are_merged(project: Project, tmp_path: Path) -> None:
    machine = Path("/home/runner/work/osless/osless/out")
    one = output_dir(tmp_path / "one", failed("hello-go", "linux/amd64", machine))
    two = output_dir(tmp_path / "two", failed("hello-c", "linux/386", machine))
    for root, extra in (
        (one, {"toolchain_locks": {"go": "recipes/toolchains/go.lock sha256:" + "2" * 64}}),
        (
            two,
            {
                "toolchains": {"gcc": "sha256:" + "3" * 64},
                "toolchain_digests": {"gcc": "r.example/gcc@sha256:" + "4" * 64},
            },
        ),
    ):
        report = json.loads((root / "report.json").read_text())
        for key, value in extra.items():
            report[key] = {**report.get(key, {}), **value}
        (root / "report.json").write_text(json.dumps(report))
    merged = assemble(project, [one, two], tmp_path / "out", connect=no_engine)
    assert merged.toolchains == {"go": "sha256:" + "1" * 64, "gcc": "sha256:" + "3" * 64}
    assert merged.toolchain_digests == {"gcc": "r.example/gcc@sha256:" + "4" * 64}
    assert merged.toolchain_locks == {"go": "recipes/toolchains/go.lock sha256:" + "2" * 64}


def test_an_input_without_a_report_is_refused(project: Project, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match=r"no report\.json"):
        assemble(project, [tmp_path / "empty"], tmp_path / "out", connect=no_engine)


def test_a_target_in_two_inputs_is_refused(project: Project, tmp_path: Path) -> None:
    one = output_dir(tmp_path / "one", failed("hello-go", "linux/amd64", tmp_path / "x"))
    two = output_dir(tmp_path / "two", failed("hello-go", "linux/amd64", tmp_path / "y"))
    with pytest.raises(UsageError, match=r"hello-go linux/amd64 is in both"):
        assemble(project, [one, two], tmp_path / "out", connect=no_engine)


def test_a_target_the_recipes_do_not_have_is_refused(project: Project, tmp_path: Path) -> None:
    one = output_dir(tmp_path / "one", failed("tls-go", "linux/s390x", tmp_path / "x"))
    with pytest.raises(UsageError, match="not a target of"):
        assemble(project, [one], tmp_path / "out", connect=no_engine)


def test_a_passed_target_without_its_files_is_refused(project: Project, tmp_path: Path) -> None:
    target = failed("hello-go", "linux/amd64", tmp_path / "one")
    target |= {"status": "passed", "failed_stage": None, "reason": None}
    one = output_dir(tmp_path / "one", target)
    with pytest.raises(UsageError, match=r"passed but image\.tar, result\.json, the binary is missing"):
        assemble(project, [one], tmp_path / "out", connect=no_engine)


def test_a_report_of_another_schema_is_refused(project: Project, tmp_path: Path) -> None:
    one = output_dir(tmp_path / "one")
    (one / "report.json").write_text(json.dumps({"schema": REPORT_SCHEMA + 1, "targets": []}))
    with pytest.raises(UsageError, match="schema"):
        assemble(project, [one], tmp_path / "out", connect=no_engine)
