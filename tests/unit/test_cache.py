"""The cache key changes with every input of a target, and only passed results are reused."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.platforms import PLATFORMS
from orchestrator.provenance import Provenance
from orchestrator.stages import cache
from orchestrator.stages.recipe import load_project
from orchestrator.stages.report import BinaryInfo, ImageInfo, Status, TargetReport
from tests.conftest import REPO_ROOT

PROJECT = load_project(REPO_ROOT)
SERVICE = PROJECT.services["hello-c"]
BASE = cache.KeyInputs(
    service=SERVICE,
    toolchain=PROJECT.toolchains["gcc"],
    toolchain_image_id="sha256:" + "1" * 64,
    platform=PLATFORMS["linux/arm64"],
    source_digest="a" * 64,
    provenance=Provenance(revision="b" * 40, source_date_epoch=1700000000),
)
CHANGES: dict[str, Callable[[cache.KeyInputs], cache.KeyInputs]] = {
    "recipe": lambda k: dataclasses.replace(
        k, service=dataclasses.replace(k.service, build=dataclasses.replace(k.service.build, command=("cc",)))
    ),
    "image settings": lambda k: dataclasses.replace(
        k, service=dataclasses.replace(k.service, image=dataclasses.replace(k.service.image, user="0"))
    ),
    "toolchain recipe": lambda k: dataclasses.replace(
        k, toolchain=dataclasses.replace(k.toolchain, env={"CFLAGS": "-O3"})
    ),
    "toolchain image": lambda k: dataclasses.replace(k, toolchain_image_id="sha256:" + "2" * 64),
    "platform": lambda k: dataclasses.replace(k, platform=PLATFORMS["linux/riscv64"]),
    "source": lambda k: dataclasses.replace(k, source_digest="c" * 64),
    "provenance": lambda k: dataclasses.replace(k, provenance=Provenance(revision=None, source_date_epoch=0)),
    "osless version": lambda k: dataclasses.replace(k, osless_version="999.0"),
}


def test_the_key_is_stable() -> None:
    assert cache.target_key(BASE) == cache.target_key(dataclasses.replace(BASE))


@pytest.mark.parametrize("part", list(CHANGES))
def test_a_change_in_any_part_changes_the_key(part: str) -> None:
    assert cache.target_key(CHANGES[part](BASE)) != cache.target_key(BASE)


def test_the_recipe_file_location_is_not_part_of_the_key() -> None:
    moved = dataclasses.replace(BASE, service=dataclasses.replace(SERVICE, file=Path("/elsewhere.toml")))
    assert cache.target_key(moved) == cache.target_key(BASE)


@pytest.mark.parametrize(
    "change",
    [
        lambda root: (root / "main.c").write_text("int main(void) { return 1; }\n"),
        lambda root: (root / "extra.h").write_text("#define X 1\n"),
        lambda root: (root / "main.c").chmod(0o755),
        lambda root: (root / "sub").mkdir() or (root / "sub" / "main.c").write_text("x"),
    ],
    ids=["content", "new file", "executable bit", "new subdirectory file"],
)
def test_source_digest_follows_the_tree(tmp_path: Path, change: Callable[[Path], Any]) -> None:
    (tmp_path / "main.c").write_text("int main(void) { return 0; }\n")
    before = cache.source_digest(tmp_path)
    assert cache.source_digest(tmp_path) == before
    change(tmp_path)
    assert cache.source_digest(tmp_path) != before


def _passed(output_dir: Path) -> TargetReport:
    binary = output_dir / "bin" / "hello-c"
    binary.parent.mkdir(parents=True)
    binary.write_bytes(b"\x7fELF")
    (output_dir / "image.tar").write_bytes(b"tar")
    return TargetReport(
        service="hello-c", platform="linux/arm64", status=Status.PASSED, failed_stage=None, reason=None,
        toolchain_image=None, binary=BinaryInfo(path=str(binary), size=4, sha256="d", linkage="static",
                                                platform="linux/arm64"),
        verify_findings=[], image=ImageInfo(tag="hello-c:latest-arm64", image_id="sha256:e",
                                            manifest_digest="sha256:f", size=10),
        smoke=None, seconds={"build": 1.0}, log=None,
    )  # fmt: skip


def test_a_saved_result_is_reused_only_for_the_same_key(tmp_path: Path) -> None:
    report = _passed(tmp_path)
    cache.save(tmp_path, "k1", report)
    reused = cache.load(tmp_path, "k1")
    assert reused == dataclasses.replace(report, cached=True)
    assert cache.load(tmp_path, "k2") is None


def test_a_result_whose_files_are_gone_is_not_reused(tmp_path: Path) -> None:
    cache.save(tmp_path, "k1", _passed(tmp_path))
    (tmp_path / "image.tar").unlink()
    assert cache.load(tmp_path, "k1") is None


def test_no_record_or_a_broken_one_is_no_result(tmp_path: Path) -> None:
    assert cache.load(tmp_path, "k1") is None
    (tmp_path / cache.RESULT_FILE).write_text("{not json")
    assert cache.load(tmp_path, "k1") is None
