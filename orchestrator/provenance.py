"""Where a build comes from: the git revision and the time that stands for it (SOURCE_DATE_EPOCH).

Timestamps in binaries and images come from the source, never from the clock, so that a rebuild of
the same source gives the same bytes.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, kw_only=True)
class Provenance:
    """The facts about a service's source that go into labels and build environments."""

    revision: str | None  # git commit of the project, None outside a repository
    source_date_epoch: int


def provenance(source: Path) -> Provenance:
    """SOURCE_DATE_EPOCH from the environment, else the source's last commit time, else 0."""
    revision = _git(source, "rev-parse", "HEAD")
    from_env = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if from_env.isdigit():
        epoch = int(from_env)
    else:
        committed = _git(source, "log", "-1", "--format=%ct", "--", ".")
        epoch = int(committed) if committed and committed.isdigit() else 0
    return Provenance(revision=revision, source_date_epoch=epoch)


def _git(cwd: Path, *args: str) -> str | None:
    try:
        completed = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    output = completed.stdout.strip()
    return output if completed.returncode == 0 and output else None
