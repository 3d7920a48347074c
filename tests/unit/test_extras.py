"""The image extras registry is the one vocabulary: recipes, verifier, inspect and SBOM read it."""

from __future__ import annotations

import io
import tarfile

import pytest

from orchestrator.image import oci, reader
from orchestrator.image.extras import EXTRAS
from orchestrator.platforms import PLATFORMS
from orchestrator.recipe.model import IMAGE_EXTRAS
from orchestrator.verify.findings import need


def test_recipes_accept_exactly_the_registered_extras() -> None:
    assert tuple(EXTRAS) == IMAGE_EXTRAS


@pytest.mark.parametrize("name", list(EXTRAS))
def test_the_verifier_names_the_extra_that_satisfies_a_need(name: str) -> None:
    finding = need(name, "looks for it")
    assert (finding.id, finding.extra) == (EXTRAS[name].finding, name)
    assert finding.hint == EXTRAS[name].hint == f'add extras = ["{name}"] to [image]'


@pytest.mark.parametrize("name", ["passwd", "tmp"])
def test_an_image_holding_an_extras_files_provides_it(name: str) -> None:
    """What an extra adds is what inspect recognizes as that extra (for those made without an engine)."""
    entries = EXTRAS[name].files(None, "", None)  # type: ignore[arg-type]  # these need neither
    config = oci.ImageConfig(platform=PLATFORMS["linux/amd64"], entrypoint=("/app",))
    image = oci.build_image([*entries, oci.FileEntry(path="/app", data=b"x")], config)
    layer = reader.read_layer(image.layers[0].data)
    contents = reader.ImageContents(
        source="test",
        image_id=image.image_id,
        platforms=("linux/amd64",),
        settings=reader.ImageSettings(
            os="linux",
            architecture="amd64",
            variant=None,
            created=None,
            entrypoint=("/app",),
            cmd=(),
            user="",
            working_dir="/",
            env=(),
            labels={},
        ),
        layers=1,
        files=layer,
    )
    assert [extra for extra in EXTRAS.values() if extra.provided_by(contents)] == [EXTRAS[name]]


def test_a_layer_read_alone_has_content_digests_and_times() -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("etc/motd")
        info.size, info.mtime = 5, 1234
        tar.addfile(info, io.BytesIO(b"hello"))
    (entry,) = reader.read_layer(buffer.getvalue()).values()
    assert (entry.path, entry.mtime, entry.size) == ("/etc/motd", 1234, 5)
    assert entry.digest == "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
