"""Toolchain extension against the real engine and archive: a toolchain that extends the shipped gcc is a
thin layer on gcc's image (the same lower layers, gcc's image untouched), holds the packages it adds, and
is layered again, without bootstrapping gcc again, when only its own packages change; the superseded
layer is then removed, while an image osless did not make for this project stays. A per-platform library
(`libraries`, -dev packages without their run-time dependencies) is linked into a static binary for an
emulated platform, which runs under qemu.

The shipped gcc image is reused (bootstrapped first when missing: minutes)."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.bootstrap.spec import BASE_LABEL, TOOLCHAIN_LABEL, image_reference
from orchestrator.engine import PROJECT_LABEL, project_label
from orchestrator.recipe.loader import load_project
from orchestrator.stages.toolchain import made_images
from tests.integration.conftest import run_osless

pytestmark = pytest.mark.integration

PLATFORM = "linux/riscv64"
TOOLCHAIN = """\
[toolchain]
name = "gcc-more"
extends = "gcc"

[toolchain.bootstrap]
packages = [{packages}]

[toolchain.platforms."linux/riscv64"]
libraries = ["libbz2-dev"]
"""
MAIN_C = r"""#include <bzlib.h>
#include <stdio.h>
#include <string.h>

int main(void) {
    char text[4096], packed[8192], back[4096];
    for (size_t i = 0; i < sizeof text; i++) text[i] = "osless"[i % 6];
    unsigned int packed_size = sizeof packed, back_size = sizeof back;
    if (BZ2_bzBuffToBuffCompress(packed, &packed_size, text, sizeof text, 9, 0, 0) != BZ_OK) return 1;
    if (BZ2_bzBuffToBuffDecompress(back, &back_size, packed, packed_size, 0, 0) != BZ_OK) return 2;
    if (back_size != sizeof text || memcmp(back, text, sizeof text) != 0) return 3;
    printf("bzip2 %.5s: %zu -> %u -> %u bytes\n", BZ2_bzlibVersion(), sizeof text, packed_size, back_size);
    return 0;
}
"""
SERVICE = f"""\
[service]
name = "bz-layer"
source = "sources/bz"
toolchain = "gcc-more"
platforms = ["{PLATFORM}"]

[build]
command = ["{{CC}}", "-static", "-O2", "-o", "{{output}}", "main.c", "-lbz2"]

[smoke]
stdout = "bzip2 1.0.8: 4096 -> 54 -> 4096 bytes\\n"
"""


def _image(client: Any, reference: str) -> Any:
    return client.images.get(reference)


@pytest.fixture
def layered(
    docker_client: Any, make_project: Callable[[dict[str, str]], Path], tmp_path: Path
) -> Iterator[tuple[Path, Path]]:
    """A project whose service builds with a toolchain extending gcc; its images removed afterwards."""
    root = make_project(
        {
            "recipes/toolchains/gcc-more.toml": TOOLCHAIN.format(packages='"bc"'),
            "recipes/bz-layer.toml": SERVICE,
            "sources/bz/main.c": MAIN_C,
        }
    )
    yield root, tmp_path / "out"
    for image in docker_client.images.list(filters={"label": f"{TOOLCHAIN_LABEL}=gcc-more"}):
        docker_client.images.remove(image.id, force=True)
    for image in docker_client.images.list(name="bz-layer"):
        docker_client.images.remove(image.id, force=True)


def _foreign_image(client: Any, reference: str, labels: dict[str, str]) -> str:
    """An image osless did not make for this project, tagged like one of its toolchain images."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("hello")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    repository, tag = reference.rsplit(":", 1)
    changes = [f"LABEL {key}={value}" for key, value in labels.items()]
    client.api.import_image_from_data(buffer.getvalue(), repository=repository, tag=tag, changes=changes)
    return str(client.images.get(reference).id)


