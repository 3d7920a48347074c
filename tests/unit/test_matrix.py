"""`osless matrix` and `osless build --shard`: jobs from the recipes, a stable partition of the targets."""

from __future__ import annotations

import json
import random
import re
import shlex
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest

from orchestrator.ci import matrix
from orchestrator.cli.main import main
from orchestrator.cli.parser import build_parser
from orchestrator.errors import UsageError
from orchestrator.pipeline.targets import Target, parse_shard, select_shard, select_targets
from orchestrator.platforms import PLATFORMS
from orchestrator.recipe.loader import load_project
from orchestrator.recipe.model import Project
from tests.conftest import REPO_ROOT

ARM64 = "linux/arm64"


@pytest.fixture(scope="module")
def project() -> Project:
    return load_project(REPO_ROOT)


@pytest.fixture(scope="module")
def targets(project: Project) -> list[Target]:
    return select_targets(project, [], [])


@pytest.fixture(scope="module")
def fixed_targets(project: Project) -> list[Target]:
    """A fixed selection of the shipped targets, whatever samples are added: hello-c, hello-go (7 each),
    tls-go (amd64, arm64), whoami-c-musl and hello-c-musl (amd64): 9 gcc and 9 go targets."""
    chosen = select_targets(project, ["hello-c", "hello-go", "tls-go", "whoami-c-musl"], [])
    musl = select_targets(project, ["hello-c-musl"], ["linux/amd64"])
    return sorted([*chosen, *musl], key=lambda t: (t.service.toolchain, t.service.name, t.platform.name))


def names(targets: Sequence[Target]) -> list[str]:
    return [t.name for t in targets]


def build_selection(project: Project, args: Sequence[str]) -> list[str]:
    """What `osless build ARGS` selects, as the command line computes it."""
    parsed = build_parser().parse_args(["build", *args])
    selected = select_targets(project, parsed.services, parsed.platform)
    if parsed.shard:
        selected = select_shard(selected, *parse_shard(parsed.shard))
    return names(selected)


def github(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["-C", str(REPO_ROOT), "matrix", "--format", "github", *args]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.endswith("\n"), "one line, for $GITHUB_OUTPUT"
    document: dict[str, Any] = json.loads(out)
    return document


# --- shards -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5])
def test_shards_partition_the_targets(targets: list[Target], count: int) -> None:
    shards = [select_shard(targets, k, count) for k in range(1, count + 1)]
    every = Counter(name for shard in shards for name in names(shard))
    assert set(every) == set(names(targets)) and set(every.values()) == {1}, "each target exactly once"
    sizes = [len(shard) for shard in shards]
    assert max(sizes) - min(sizes) <= 1, f"balanced: {sizes}"
    for shard in shards:  # in build order, not shard order
        assert names(shard) == [name for name in names(targets) if name in set(names(shard))]


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5])
def test_shards_are_stable_whatever_the_order(targets: list[Target], count: int) -> None:
    shuffled = list(targets)
    random.Random(count).shuffle(shuffled)
    for k in range(1, count + 1):
        assert names(select_shard(targets, k, count)) == names(select_shard(targets, k, count))
        assert set(names(select_shard(shuffled, k, count))) == set(names(select_shard(targets, k, count)))


def test_shards_keep_toolchains_and_services_together(fixed_targets: list[Target]) -> None:
    """Consecutive runs of (toolchain, service, platform): two shards split the samples by toolchain."""
    targets = fixed_targets
    first, second = (select_shard(targets, k, 2) for k in (1, 2))
    assert {t.service.toolchain for t in first} == {"gcc"}
    assert {t.service.toolchain for t in second} == {"go"}
    for count in range(1, 6):
        split = {
            t.service.name
            for k in range(1, count + 1)
            for t in select_shard(targets, k, count)
            if any(
                o.service is t.service
                for j in range(1, count + 1)
                if j != k
                for o in select_shard(targets, j, count)
            )
        }
        assert len(split) <= count - 1, f"{count} shards split {sorted(split)}"


def test_more_shards_than_targets_leaves_some_empty(project: Project) -> None:
    few = select_targets(project, ["tls-go"], [])
    shards = [names(select_shard(few, k, 5)) for k in range(1, 6)]
    assert sorted(name for shard in shards for name in shard) == sorted(names(few))
    assert shards.count([]) == 3


