"""The samples built as three shards in three output directories, as three CI machines would, then
assembled: the same index digests, index.json, layouts and SBOM bytes as one build of everything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.pipeline.targets import select_shard, select_targets
from orchestrator.recipe.loader import load_project
from tests.conftest import REPO_ROOT
from tests.integration.conftest import BUILT_PLATFORMS, PLATFORM_ARGS, OslessRun, run_osless

pytestmark = pytest.mark.integration

SHARDS = 3


def files(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def shards(build_all: OslessRun, tmp_path_factory: pytest.TempPathFactory) -> list[OslessRun]:
    """Each shard built into its own output directory (after the single build: the same engine state)."""
    runs = []
    for k in range(1, SHARDS + 1):
        out = tmp_path_factory.mktemp(f"shard-{k}-of-{SHARDS}")
        runs.append(run_osless(REPO_ROOT, "build", "--shard", f"{k}/{SHARDS}", *PLATFORM_ARGS, out=out))
    return runs


@pytest.fixture(scope="module")
def assembled(shards: list[OslessRun], tmp_path_factory: pytest.TempPathFactory) -> OslessRun:
    out = tmp_path_factory.mktemp("assembled")
    return run_osless(REPO_ROOT, "assemble", *(str(run.out) for run in shards), out=out)


def test_each_shard_builds_its_part_once(build_all: OslessRun, shards: list[OslessRun]) -> None:
    assert build_all.returncode == 0, build_all.stderr
    project = load_project(REPO_ROOT)
    everything = select_targets(project, [], list(BUILT_PLATFORMS))
    seen: list[str] = []
    for k, run in enumerate(shards, 1):
        assert run.returncode == 0, run.stdout + run.stderr
        built = [f"{t['service']} {t['platform']}" for t in run.report["targets"]]
        assert built == [t.name for t in select_shard(everything, k, SHARDS)]
        assert all(t["status"] == "passed" for t in run.report["targets"])
        seen += built
    assert sorted(seen) == sorted(t.name for t in everything)


def test_assembled_equals_one_build(build_all: OslessRun, assembled: OslessRun) -> None:
    assert assembled.returncode == 0, assembled.stdout + assembled.stderr
    single, merged = build_all.report, assembled.report
    assert {i["service"]: i["index_digest"] for i in merged["images"]} == {
        i["service"]: i["index_digest"] for i in single["images"]
    }
    assert [(i["service"], i["platforms"]) for i in merged["images"]] == [
        (i["service"], i["platforms"]) for i in single["images"]
    ]
    for image in single["images"]:
        service = image["service"]
        one, other = build_all.out / service, assembled.out / service
        assert (other / "oci" / "index.json").read_bytes() == (one / "oci" / "index.json").read_bytes()
        assert (other / "sbom.cdx.json").read_bytes() == (one / "sbom.cdx.json").read_bytes(), service
        assert files(other / "oci") == files(one / "oci"), f"{service}: every file of the layout"
    assert [(t["service"], t["platform"], t["status"]) for t in merged["targets"]] == [
        (t["service"], t["platform"], t["status"]) for t in single["targets"]
    ]
    assert merged["unsupported"] == single["unsupported"]
    assert merged["toolchains"] == single["toolchains"]
    assert merged["summary"] == single["summary"]


def test_assembled_targets_point_into_the_assembled_directory(assembled: OslessRun) -> None:
    for target in assembled.report["targets"]:
        directory = assembled.out / target["service"] / target["platform"].replace("/", "-")
        binary = Path(target["binary"]["path"])
        assert binary.parent.parent == directory and binary.is_file()
        assert Path(target["log"]).parent == directory
        record = json.loads((directory / "result.json").read_text())
        assert record["report"]["binary"]["path"] == str(binary)
    for image in assembled.report["images"]:
        assert Path(image["layout"]) == assembled.out / image["service"] / "oci"
        assert Path(image["sbom"]) == assembled.out / image["service"] / "sbom.cdx.json"


def test_assembled_output_is_a_valid_cache(assembled: OslessRun) -> None:
    """A build into the assembled directory finds every target there: nothing is rebuilt.

    (Last: it replaces the assembled report.)"""
    digests = {i["service"]: i["index_digest"] for i in assembled.report["images"]}
    again = run_osless(REPO_ROOT, "build", *PLATFORM_ARGS, out=assembled.out)
    assert again.returncode == 0, again.stdout + again.stderr
    assert all(t["cached"] for t in again.report["targets"])
    assert {i["service"]: i["index_digest"] for i in again.report["images"]} == digests
