"""GitHub Actions workflow commands: log groups, error annotations and the job's step summary.

Active when the environment says the run is a GitHub Actions job (GITHUB_ACTIONS=true). Commands are
lines on stdout; their data and property values are escaped as the Actions runner expects (the same
rules as @actions/core), so a reason with a newline, a percent sign, a comma or a colon arrives intact.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from orchestrator.errors import RecipeProblem
from orchestrator.outputs.report import Status, TargetReport


def active(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process runs as a step of a GitHub Actions job."""
    return (os.environ if environ is None else environ).get("GITHUB_ACTIONS") == "true"


def escape_data(text: str) -> str:
    """A command's message: `%`, CR and LF are percent-encoded."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A command's property value: as a message, and `:` and `,` too (they delimit properties)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(name: str, message: str = "", **properties: str | int | None) -> str:
    """One workflow command line, e.g. `::error file=a.toml,line=3::bad`; None properties are left out."""
    given = ",".join(
        f"{key}={escape_property(str(value))}" for key, value in properties.items() if value is not None
    )
    return f"::{name}{' ' + given if given else ''}::{escape_data(message)}"


def group(title: str) -> str:
    return command("group", title)


def endgroup() -> str:
    return command("endgroup")


def recipe_annotations(problems: Iterable[RecipeProblem], root: Path) -> list[str]:
    """An `::error` per recipe problem, on its file, line and column."""
    lines = []
    for problem in problems:
        message = problem.message + (f" ({problem.hint})" if problem.hint else "")
        title = f"invalid recipe: {problem.key}" if problem.key else "invalid recipe"
        lines.append(
            command(
                "error",
                message,
                file=annotation_path(root, problem.file),
                line=problem.line,
                col=problem.column,
                title=title,
            )
        )
    return lines


def target_annotations(targets: Iterable[TargetReport]) -> list[str]:
    """An `::error` per failed target, titled `<service> <platform>`: the stage, the reason, a diff."""
    lines = []
    for target in targets:
        if target.status is not Status.FAILED:
            continue
        message = f"{target.failed_stage}: {target.reason or 'failed'}"
        if target.failed_stage == "smoke" and target.smoke and target.smoke.diff:
            message += "\n" + target.smoke.diff.rstrip("\n")
        lines.append(command("error", message, title=f"{target.service} {target.platform}"))
    return lines


def annotation_path(root: Path, file: str) -> str:
    """A recipe path (relative to the project root) as GitHub resolves it: relative to the workspace."""
    path = (root / file).resolve()
    base = Path(os.environ.get("GITHUB_WORKSPACE") or Path.cwd()).resolve()
    return path.relative_to(base).as_posix() if path.is_relative_to(base) else file


def append_step_summary(markdown: str) -> Path | None:
    """Append to the job summary file ($GITHUB_STEP_SUMMARY), when there is one and it can be written.

    A summary that cannot be written never changes the run's outcome: it is left out.
    """
    name = os.environ.get("GITHUB_STEP_SUMMARY")
    if not name:
        return None
    path = Path(name)
    try:
        with path.open("a", encoding="utf-8") as summary:
            summary.write(markdown if markdown.endswith("\n") else markdown + "\n")
    except OSError:
        return None
    return path
