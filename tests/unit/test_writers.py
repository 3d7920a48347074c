"""The files a run leaves in out/: every registered writer, each file whole."""

from __future__ import annotations

import json
from pathlib import Path

from orchestrator.outputs import summary
from orchestrator.outputs.junit import junit_xml
from orchestrator.outputs.report import REPORT_SCHEMA
from orchestrator.outputs.writers import RUN_FILES, write_run_files
from tests.run_reports import failed_at_build, report, target


def test_every_run_file_is_written_from_the_report(tmp_path: Path) -> None:
    run = report(target("good"), failed_at_build())
    paths = write_run_files(run, tmp_path)
    assert paths == [tmp_path / f.name for f in RUN_FILES]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junit.xml", "report.json", "summary.md"]
    assert (tmp_path / "junit.xml").read_bytes() == junit_xml(run)
    assert (tmp_path / "summary.md").read_text() == summary.markdown(run)
    document = json.loads((tmp_path / "report.json").read_text())
    assert document["schema"] == REPORT_SCHEMA
    assert document["summary"] == {"targets": 2, "failed": 1}


def test_a_file_is_replaced_whole(tmp_path: Path) -> None:
    (tmp_path / "junit.xml").write_text("an older run")
    write_run_files(report(target("good")), tmp_path)
    assert (tmp_path / "junit.xml").read_bytes() == junit_xml(report(target("good")))
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
