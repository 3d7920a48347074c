"""pipeline.provenance: a source's last commit, and the record that saves looking it up each run."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from orchestrator.pipeline.provenance import PROVENANCE_RECORD, Provenance, provenance, provenances


def git(repo: Path, *args: str, when: int = 0) -> str:
    date = f"@{when} +0000"
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=repo, capture_output=True, text=True, check=True,
        env={**os.environ, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date},
    ).stdout.strip()  # fmt: skip


def commit(repo: Path, path: str, text: str, when: int) -> None:
    (repo / path).parent.mkdir(parents=True, exist_ok=True)
    (repo / path).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", path, when=when)


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    root = tmp_path / "project"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    commit(root, "sources/a/main.c", "a", 1_000)
    commit(root, "sources/b/main.c", "b", 2_000)
    return root


def sources(repo: Path) -> dict[str, Path]:
    return {"a": repo / "sources" / "a", "b": repo / "sources" / "b", "all": repo}


def each_alone(repo: Path) -> dict[str, tuple[str | None, int]]:
    return {name: _facts(provenance(path)) for name, path in sources(repo).items()}


def _facts(found: Provenance) -> tuple[str | None, int]:
    return (found.revision, found.source_date_epoch)


def batch(repo: Path, record: Path) -> dict[str, tuple[str | None, int]]:
    return {name: _facts(found) for name, found in provenances(sources(repo), record).items()}


def test_the_batch_finds_what_each_source_alone_finds_through_new_commits_merges_and_rewrites(
    repo: Path, tmp_path: Path
) -> None:
    record = tmp_path / "out" / PROVENANCE_RECORD
    record.parent.mkdir()
    assert batch(repo, record) == each_alone(repo)
    assert batch(repo, record)["a"][1] == 1_000
    commit(repo, "sources/a/util.c", "a2", 3_000)  # linear: only a (and the root) looked up again
    assert batch(repo, record) == each_alone(repo)
    assert batch(repo, record)["a"][1] == 3_000
    git(repo, "checkout", "-q", "-b", "side", "HEAD~1")
    commit(repo, "sources/b/extra.c", "b2", 4_000)
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "--no-edit", "side", when=4_500)  # a merge: everything looked up again
    assert batch(repo, record) == each_alone(repo)
    git(repo, "reset", "-q", "--hard", "HEAD~2")  # a rewritten history: the record's HEAD is not behind
    commit(repo, "other.txt", "x", 5_000)
    assert batch(repo, record) == each_alone(repo)


def test_the_record_is_reused_at_the_same_head_and_an_unreadable_one_is_ignored(
    repo: Path, tmp_path: Path
) -> None:
    record = tmp_path / PROVENANCE_RECORD
    batch(repo, record)
    document = json.loads(record.read_text())
    commits = document["repositories"][str(repo.resolve())]["commits"]
    commits["sources/b"] = "f" * 40 + " 42"  # what the record says is what the batch takes
    record.write_text(json.dumps(document))
    assert batch(repo, record)["b"] == ("f" * 40, 42)
    record.write_text("{not json")
    assert batch(repo, record) == each_alone(repo)


def test_a_source_outside_any_repository_has_no_revision(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    found = provenances({"p": plain}, tmp_path / PROVENANCE_RECORD)["p"]
    assert (found.revision, found.source_url) == (None, None)


def test_a_recorded_head_that_is_not_a_commit_id_never_reaches_git(repo: Path, tmp_path: Path) -> None:
    record = tmp_path / PROVENANCE_RECORD
    batch(repo, record)
    document = json.loads(record.read_text())
    written = tmp_path / "written"
    document["repositories"][str(repo.resolve())]["head"] = f"--output={written}"
    record.write_text(json.dumps(document))
    assert batch(repo, record) == each_alone(repo)
    assert not written.exists() and not list(tmp_path.glob("written*"))
