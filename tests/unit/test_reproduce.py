"""Two builds that differ are located precisely: the first differing ELF section or tar entry."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from orchestrator.image import oci
from orchestrator.pipeline.reproduce import first_elf_difference, first_image_difference
from orchestrator.platforms import PLATFORMS


@pytest.fixture(scope="module")
def uuid_build_ids(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same program linked twice with random build ids: only .note.gnu.build-id differs."""
    if shutil.which("gcc") is None:
        pytest.skip("the host has no gcc")
    work = tmp_path_factory.mktemp("uuid")
    (work / "main.c").write_text("int main(void) { return 0; }\n")
    for name in ("a", "b"):
        subprocess.run(["gcc", "-static", "-Wl,--build-id=uuid", "-o", name, "main.c"], cwd=work, check=True)
    return work / "a", work / "b"


def test_the_differing_section_is_named(uuid_build_ids: tuple[Path, Path]) -> None:
    assert first_elf_difference(*uuid_build_ids).startswith("section .note.gnu.build-id differs")


def test_identical_binaries_have_no_differing_section(uuid_build_ids: tuple[Path, Path]) -> None:
    first, _ = uuid_build_ids
    assert "outside sections" in first_elf_difference(first, first)


def test_the_differing_layer_entry_is_named(tmp_path: Path) -> None:
    config = oci.ImageConfig(platform=PLATFORMS["linux/amd64"], entrypoint=("/app",), created=0)
    archives = []
    for name, data in (("a.tar", b"one"), ("b.tar", b"two")):
        image = oci.build_image([oci.FileEntry(path="/app", data=data)], config)
        (tmp_path / name).write_bytes(oci.docker_archive(image, ["app:latest"]))
        archives.append(tmp_path / name)
    assert first_image_difference(*archives) == "layer 0: tar entry app: content differs"


def test_a_differing_config_names_its_key(tmp_path: Path) -> None:
    paths = []
    for user in ("0", "65534"):
        config = oci.ImageConfig(platform=PLATFORMS["linux/amd64"], entrypoint=("/app",), user=user)
        image = oci.build_image([oci.FileEntry(path="/app", data=b"same")], config)
        paths.append(tmp_path / f"{user}.tar")
        paths[-1].write_bytes(oci.docker_archive(image, ["app:latest"]))
    assert first_image_difference(*paths) == 'image config: .config.User is "0" vs "65534"'
