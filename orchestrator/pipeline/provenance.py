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

    revision: str | None  # the last git commit that touched the source, None outside a repository
    source_date_epoch: int
    source_url: str | None = None  # the repository's remote URL, when it has one


def provenance(source: Path) -> Provenance:
    """The last commit that touched the source, and SOURCE_DATE_EPOCH: from the environment, else that
    commit's time, else 0. Commits elsewhere in the project change neither, so they rebuild nothing."""
    revision, _, committed = (_git(source, "log", "-1", "--format=%H %ct", "--", ".") or "").partition(" ")
    from_env = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    epoch = next((int(value) for value in (from_env, committed) if value.isdigit()), 0)
    remote = _git(source, "config", "--get", "remote.origin.url")
    url = remote if remote and ("://" in remote or "@" in remote) else None  # not a local clone's path
    return Provenance(revision=revision or None, source_date_epoch=epoch, source_url=url)


def _git(cwd: Path, *args: str) -> str | None:
    try:
        completed = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    output = completed.stdout.strip()
    return output if completed.returncode == 0 and output else None


def changed_files(root: Path, ref: str) -> list[Path] | None:
    """Files changed since `ref` (committed or not, and untracked new ones); None if git cannot say.

    `ref` comes from the command line: it is resolved to a commit first, after `--end-of-options`, so
    a value like `--output=FILE` is a revision git does not know, never an option of `git diff`.
    """
    commit = _git(root, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
    if commit is None:
        return None
    diff = _git(root, "diff", "--name-only", "--relative", commit, "--")
    untracked = _git(root, "ls-files", "--others", "--exclude-standard")
    names = (diff or "").splitlines() + (untracked or "").splitlines()
    return [(root / name).resolve() for name in names if name]