@pytest.mark.parametrize(("text", "expected"), [("1/1", (1, 1)), ("2/3", (2, 3)), (" 3 / 3 ", (3, 3))])
def test_parse_shard(text: str, expected: tuple[int, int]) -> None:
    assert parse_shard(text) == expected


@pytest.mark.parametrize("text", ["0/3", "4/3", "1/0", "3", "a/b", "", "-1/3", "1/3/5", "1.5/3"])
def test_parse_shard_rejects(text: str) -> None:
    with pytest.raises(UsageError, match="K/N"):
        parse_shard(text)


def test_build_rejects_a_bad_shard_before_needing_an_engine(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-C", str(REPO_ROOT), "build", "--shard", "4/3"]) == UsageError.exit_code == 2
    assert "--shard '4/3'" in capsys.readouterr().err


# --- matrix shapes ----------------------------------------------------------------------------------


def test_by_platform(project: Project, targets: list[Target]) -> None:
    jobs = matrix.jobs(targets, "platform")
    assert [job.name for job in jobs] == list(PLATFORMS)  # the samples target all seven, in table order
    for job in jobs:
        assert job.args == ("--platform", job.name)
        assert job.id == PLATFORMS[job.name].slug
        assert build_selection(project, job.args) == names(t for t in targets if t.platform.name == job.name)
    assert {job.name: job.runner for job in jobs if job.runner == matrix.RUNNER_ARM64} == {
        ARM64: matrix.RUNNER_ARM64
    }


def test_by_service(project: Project, targets: list[Target]) -> None:
    jobs = matrix.jobs(targets, "service")
    assert [job.name for job in jobs] == sorted(project.services)
    for job in jobs:
        assert job.args == (job.name,) and job.shard is None
        assert sorted(job.targets) == sorted(build_selection(project, job.args))
    assert {job.runner for job in jobs} == {matrix.RUNNER_AMD64}  # every sample has an amd64 target


def test_by_target(project: Project, targets: list[Target]) -> None:
    jobs = matrix.jobs(targets, "target")
    assert sorted(job.name for job in jobs) == sorted(names(targets))
    for job in jobs:
        service, platform = job.name.split(" ")
        assert job.args == (service, "--platform", platform)
        assert job.targets == (job.name,)
        assert job.runner == (matrix.RUNNER_ARM64 if platform == ARM64 else matrix.RUNNER_AMD64)
        assert build_selection(project, job.args) == [job.name]


@pytest.mark.parametrize("by", matrix.BY)
def test_a_cap_that_is_not_reached_changes_nothing(targets: list[Target], by: matrix.By) -> None:
    assert matrix.jobs(targets, by, 1000) == matrix.jobs(targets, by)


@pytest.mark.parametrize("by", matrix.BY)
@pytest.mark.parametrize("cap", [1, 2, 3, 4, 6])
def test_max_jobs_groups_into_at_most_that_many_jobs(
    project: Project, targets: list[Target], by: matrix.By, cap: int
) -> None:
    jobs = matrix.jobs(targets, by, cap)
    units = {
        "platform": len(PLATFORMS),
        "service": len({t.service.name for t in targets}),
        "target": len(targets),
    }
    assert len(jobs) == min(cap, units[by])
    built = Counter(name for job in jobs for name in build_selection(project, job.args))
    assert set(built) == set(names(targets)) and set(built.values()) == {1}, "every target exactly once"
    for job in jobs:
        assert sorted(build_selection(project, job.args)) == sorted(job.targets), job
        if by == "target":  # arbitrary sets of targets: shards
            assert job.args == ("--shard", job.shard) and job.shard == f"{jobs.index(job) + 1}/{cap}"
        elif by == "platform":
            assert job.args[::2] == ("--platform",) * (len(job.args) // 2) and job.shard is None
        else:
            assert not any(arg.startswith("-") for arg in job.args) and job.shard is None


def test_grouping_balances_target_counts(fixed_targets: list[Target]) -> None:
    # Platforms have 5 (amd64), 3 (arm64) and 2 targets: 7 is the best largest job of three.
    targets = fixed_targets
    sizes = [len(job.targets) for job in matrix.jobs(targets, "platform", 3)]
    assert sorted(sizes) == [5, 6, 7]
    sizes = [len(job.targets) for job in matrix.jobs(targets, "target", 4)]
    assert sorted(sizes) == [4, 4, 5, 5]


@pytest.mark.parametrize("by", matrix.BY)
@pytest.mark.parametrize("cap", [None, 2, 5])
def test_the_matrix_is_stable(targets: list[Target], by: matrix.By, cap: int | None) -> None:
    shuffled = list(targets)
    random.Random(7).shuffle(shuffled)
    assert matrix.jobs(shuffled, by, cap) == matrix.jobs(targets, by, cap)


def test_runner_labels(project: Project) -> None:
    arm64_only = select_targets(project, ["hello-go", "tls-go"], [ARM64])
    mixed = select_targets(project, ["tls-go"], [])
    assert matrix.runner_for(arm64_only) == matrix.RUNNER_ARM64 == "ubuntu-24.04-arm"
    assert matrix.runner_for(mixed) == matrix.RUNNER_AMD64 == "ubuntu-24.04"
    assert matrix.runner_for(select_targets(project, ["hello-c"], ["linux/s390x"])) == matrix.RUNNER_AMD64
    for by in matrix.BY:  # an arm64-only part on the native runner, whatever made it
        assert {job.runner for job in matrix.jobs(arm64_only, by)} == {matrix.RUNNER_ARM64}
    assert {job.runner for job in matrix.jobs(arm64_only, "target", 1)} == {matrix.RUNNER_ARM64}


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="by"):
        matrix.jobs([], "os")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_jobs"):
        matrix.jobs([], "platform", 0)


# --- output formats ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args", [(), ("--by", "service"), ("--by", "target"), ("--by", "target", "--max-jobs", "4")]
)
def test_github_matrix(project: Project, capsys: pytest.CaptureFixture[str], args: tuple[str, ...]) -> None:
    include = github(capsys, *args)["include"]
    assert include and all(isinstance(entry, dict) for entry in include)
    built: Counter[str] = Counter()
    for entry in include:
        assert {"name", "id", "args", "runner"} <= set(entry), entry
        assert entry["runner"] in (matrix.RUNNER_AMD64, matrix.RUNNER_ARM64)
        assert re.fullmatch(r"[A-Za-z0-9._+-]+", entry["id"]), "usable in artifact names"
        assert ("shard" in entry) == ("--shard" in entry["args"])
        built.update(build_selection(project, shlex.split(entry["args"])))
    assert (
        len({entry["id"] for entry in include}) == len({entry["name"] for entry in include}) == len(include)
    )
    assert set(built) == set(names(select_targets(project, [], []))) and set(built.values()) == {1}


