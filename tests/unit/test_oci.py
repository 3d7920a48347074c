"""The OCI writer: bit-identical output, USTAR layers, a valid layout, a loadable docker archive."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from orchestrator.image import oci
from orchestrator.platforms import PLATFORMS, Platform

EPOCH = 1_700_000_000
ANNOTATIONS = {"org.opencontainers.image.source": "https://example.invalid/osless"}


def make_image(platform: Platform = PLATFORMS["linux/amd64"], data: bytes = b"\x7fELF binary") -> oci.Image:
    files = [
        oci.FileEntry(path="/hello", data=data),
        oci.FileEntry(path="/etc/ssl/certs/ca.pem", data=b"cert", mode=0o644),
    ]
    config = oci.ImageConfig(
        platform=platform,
        entrypoint=("/hello",),
        cmd=("--greet", "wörld"),
        user="65534:65534",
        env={"Z": "last", "A": "first"},
        labels={"b": "2", "a": "1"},
        created=EPOCH,
    )
    return oci.build_image(files, config, annotations=ANNOTATIONS)


def three_platforms() -> list[oci.Image]:
    return [make_image(PLATFORMS[name]) for name in ("linux/arm/v7", "linux/amd64", "linux/arm64")]


def tree(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in directory.rglob("*") if p.is_file()}


def layer_members(image: oci.Image) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(image.layers[0].data)) as tar:
        return tar.getmembers()


# Determinism


def test_building_twice_gives_the_same_bytes() -> None:
    first, second = make_image(), make_image()
    assert [b.data for b in first.blobs()] == [b.data for b in second.blobs()]
    assert (first.digest, first.image_id) == (second.digest, second.image_id)


def test_file_order_and_env_order_do_not_matter() -> None:
    files = [oci.FileEntry(path="/a", data=b"a"), oci.FileEntry(path="/b/c", data=b"c")]
    config = oci.ImageConfig(platform=PLATFORMS["linux/amd64"], entrypoint=("/a",), env={"X": "1", "Y": "2"})
    swapped = oci.ImageConfig(platform=PLATFORMS["linux/amd64"], entrypoint=("/a",), env={"Y": "2", "X": "1"})
    assert oci.build_image(files, config).digest == oci.build_image(files[::-1], swapped).digest


def test_different_content_gives_different_digests() -> None:
    assert make_image().digest != make_image(data=b"other").digest
    assert make_image().digest != make_image(PLATFORMS["linux/arm64"]).digest


def test_writing_a_layout_twice_gives_an_identical_tree(tmp_path: Path) -> None:
    first = oci.write_layout(tmp_path / "one", three_platforms(), ANNOTATIONS)
    second = oci.write_layout(tmp_path / "two", three_platforms()[::-1], ANNOTATIONS)
    assert first == second
    assert tree(tmp_path / "one") == tree(tmp_path / "two")


def test_docker_archive_is_deterministic() -> None:
    assert oci.docker_archive(make_image(), ["x:1"]) == oci.docker_archive(make_image(), ["x:1"])


# Layer tar


def test_layer_is_sorted_ustar_with_explicit_parents() -> None:
    image = make_image()
    members = layer_members(image)
    names = [m.name for m in members]
    assert names == ["etc", "etc/ssl", "etc/ssl/certs", "etc/ssl/certs/ca.pem", "hello"]
    assert [m.isdir() for m in members] == [True, True, True, False, False]
    assert [m.mode for m in members] == [0o755, 0o755, 0o755, 0o644, 0o755]
    data = image.layers[0].data
    for offset in range(0, len(data) - 1024, 512):
        if data[offset + 257 : offset + 263] == b"ustar\x00":
            assert data[offset + 156 : offset + 157] in (b"0", b"5")  # regular file or directory, no PAX
    assert data[:100].rstrip(b"\x00") == b"etc/"


def test_layer_entries_are_root_owned_and_dated_by_the_epoch() -> None:
    for member in layer_members(make_image()):
        assert (member.uid, member.gid, member.uname, member.gname) == (0, 0, "", "")
        assert member.mtime == EPOCH
        assert member.pax_headers == {}


def test_layer_digest_is_the_diff_id() -> None:
    image = make_image()
    config = json.loads(image.config.data)
    assert image.layers[0].media_type == oci.MEDIA_TYPE_LAYER
    assert config["rootfs"] == {"type": "layers", "diff_ids": [image.layers[0].digest]}
    assert image.layers[0].digest == "sha256:" + hashlib.sha256(image.layers[0].data).hexdigest()


@pytest.mark.parametrize(
    "files",
    [
        [oci.FileEntry(path="/a", data=b""), oci.FileEntry(path="/a", data=b"")],
        [oci.FileEntry(path="/a", data=b""), oci.FileEntry(path="/a/b", data=b"")],
        [oci.FileEntry(path="/" + "d" * 200 + "/" + "f" * 120, data=b"")],
    ],
    ids=["duplicate", "file-and-directory", "too-long-for-ustar"],
)
def test_impossible_trees_are_refused(files: list[oci.FileEntry]) -> None:
    config = oci.ImageConfig(platform=PLATFORMS["linux/amd64"], entrypoint=("/a",))
    with pytest.raises(ValueError):
        oci.build_image(files, config)


@pytest.mark.parametrize("path", ["relative", "/", "//x", "/a/../b", "/a/", "/a/./b"])
def test_file_paths_must_be_absolute_and_normalized(path: str) -> None:
    with pytest.raises(ValueError):
        oci.FileEntry(path=path, data=b"")


# JSON documents


def test_documents_are_canonical_json() -> None:
    image = make_image()
    for blob in (image.config, image.manifest):
        assert blob.data == oci.canonical_json(json.loads(blob.data))
    assert oci.canonical_json({"b": "ü", "a": [1, 2]}) == '{"a":[1,2],"b":"ü"}'.encode()


def test_config_describes_the_platform_and_the_runtime() -> None:
    config = json.loads(make_image(PLATFORMS["linux/arm/v7"]).config.data)
    assert (config["os"], config["architecture"], config["variant"]) == ("linux", "arm", "v7")
    assert config["created"] == "2023-11-14T22:13:20Z"
    assert config["history"] == [{"created": "2023-11-14T22:13:20Z", "created_by": "osless"}]
    assert config["config"] == {
        "Entrypoint": ["/hello"],
        "Cmd": ["--greet", "wörld"],
        "User": "65534:65534",
        "Env": ["A=first", "Z=last"],
        "Labels": {"a": "1", "b": "2"},
        "WorkingDir": "/",
    }
    assert "variant" not in json.loads(make_image(PLATFORMS["linux/amd64"]).config.data)


def test_manifest_points_at_config_and_layer() -> None:
    image = make_image()
    manifest = json.loads(image.manifest.data)
    assert manifest == {
        "schemaVersion": 2,
        "mediaType": oci.MEDIA_TYPE_MANIFEST,
        "config": image.config.descriptor(),
        "layers": [image.layers[0].descriptor()],
        "annotations": ANNOTATIONS,
    }
    assert image.size == sum(len(b.data) for b in image.blobs())


# Layout


def test_index_lists_exactly_the_given_platforms(tmp_path: Path) -> None:
    images = three_platforms()
    digest = oci.write_layout(tmp_path, images, ANNOTATIONS)
    raw = (tmp_path / "index.json").read_bytes()
    index = json.loads(raw)
    assert digest == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert (tmp_path / "blobs/sha256" / digest.removeprefix("sha256:")).read_bytes() == raw
    assert index["mediaType"] == oci.MEDIA_TYPE_INDEX and index["schemaVersion"] == 2
    assert index["annotations"] == ANNOTATIONS
    assert [m["platform"] for m in index["manifests"]] == [
        {"os": "linux", "architecture": "amd64"},
        {"os": "linux", "architecture": "arm", "variant": "v7"},
        {"os": "linux", "architecture": "arm64"},
    ]
    by_platform = {image.platform.name: image for image in images}
    for name, entry in zip(("linux/amd64", "linux/arm/v7", "linux/arm64"), index["manifests"], strict=True):
        assert entry["digest"] == by_platform[name].digest
        assert entry["mediaType"] == oci.MEDIA_TYPE_MANIFEST
    assert json.loads((tmp_path / "oci-layout").read_bytes()) == {"imageLayoutVersion": "1.0.0"}


def test_two_images_for_one_platform_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        oci.write_layout(tmp_path, [make_image(), make_image(data=b"other")])


def test_rewriting_a_layout_removes_stale_blobs(tmp_path: Path) -> None:
    oci.write_layout(tmp_path, three_platforms())
    image = make_image(data=b"new")
    digest = oci.write_layout(tmp_path, [image])
    blobs = {p.name for p in (tmp_path / "blobs/sha256").iterdir()}
    expected = {b.digest.removeprefix("sha256:") for b in image.blobs()} | {digest.removeprefix("sha256:")}
    assert blobs == expected
    assert oci.verify_layout(tmp_path) == []


def test_a_fresh_layout_verifies(tmp_path: Path) -> None:
    oci.write_layout(tmp_path, three_platforms(), ANNOTATIONS)
    assert oci.verify_layout(tmp_path) == []


def test_verify_catches_a_corrupted_blob(tmp_path: Path) -> None:
    image = make_image()
    oci.write_layout(tmp_path, [image])
    layer = tmp_path / image.layers[0].path
    data = bytearray(layer.read_bytes())
    data[600] ^= 0xFF
    layer.write_bytes(bytes(data))
    problems = oci.verify_layout(tmp_path)
    assert len(problems) == 1 and "content does not match" in problems[0]


def test_verify_catches_a_wrong_size(tmp_path: Path) -> None:
    oci.write_layout(tmp_path, [make_image()])
    index = json.loads((tmp_path / "index.json").read_bytes())
    index["manifests"][0]["size"] += 1
    (tmp_path / "index.json").write_bytes(oci.canonical_json(index))
    problems = oci.verify_layout(tmp_path)
    assert len(problems) == 1 and "descriptor says" in problems[0]


def test_verify_catches_a_truncated_blob(tmp_path: Path) -> None:
    image = make_image()
    oci.write_layout(tmp_path, [image])
    config = tmp_path / image.config.path
    config.write_bytes(config.read_bytes()[:-1])
    problems = oci.verify_layout(tmp_path)
    assert any("descriptor says" in p for p in problems)
    assert any("content does not match" in p for p in problems)


def test_verify_catches_a_missing_blob(tmp_path: Path) -> None:
    image = make_image()
    oci.write_layout(tmp_path, [image])
    (tmp_path / image.layers[0].path).unlink()
    problems = oci.verify_layout(tmp_path)
    assert len(problems) == 1 and "missing" in problems[0]


def test_verify_catches_a_wrong_media_type_and_a_missing_index(tmp_path: Path) -> None:
    oci.write_layout(tmp_path, [make_image()])
    index = json.loads((tmp_path / "index.json").read_bytes())
    index["manifests"][0]["mediaType"] = "application/vnd.docker.distribution.manifest.v2+json"
    (tmp_path / "index.json").write_bytes(oci.canonical_json(index))
    assert any("media type" in p for p in oci.verify_layout(tmp_path))
    (tmp_path / "index.json").unlink()
    assert any(p.startswith("index.json") for p in oci.verify_layout(tmp_path))


# Docker archive


def test_docker_archive_holds_the_layout_and_a_consistent_manifest_json() -> None:
    image = make_image()
    with tarfile.open(fileobj=io.BytesIO(oci.docker_archive(image, ["osless/hello:amd64"]))) as tar:
        members = tar.getmembers()
        files = {m.name: tar.extractfile(m).read() for m in members if m.isfile()}  # type: ignore[union-attr]
    assert [m.name for m in members] == sorted(m.name for m in members)
    assert all((m.uid, m.gid, m.uname, m.mtime) == (0, 0, "", 0) for m in members)
    for blob in image.blobs():
        assert files[blob.path] == blob.data
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    assert [m["digest"] for m in json.loads(files["index.json"])["manifests"]] == [image.digest]
    assert json.loads(files["manifest.json"]) == [
        {
            "Config": f"blobs/sha256/{image.image_id.removeprefix('sha256:')}",
            "RepoTags": ["osless/hello:amd64"],
            "Layers": [f"blobs/sha256/{image.layers[0].digest.removeprefix('sha256:')}"],
        }
    ]
