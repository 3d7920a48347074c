"""Where a build comes from: the git revision and the time that stands for it (SOURCE_DATE_EPOCH).

Timestamps in binaries and images come from the source, never from the clock, so that a rebuild of
the same source gives the same bytes.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.outputs.atomic import write_atomic


@dataclass(frozen=True, kw_only=True)
class Provenance:
    """The facts about a service's source that go into labels and build environments."""

    revision: str | None  # the last git commit that touched the source, None outside a repository
    source_date_epoch: int
    source_url: str | None = None  # the repository's remote URL, when it has one


PROVENANCE_RECORD = ".provenance.json"  # in out/: each source's last commit, with the HEAD it was found at
RECORD_FORMAT = 1
_COMMIT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # SHA-1 or SHA-256
_COMMIT = "\x01"  # starts each commit's line in `git log` output: a file name cannot hold it


def provenance(source: Path) -> Provenance:
    """The last commit that touched the source, and SOURCE_DATE_EPOCH: from the environment, else that
    commit's time, else 0. Commits elsewhere in the project change neither, so they rebuild nothing."""
    return _provenance(_last_commit(source), _remote_url(source))


def provenances(sources: Mapping[str, Path], record: Path) -> dict[str, Provenance]:
    """`provenance` of every named source, with two git calls per repository rather than per source.

    Each source's last commit is kept in `record` (PROVENANCE_RECORD in out/) with the HEAD it was
    found at. At the same HEAD nothing is looked up again; at a later HEAD reached by a linear history,
    one `git log` of the commits in between says which sources they touched, and only those are looked
    up again. Anything else (a rewritten or merged history, an unreadable record) looks each source up.
    """
    by_tree: dict[Path | None, dict[str, Path]] = {}
    for name, source in sources.items():
        by_tree.setdefault(_work_tree(source), {})[name] = source
    repositories = _read_record(record)
    found: dict[str, Provenance] = {}
    kept: dict[str, dict[str, Any]] = {}
    for tree, named in by_tree.items():
        head = _git(tree, "rev-parse", "--verify", "--quiet", "HEAD") if tree else None
        if tree is None or head is None:  # not in a repository, or one git cannot read: as provenance()
            found.update({name: provenance(source) for name, source in named.items()})
            continue
        paths = {name: source.resolve().relative_to(tree).as_posix() for name, source in named.items()}
        commits = _carried_over(tree, repositories.get(str(tree)), head, set(paths.values()))
        for path in sorted(set(paths.values()) - commits.keys()):
            commits[path] = _last_commit(tree / path)
        url = _remote_url(tree)
        found.update({name: _provenance(commits[path], url) for name, path in paths.items()})
        kept[str(tree)] = {"head": head, "commits": commits}
    document = json.dumps({"format": RECORD_FORMAT, "repositories": kept}, indent=1, sort_keys=True)
    with contextlib.suppress(OSError):  # only the next run's shortcut is lost
        write_atomic(record, (document + "\n").encode())
    return found


def _provenance(commit: str | None, remote: str | None) -> Provenance:
    revision, _, committed = (commit or "").partition(" ")
    from_env = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    epoch = next((int(value) for value in (from_env, committed) if value.isdigit()), 0)
    url = remote if remote and ("://" in remote or "@" in remote) else None  # not a local clone's path
    return Provenance(revision=revision or None, source_date_epoch=epoch, source_url=url)


def _last_commit(source: Path) -> str | None:
    """`HASH TIME` of the last commit that touched the directory, None outside a repository."""
    return _git(source, "log", "-1", "--format=%H %ct", "--", ".")


def _remote_url(directory: Path) -> str | None:
    return _git(directory, "config", "--get", "remote.origin.url")


def _work_tree(source: Path) -> Path | None:
    """The nearest directory at or above the source that holds a `.git`: its repository's work tree."""
    resolved = source.resolve()
    return next((d for d in (resolved, *resolved.parents) if (d / ".git").exists()), None)


def _read_record(record: Path) -> dict[str, Any]:
    try:
        document = json.loads(record.read_text())
        repositories = document["repositories"] if document["format"] == RECORD_FORMAT else {}
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return repositories if isinstance(repositories, dict) else {}


def _carried_over(tree: Path, previous: Any, head: str, paths: set[str]) -> dict[str, str | None]:
    """The recorded last commits still true at `head`: all of them at the recorded HEAD; after it, those
    of the paths no commit since touched; none when the history since is not a plain line of commits."""
    try:
        recorded_head, commits = str(previous["head"]), dict(previous["commits"])
    except (KeyError, TypeError, ValueError):
        return {}
    if not _COMMIT_ID.fullmatch(recorded_head):  # it becomes an argument of git: a commit id, nothing else
        return {}
    commits = {path: commits[path] for path in paths & commits.keys()}
    if recorded_head == head:
        return commits
    if _git(tree, "merge-base", "--is-ancestor", "--", recorded_head, head, succeeded=True) is None:
        return {}
    log = _git(
        tree, "-c", "core.quotePath=false", "log", f"--format={_COMMIT}%H %P", "--name-only",
        f"{recorded_head}..{head}", "--",
    )  # fmt: skip
    if log is None:
        return {}
    touched: set[str] = set()
    for entry in log.split(_COMMIT)[1:]:
        line, *files = entry.splitlines()
        if len(line.split()) != 2 or any(name.startswith('"') for name in files):
            return {}  # a merge (two parents), or a name git had to quote: look everything up
        touched.update(name for name in files if name)
    return {
        path: commit
        for path, commit in commits.items()
        if not any(path in (".", name) or name.startswith(f"{path}/") for name in touched)
    }


def _git(cwd: Path, *args: str, succeeded: bool = False) -> str | None:
    """git's output, None when it fails or prints nothing (with `succeeded`: "" when it succeeds)."""
    try:
        completed = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    output = completed.stdout.strip()
    if completed.returncode != 0:
        return None
    return output if output or succeeded else None


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