def test_github_matrix_names_the_shard(capsys: pytest.CaptureFixture[str]) -> None:
    include = github(capsys, "--by", "target", "--max-jobs", "3")["include"]
    assert [(e["shard"], e["args"], e["id"]) for e in include] == [
        (f"{k}/3", f"--shard {k}/3", f"shard-{k}-of-3") for k in (1, 2, 3)
    ]


def test_github_matrix_respects_githubs_job_limit(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(matrix, "GITHUB_MAX_JOBS", 5)  # GitHub's is 256: the samples never reach it
    include = github(capsys, "--by", "target")["include"]
    assert [entry["args"] for entry in include] == [f"--shard {k}/5" for k in range(1, 6)]
    assert len(github(capsys, "--by", "target", "--max-jobs", "9")["include"]) == 5


def test_json_document(capsys: pytest.CaptureFixture[str], targets: list[Target]) -> None:
    assert main(["-C", str(REPO_ROOT), "matrix", "--by", "platform", "--max-jobs", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") > 10, "readable: indented"
    document = json.loads(out)
    assert document["by"] == "platform" and document["max_jobs"] == 2
    assert document["targets"] == len(targets) == sum(len(job["targets"]) for job in document["jobs"])
    for job in document["jobs"]:
        assert job["command"] == shlex.join(["osless", "build", *job["args"]])
        assert set(job) == {"name", "id", "args", "command", "runner", "shard", "targets"}
