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


MAIN_C = (
    "#include <stdio.h>\n"
    'int main(void) { printf("%s built\\n", __FILE__); return 0; }\n'  # the absolute path: embedded
)
GO_MAIN = 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("hi") }\n'


def _built_in(directory: Path, command: list[str], files: dict[str, str]) -> Path:
    """The source built in `directory` (given as an absolute path where the compiler embeds it)."""
    directory.mkdir(parents=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    subprocess.run([*command, "-o", str(directory / "app")], cwd=directory, check=True)
    return directory / "app"


@pytest.mark.parametrize("second", ["b", "bbbbbb"], ids=["same length", "longer"])
def test_an_embedded_path_is_named_not_the_build_id(tmp_path: Path, second: str) -> None:
    """Two real binaries that differ only by the directory they were built in: the build ID differs
    first in the file, but what differs is the path in .rodata (when longer, it moves code too)."""
    if shutil.which("gcc") is None:
        pytest.skip("the host has no gcc")
    dir_a, dir_b = tmp_path / "a", tmp_path / second
    a, b = (
        _built_in(directory, ["gcc", "-O2", "-static", str(directory / "main.c")], {"main.c": MAIN_C})
        for directory in (dir_a, dir_b)
    )
    difference = first_elf_difference(a, b)
    assert f'"{dir_a}/main.c" vs "{dir_b}/main.c"' in difference, difference
    assert difference.endswith("(.note.gnu.build-id too, derived from the rest)")
    if second == "b":  # nothing moved: the path is the first difference of the first differing section
        assert difference.startswith("section .rodata differs"), difference
    else:
        assert "; first differing string: " in difference


def test_a_go_path_is_named_not_the_go_build_id(tmp_path: Path) -> None:
    if shutil.which("go") is None:
        pytest.skip("the host has no go")
    files = {"go.mod": "module example.com/m\n\ngo 1.19\n", "main.go": GO_MAIN}
    command = ["env", "CGO_ENABLED=0", "GOFLAGS=", "GOTOOLCHAIN=local"]
    command += ["go", "build", "-buildvcs=false"]
    a, b = (_built_in(tmp_path / name, command, files) for name in ("a", "bbb"))
    difference = first_elf_difference(a, b)
    assert f'"{tmp_path}/a/main.go" vs "{tmp_path}/bbb/main.go"' in difference, difference
    assert difference.endswith("(.note.go.buildid too, derived from the rest)")


def test_only_a_derived_section_differing_is_named_as_such(uuid_build_ids: tuple[Path, Path]) -> None:
    assert first_elf_difference(*uuid_build_ids).endswith("and no other: the linker's build ID")


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
