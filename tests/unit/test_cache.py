"""The cache key changes with every input of a target, and only passed results are reused."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import re
import socket
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import RecipeError
from orchestrator.image import oci
from orchestrator.outputs.report import BinaryInfo, ImageInfo, Status, TargetReport
from orchestrator.pipeline import cache
from orchestrator.pipeline.provenance import Provenance
from orchestrator.platforms import PLATFORMS
from orchestrator.recipe.loader import load_project
from tests.blocking import outcome_within
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


def _image(data: bytes, platform: str = "linux/arm64") -> oci.Image:
    config = oci.ImageConfig(platform=PLATFORMS[platform], entrypoint=("/hello-c",))
    return oci.build_image([oci.FileEntry(path="/hello-c", data=data)], config)


def _passed(output_dir: Path) -> TargetReport:
    """A passed target as the pipeline leaves it: binary, image.tar and the report recording both."""
    binary = output_dir / "bin" / "hello-c"
    binary.parent.mkdir(parents=True)
    binary.write_bytes(b"\x7fELF binary")
    image = _image(binary.read_bytes())
    (output_dir / "image.tar").write_bytes(oci.docker_archive(image, ["hello-c:latest-arm64"]))
    return TargetReport(
        service="hello-c", platform="linux/arm64", status=Status.PASSED, failed_stage=None, reason=None,
        toolchain_image=None,
        binary=BinaryInfo(path=str(binary), size=12, sha256=hashlib.sha256(binary.read_bytes()).hexdigest(),
                          linkage="static", platform="linux/arm64"),
        verify_findings=[], image=ImageInfo(tag="hello-c:latest-arm64", image_id=image.image_id,
                                            manifest_digest=image.digest, size=image.size),
        smoke=None, seconds={"build": 1.0}, log=None,
    )  # fmt: skip


def test_a_saved_result_is_reused_only_for_the_same_key(tmp_path: Path) -> None:
    report = _passed(tmp_path)
    cache.save(tmp_path, "k1", report)
    reused = cache.load(tmp_path, "k1", PLATFORMS["linux/arm64"])
    assert reused is not None
    assert reused.report == dataclasses.replace(report, cached=True)
    assert reused.image.digest == report.image.manifest_digest if report.image else False
    assert reused.archive == (tmp_path / "image.tar").read_bytes()
    assert cache.load(tmp_path, "k2") is None


def test_no_record_or_a_broken_one_is_no_result(tmp_path: Path) -> None:
    assert cache.load(tmp_path, "k1") is None
    (tmp_path / cache.RESULT_FILE).write_text("{not json")
    assert cache.load(tmp_path, "k1") is None
    (tmp_path / cache.RESULT_FILE).write_text("[]")
    assert cache.load(tmp_path, "k1") is None


def _swap_layer(archive: bytes) -> bytes:
    """The same archive with the layer's bytes replaced under the layer's name (sizes kept)."""
    buffer = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(archive)) as source,
        tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as target,
    ):
        manifest = json.loads(source.extractfile("manifest.json").read())  # type: ignore[union-attr]
        layer = manifest[0]["Layers"][0]
        for member in source.getmembers():
            data = source.extractfile(member).read() if member.isfile() else None  # type: ignore[union-attr]
            if member.name == layer and data is not None:
                data = data.replace(b"\x7fELF binary", b"\x7fELF evil!!")
            target.addfile(member, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def _replace_with_directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


CORRUPTIONS: dict[str, tuple[Callable[[Path], Any], str]] = {
    "image.tar removed": (lambda d: (d / "image.tar").unlink(), "image.tar cannot be read"),
    "image.tar truncated": (
        lambda d: (d / "image.tar").write_bytes((d / "image.tar").read_bytes()[:700]),
        "image.tar is unreadable",
    ),
    "image.tar empty": (lambda d: (d / "image.tar").write_bytes(b""), "image.tar is unreadable"),
    "image.tar of another image": (
        lambda d: (d / "image.tar").write_bytes(oci.docker_archive(_image(b"other"), ["other:1"])),
        "image.tar does not match result.json",
    ),
    "image.tar for another platform": (
        lambda d: (d / "image.tar").write_bytes(
            oci.docker_archive(_image(b"\x7fELF binary", "linux/amd64"), ["x:1"])
        ),
        "image.tar does not match result.json",
    ),
    "layer swapped under its name": (
        lambda d: (d / "image.tar").write_bytes(_swap_layer((d / "image.tar").read_bytes())),
        "image.tar does not match result.json",
    ),
    "binary changed": (
        lambda d: (d / "bin" / "hello-c").write_bytes(b"\x7fELF other!"),
        "the binary hello-c does not match result.json",
    ),
    "binary removed": (lambda d: (d / "bin" / "hello-c").unlink(), "cannot be read"),
    "binary a directory": (
        lambda d: _replace_with_directory(d / "bin" / "hello-c"),
        "cannot be read",
    ),
}


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_a_result_whose_files_differ_from_the_record_is_invalid(tmp_path: Path, corruption: str) -> None:
    """Never a crash and never a substitute: a mismatch is an invalid entry saying what differs."""
    cache.save(tmp_path, "k1", _passed(tmp_path))
    assert cache.load(tmp_path, "k1", PLATFORMS["linux/arm64"]) is not None
    change, message = CORRUPTIONS[corruption]
    change(tmp_path)
    with pytest.raises(cache.InvalidEntry, match=re.escape(message)):
        cache.load(tmp_path, "k1", PLATFORMS["linux/arm64"])


# ---------------------------------------------------------------------------------------------------
# The source digest never blocks and never reads a special file


def _digest_within(source: Path, seconds: float = 10.0) -> str | BaseException:
    fifos = [path for path in source.rglob("*") if path.is_fifo()]
    return outcome_within(
        lambda: cache.source_digest(source), seconds, fifos=fifos, what=f"source_digest({source})"
    )


@pytest.mark.parametrize("where", ["top", "nested"])
def test_a_fifo_in_the_source_tree_is_a_recipe_error_naming_it(tmp_path: Path, where: str) -> None:
    (tmp_path / "main.c").write_text("int main(void) { return 0; }\n")
    directory = tmp_path / "sub" / "deeper" if where == "nested" else tmp_path
    directory.mkdir(parents=True, exist_ok=True)
    fifo = directory / "pipe"
    os.mkfifo(fifo)
    started = time.monotonic()
    outcome = _digest_within(tmp_path)
    assert time.monotonic() - started < 5
    assert isinstance(outcome, RecipeError), outcome
    assert outcome.exit_code == 3
    [problem] = outcome.problems
    assert problem.file == str(fifo)
    assert "a FIFO (named pipe)" in problem.message


def test_a_socket_in_the_source_tree_is_a_recipe_error(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        outcome = _digest_within(tmp_path)
    assert isinstance(outcome, RecipeError), outcome
    assert outcome.problems[0].file == str(path) and "a socket" in outcome.problems[0].message


def _walk_digest(source: Path) -> str:
    """The digest as source_digest always computed it (os.walk), for trees without special files."""
    digest = hashlib.sha256()
    for directory, subdirectories, files in os.walk(source):
        subdirectories.sort()
        for name in sorted(files):
            path = Path(directory, name)
            relative = path.relative_to(source).as_posix()
            if path.is_symlink():
                digest.update(f"L {relative} -> {os.readlink(path)}\0".encode())
                continue
            executable = "x" if os.access(path, os.X_OK) else "-"
            digest.update(f"F {relative} {executable} {path.stat().st_size}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def test_the_digest_of_an_ordinary_tree_is_unchanged(tmp_path: Path) -> None:
    """Files, subdirectories and links to files hash as before: existing cached results stay valid."""
    (tmp_path / "main.c").write_text("int main(void) { return 0; }\n")
    (tmp_path / "build.sh").write_text("#!/bin/sh\n")
    (tmp_path / "build.sh").chmod(0o755)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "z.h").write_bytes(b"\0\1" * 70000)
    (tmp_path / "a-dir").mkdir()
    (tmp_path / "a-dir" / "x").write_text("x")
    (tmp_path / "link.c").symlink_to("main.c")
    (tmp_path / "dangling").symlink_to("nowhere")
    assert cache.source_digest(tmp_path) == _walk_digest(tmp_path)


def test_a_link_to_a_directory_is_part_of_the_digest(tmp_path: Path) -> None:
    """os.walk listed it among directories and left it out: changing its target went unnoticed."""
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    (tmp_path / "current").symlink_to("one")
    before = cache.source_digest(tmp_path)
    (tmp_path / "current").unlink()
    (tmp_path / "current").symlink_to("two")
    assert cache.source_digest(tmp_path) != before