def test_a_toolchain_extension_is_a_thin_layer_rebuilt_alone(
    docker_client: Any, layered: tuple[Path, Path]
) -> None:
    root, out = layered
    project = load_project(root)
    gcc, more = project.toolchains["gcc"], project.toolchains["gcc-more"]
    first = run_osless(root, "build", out=out)
    output = first.stdout + first.stderr

    assert first.returncode == 0, output
    smoke = first.target("bz-layer", PLATFORM)
    assert smoke["status"] == "passed", json.dumps(smoke, indent=2)
    base = _image(docker_client, image_reference(gcc))
    derived = _image(docker_client, image_reference(more))
    # Layered on gcc's image: its layers are gcc's, plus one.
    base_layers, derived_layers = base.attrs["RootFS"]["Layers"], derived.attrs["RootFS"]["Layers"]
    assert derived_layers[: len(base_layers)] == base_layers and len(derived_layers) == len(base_layers) + 1
    assert derived.labels[BASE_LABEL] == base.id and derived.labels[TOOLCHAIN_LABEL] == "gcc-more"
    # Which images the project made is recorded in its out dir, not labelled (the same image everywhere).
    record = out / ".toolchains" / "gcc-more.images"
    assert PROJECT_LABEL not in derived.labels and made_images(record) == [derived.id]
    assert "osless.run" not in derived.labels or not derived.labels["osless.run"]
    # It has what it adds; the base does not.
    assert _runs(docker_client, derived.id, ["sh", "-c", "echo 6*7 | bc"]) == "42\n"
    assert _runs(docker_client, derived.id, ["sh", "-c", "ls /usr/lib/riscv64-linux-gnu/libbz2.a"])
    assert _runs(docker_client, base.id, ["sh", "-c", "command -v bc || echo none"]) == "none\n"

    # A superseded image of this project's gcc-more (an older spec) and two that are not to be removed:
    # one osless did not make for this project, one a container uses.
    old = _foreign_image(
        docker_client,
        "osless-toolchain/gcc-more:0000000000000001",
        {TOOLCHAIN_LABEL: "gcc-more", PROJECT_LABEL: project_label(root)},
    )
    foreign = _foreign_image(docker_client, "osless-toolchain/gcc-more:0000000000000002", {})
    other = _foreign_image(
        docker_client,
        "osless-toolchain/gcc-more:0000000000000003",
        {TOOLCHAIN_LABEL: "gcc-more", PROJECT_LABEL: "another-project"},
    )
    used = _foreign_image(
        docker_client,
        "osless-toolchain/gcc-more:0000000000000004",
        {TOOLCHAIN_LABEL: "gcc-more", PROJECT_LABEL: project_label(root)},
    )
    with record.open("a") as listed:  # old and used were made for this project; other was not
        listed.write(f"{old}\n{used}\n")
    user = docker_client.containers.create(used, command=["/hello"])
    try:
        # Only the extension's packages change: the layer is made again on the same gcc image.
        (root / "recipes" / "toolchains" / "gcc-more.toml").write_text(
            TOOLCHAIN.format(packages='"bc", "tree"')
        )
        again = run_osless(root, "build", out=out)
        output = again.stdout + again.stderr
        assert again.returncode == 0, output
        assert "mmdebstrap" not in output and "docker import" not in output
        assert _image(docker_client, image_reference(gcc)).id == base.id
        newer = _image(docker_client, image_reference(load_project(root).toolchains["gcc-more"]))
        assert newer.id != derived.id and newer.labels[BASE_LABEL] == base.id
        assert newer.attrs["RootFS"]["Layers"][: len(base_layers)] == base_layers
        assert _runs(docker_client, newer.id, ["sh", "-c", "command -v tree bc"]).count("/") >= 2
        # Superseded: removed, and said so. Not ours, or in use: kept.
        remaining = {
            image.id for image in docker_client.images.list(filters={"label": f"{TOOLCHAIN_LABEL}=gcc-more"})
        }
        assert derived.id not in remaining and old not in remaining
        assert f"removed superseded {image_reference(more)}" in output, output
        assert {other, used} <= remaining and "container" in output
        assert docker_client.images.get(foreign).id == foreign
    finally:
        user.remove(force=True)
        docker_client.images.remove(foreign, force=True)


def _runs(client: Any, image: str, command: list[str]) -> str:
    completed = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", image, *command],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout
