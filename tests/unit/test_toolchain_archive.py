"""Toolchain image archives written by osless: normalized layers from a root filesystem tarball and from
a container's changes, the canonical config, the streamed `docker load` archive, and the record of the
images a project made (collect_superseded)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from orchestrator.bootstrap.spec import TOOLCHAIN_LABEL
from orchestrator.engine import PROJECT_LABEL, ImageInfo, _ChunkReader
from orchestrator.errors import ToolchainError
from orchestrator.image import toolchain_archive as archive
from orchestrator.image.toolchain_archive import Change
from orchestrator.stages.toolchain import collect_superseded, made_images

EPOCH = 1735689600


def _tar(path: Path, members: list[tuple[str, str, bytes | str, dict[str, Any]]]) -> Path:
    """A PAX tar of (name, kind "f"/"d"/"l"/"h", data or link target, extra header fields)."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, data, extra in members:
            info = tarfile.TarInfo(name)
            info.mtime, info.uname, info.gname, info.mode = 2_000_000_000, "root", "root", 0o755
            for key, value in extra.items():
                setattr(info, key, value)
            if kind == "d":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif kind in ("l", "h"):
                info.type = tarfile.SYMTYPE if kind == "l" else tarfile.LNKTYPE
                info.linkname = str(data)
                tar.addfile(info)
            else:
                assert isinstance(data, bytes)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


ROOTFS = [
    ("./", "d", b"", {}),
    ("./etc/", "d", b"", {}),
    ("./etc/hostname", "f", b"builder-42\n", {}),
    ("./etc/resolv.conf", "f", b"nameserver 10.0.0.1\n", {}),
    ("./usr/", "d", b"", {}),
    ("./usr/bin/", "d", b"", {}),
    ("./usr/bin/ping", "f", b"\x7fELF", {"pax_headers": {"SCHILY.xattr.security.capability": "x"}}),
    ("./usr/bin/old", "f", b"old", {"mtime": 1_000_000_000, "uname": "someone", "uid": 7}),
    ("./usr/bin/again", "h", "./usr/bin/old", {}),
    ("./usr/bin/sh", "l", "dash", {"pax_headers": {"atime": "1234.5", "ctime": "1234.5"}}),
]


def _members(path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        return {member.name: member for member in tar}


def test_a_rootfs_layer_is_normalized_and_reproducible(tmp_path: Path) -> None:
    source = _tar(tmp_path / "rootfs.tar", ROOTFS)
    first = archive.rootfs_layer(source, tmp_path / "one.tar", EPOCH)
    second = archive.rootfs_layer(source, tmp_path / "two.tar", EPOCH)

    assert first.diff_id == second.diff_id == "sha256:" + hashlib.sha256(first.path.read_bytes()).hexdigest()
    assert first.size == first.path.stat().st_size
    members = _members(first.path)
    # The host's files (mmdebstrap copies them in) and the root entry are left out.
    assert list(members) == [
        "etc",
        "usr",
        "usr/bin",
        "usr/bin/ping",
        "usr/bin/old",
        "usr/bin/again",
        "usr/bin/sh",
    ]
    assert all(m.mtime <= EPOCH and m.uname == m.gname == "" for m in members.values())
    assert members["usr/bin/old"].mtime == 1_000_000_000 and members["usr/bin/old"].uid == 7
    assert members["usr/bin/again"].islnk() and members["usr/bin/again"].linkname == "usr/bin/old"
    assert members["usr/bin/ping"].pax_headers == {"SCHILY.xattr.security.capability": "x"}
    assert "atime" not in members["usr/bin/sh"].pax_headers and members["usr/bin/sh"].linkname == "dash"


def test_the_layer_does_not_depend_on_the_host_times_or_names(tmp_path: Path) -> None:
    here = _tar(tmp_path / "here.tar", ROOTFS)
    elsewhere = [
        (name, kind, b"other-host\n" if name == "./etc/hostname" else data, {**extra, "uname": "admin"})
        for name, kind, data, extra in ROOTFS
    ]
    there = _tar(tmp_path / "there.tar", elsewhere)
    one = archive.rootfs_layer(here, tmp_path / "one.tar", EPOCH)
    two = archive.rootfs_layer(there, tmp_path / "two.tar", EPOCH)
    assert one.diff_id == two.diff_id


def test_a_member_leaving_the_root_is_refused(tmp_path: Path) -> None:
    source = _tar(tmp_path / "bad.tar", [("../etc/passwd", "f", b"x", {})])
    with pytest.raises(ToolchainError, match="outside"):
        archive.rootfs_layer(source, tmp_path / "layer.tar", EPOCH)


def test_a_changes_layer_holds_what_changed_with_whiteouts(tmp_path: Path) -> None:
    export = _tar(
        tmp_path / "export.tar",
        [
            ("etc/", "d", b"", {}),
            ("etc/passwd", "f", b"root\n", {}),  # unchanged: not in the layer
            ("usr/", "d", b"", {}),
            ("usr/bin/", "d", b"", {}),
            ("usr/bin/bc", "f", b"bc", {}),
            ("var/", "d", b"", {}),
            ("var/log/", "d", b"", {}),
            ("var/log/dpkg.log", "f", b"2026-12-02 15:00 install bc", {}),
            ("var/log/apt/", "d", b"", {}),
            ("var/cache/ldconfig/aux-cache", "f", b"inodes", {}),
            ("var/lib/dpkg/status", "f", b"Package: bc", {}),
        ],
    )
    changes = [
        Change(path="/usr", kind=archive.CHANGE_MODIFIED),
        Change(path="/usr/bin", kind=archive.CHANGE_MODIFIED),
        Change(path="/usr/bin/bc", kind=archive.CHANGE_ADDED),
        Change(path="/var/log", kind=archive.CHANGE_MODIFIED),
        Change(path="/var/log/dpkg.log", kind=archive.CHANGE_ADDED),
        Change(path="/var/log/apt", kind=archive.CHANGE_ADDED),
        Change(path="/var/cache/ldconfig/aux-cache", kind=archive.CHANGE_MODIFIED),
        Change(path="/var/lib/dpkg/status", kind=archive.CHANGE_MODIFIED),
        Change(path="/var/lib/dpkg/status-old", kind=archive.CHANGE_DELETED),
        Change(path="/opt/old", kind=archive.CHANGE_DELETED),
        Change(path="/opt/old/file", kind=archive.CHANGE_DELETED),  # under a deleted directory
    ]
    with export.open("rb") as stream:
        layer = archive.changes_layer(changes, stream, tmp_path / "layer.tar", EPOCH)

    members = _members(layer.path)
    assert list(members) == [
        "opt/.wh.old",
        "var/lib/dpkg/.wh.status-old",
        "usr",
        "usr/bin",
        "usr/bin/bc",
        "var/log",
        "var/log/apt",
        "var/lib/dpkg/status",
    ]
    assert all(m.mtime == EPOCH for m in members.values())
    with export.open("rb") as stream:
        again = archive.changes_layer(changes, stream, tmp_path / "again.tar", EPOCH)
    assert again.diff_id == layer.diff_id


def test_the_config_is_canonical(tmp_path: Path) -> None:
    config = archive.image_config(
        platform={"architecture": "arm", "os": "linux", "variant": "v7"},
        runtime={"Env": ["PATH=/bin"], "Cmd": None, "User": ""},
        labels={"b": "2", "a": "1"},
        diff_ids=["sha256:" + "0" * 64],
        history=["osless: toolchain bootstrap"],
        epoch=EPOCH,
    )
    document = json.loads(config)
    assert config == json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    assert document["created"] == "2025-01-01T00:00:00Z" and document["variant"] == "v7"
    assert document["config"] == {"Env": ["PATH=/bin"], "Labels": {"a": "1", "b": "2"}}
    assert document["history"] == [
        {"created": "2025-01-01T00:00:00Z", "created_by": "osless: toolchain bootstrap"}
    ]
    with pytest.raises(ValueError, match="history"):
        archive.image_config(platform={}, runtime={}, labels={}, diff_ids=["a", "b"], history=["x"], epoch=0)


def test_the_archive_streams_the_layer_config_and_legacy_manifest(tmp_path: Path) -> None:
    layer = archive.rootfs_layer(_tar(tmp_path / "rootfs.tar", ROOTFS), tmp_path / "layer.tar", EPOCH)
    base = "sha256:" + "1" * 64
    diff_ids = [base, layer.diff_id]
    config = archive.image_config(
        platform={"architecture": "amd64", "os": "linux"},
        runtime={},
        labels={},
        diff_ids=diff_ids,
        history=["base", "layer"],
        epoch=EPOCH,
    )
    chunks = list(archive.archive_chunks(config=config, diff_ids=diff_ids, layer=layer, reference="t/x:1"))
    assert max(len(chunk) for chunk in chunks) <= archive.CHUNK + 1024  # bounded: never the whole layer
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]
    digest = archive.config_digest(config)
    assert files[f"blobs/sha256/{digest[7:]}"] == config
    assert files[f"blobs/sha256/{layer.diff_id[7:]}"] == layer.path.read_bytes()
    # The base's layer is named, not carried: the engine has it.
    assert f"blobs/sha256/{base[7:]}" not in files
    assert json.loads(files["manifest.json"]) == [
        {
            "Config": f"blobs/sha256/{digest[7:]}",
            "Layers": [f"blobs/sha256/{base[7:]}", f"blobs/sha256/{layer.diff_id[7:]}"],
            "RepoTags": ["t/x:1"],
        }
    ]
    with pytest.raises(ValueError, match="last"):
        list(
            archive.archive_chunks(config=config, diff_ids=[layer.diff_id, base], layer=layer, reference="t")
        )


def test_a_chunk_stream_reads_as_a_file() -> None:
    data = bytes(range(256)) * 100
    reader = io.BufferedReader(_ChunkReader([data[:1000], b"", data[1000:5000], data[5000:]]), 333)
    assert reader.read(10) == data[:10]
    assert reader.read() == data[10:]
    assert reader.read() == b""


class _Images:
    """An engine with some toolchain images; records what was removed."""

    def __init__(self, images: list[ImageInfo], in_use: set[str]) -> None:
        self.images = images
        self.in_use = in_use
        self.removed: list[str] = []

    def images_labelled(self, label: str, value: str) -> list[ImageInfo]:
        assert label == TOOLCHAIN_LABEL
        return [image for image in self.images if image.labels.get(label) == value]

    def containers_using(self, image_id: str) -> list[str]:
        return ["user"] if image_id in self.in_use else []

    def remove_unused_image(self, image_id: str) -> str | None:
        self.removed.append(image_id)
        return None


def _image(image_id: str, tag: str, project: str = "") -> ImageInfo:
    labels = {TOOLCHAIN_LABEL: "gcc", **({PROJECT_LABEL: project} if project else {})}
    return ImageInfo(id=image_id, tags=(tag,), labels=labels, created="", size=1)


def test_superseded_images_are_those_the_record_lists(tmp_path: Path) -> None:
    record = tmp_path / "gcc.images"
    record.write_text("sha256:old\nsha256:used\nsha256:gone\nsha256:moved\n")
    engine = _Images(
        [
            _image("sha256:old", "osless-toolchain/gcc:1"),
            _image("sha256:used", "osless-toolchain/gcc:2"),
            _image("sha256:other", "osless-toolchain/gcc:3", "another"),  # not made for this project
            _image("sha256:legacy", "osless-toolchain/gcc:5", "ours"),  # labelled by an older osless
            _image("sha256:new", "osless-toolchain/gcc:4"),
            replace(_image("sha256:moved", ""), tags=()),  # made here, its tag moved to a newer image
            replace(_image("sha256:foreign", ""), tags=()),  # untagged, never made here
        ],
        in_use={"sha256:used"},
    )
    said: list[str] = []
    collect_superseded(engine, "gcc", "sha256:new", record, said.append, legacy="ours")  # type: ignore[arg-type]

    assert engine.removed == ["sha256:old", "sha256:legacy", "sha256:moved"]
    assert made_images(record) == ["sha256:new", "sha256:used"]
    assert any("removed superseded osless-toolchain/gcc:1" in line for line in said)
    assert any("kept superseded osless-toolchain/gcc:2: container user" in line for line in said)
    assert any("removed superseded osless-toolchain/gcc (untagged moved)" in line for line in said)
    assert made_images(tmp_path / "none.images") == []
