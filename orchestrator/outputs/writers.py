"""The files a run leaves in out/ beside its targets and images: one list, each made from the RunReport.

Adding an output is one entry in RUN_FILES: a file name and a pure function from the run report to the
file's bytes. Every file is written through `atomic.write_atomic`, so a reader sees the old file or the
whole new one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from orchestrator.outputs import junit, summary
from orchestrator.outputs.atomic import write_atomic
from orchestrator.outputs.report import RunReport, report_json


@dataclass(frozen=True)
class RunFile:
    """One file in out/ and how it is made from the run report."""

    name: str
    render: Callable[[RunReport], bytes]


RUN_FILES = (
    RunFile("report.json", report_json),  # for machines; docs/report.md
    RunFile("junit.xml", junit.junit_xml),  # the same run for CI test reports
    RunFile("summary.md", lambda report: summary.markdown(report).encode("utf-8")),  # for people
)


def write_run_files(report: RunReport, out_root: Path) -> list[Path]:
    """Every file of RUN_FILES in out_root, each replaced atomically; their paths."""
    paths = []
    for run_file in RUN_FILES:
        path = out_root / run_file.name
        write_atomic(path, run_file.render(report))
        paths.append(path)
    return paths
