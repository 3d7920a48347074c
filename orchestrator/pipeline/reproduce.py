"""`--check-reproducible`: compare two clean builds of the same targets, and say where they differ.

"Digest differs" helps nobody: the first differing ELF section (for binaries) or tar entry (for image
layers) points at the cause — an embedded path, a timestamp, a build id.
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from orchestrator.image import oci
from orchestrator.outputs.report import TargetReport


@dataclass(frozen=True, kw_only=True)
class Comparison:
    """Whether one target came out the same twice, and if not, the first difference found."""

    service: str
    platform: str
    same: bool
    difference: str | None


def compare_targets(
    first: TargetReport, second: TargetReport, first_dir: Path, second_dir: Path
) -> Comparison:
    """Binary bytes, then image digest; the difference is located in the binary or the image tar."""
    where = Comparison(service=first.service, platform=first.platform, same=True, difference=None)
    if first.binary is None or second.binary is None or first.image is None or second.image is None:
        return _differs(where, "the target did not pass both builds")
    if first.binary.sha256 != second.binary.sha256:
        difference = first_elf_difference(Path(first.binary.path), Path(second.binary.path))
        return _differs(where, f"binary differs: {difference}")
    if first.image.manifest_digest != second.image.manifest_digest:
        difference = first_image_difference(first_dir / "image.tar", second_dir / "image.tar")
        return _differs(
            where,
            f"image differs ({first.image.manifest_digest} vs {second.image.manifest_digest}): {difference}",
        )
    return where


def _differs(comparison: Comparison, difference: str) -> Comparison:
    return Comparison(
        service=comparison.service, platform=comparison.platform, same=False, difference=difference
    )


def first_elf_difference(first: Path, second: Path) -> str:
    """The first section (in file order) whose bytes differ, or the header when no section does."""
    try:
        with first.open("rb") as a, second.open("rb") as b:
            sections_a = {s.name: s for s in ELFFile(a).iter_sections()}
            sections_b = {s.name: s for s in ELFFile(b).iter_sections()}
            for name, section in sections_a.items():
                other = sections_b.get(name)
                if other is None:
                    return f"section {name} exists only in the first build"
                if section.data() != other.data():
                    return (
                        f"section {name or '(null)'} differs ({section.data_size} vs {other.data_size} bytes)"
                    )
            extra = sorted(sections_b.keys() - sections_a.keys())
            if extra:
                return f"section {extra[0]} exists only in the second build"
    except (ELFError, OSError, ValueError) as error:
        return f"cannot compare sections ({error})"
    return "the ELF headers or the bytes outside sections differ"


def first_image_difference(first: Path, second: Path) -> str:
    """Where two image archives differ: the first differing layer entry, else config key, else manifest."""
    image_a, image_b = oci.read_archive(first.read_bytes()), oci.read_archive(second.read_bytes())
    for number, (layer_a, layer_b) in enumerate(zip(image_a.layers, image_b.layers, strict=False)):
        if layer_a.digest != layer_b.digest:
            return f"layer {number}: {_tar_difference(layer_a.data, layer_b.data)}"
    if len(image_a.layers) != len(image_b.layers):
        return f"{len(image_a.layers)} vs {len(image_b.layers)} layers"
    if image_a.config.digest != image_b.config.digest:
        return f"image config: {_json_difference(image_a.config, image_b.config)}"
    return f"manifest: {_json_difference(image_a.manifest, image_b.manifest)}"


def _json_difference(first: oci.Blob, second: oci.Blob) -> str:
    return _value_difference(json.loads(first.data), json.loads(second.data), "")


def _value_difference(first: Any, second: Any, path: str) -> str:
    """The first key path at which two JSON values differ."""
    if isinstance(first, dict) and isinstance(second, dict):
        for key in sorted(first.keys() | second.keys()):
            if first.get(key) != second.get(key):
                return _value_difference(first.get(key), second.get(key), f"{path}.{key}")
    return f"{path or '.'} is {json.dumps(first)} vs {json.dumps(second)}"


def _tar_difference(first: bytes, second: bytes) -> str:
    entries_a, entries_b = _entries(first), _entries(second)
    for name in sorted(entries_a.keys() | entries_b.keys()):
        a, b = entries_a.get(name), entries_b.get(name)
        if a is None or b is None:
            return f"tar entry {name} exists only in the {'second' if a is None else 'first'} build"
        if a[0] != b[0]:
            return f"tar entry {name}: header differs ({a[0]} vs {b[0]})"
        if a[1] != b[1]:
            return f"tar entry {name}: content differs"
    return "the tars differ outside their entries"


def _entries(data: bytes) -> dict[str, tuple[str, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        entries = {}
        for member in tar.getmembers():
            header = (
                f"mode {member.mode:o} uid {member.uid}:{member.gid} mtime {member.mtime} size {member.size}"
            )
            extracted = tar.extractfile(member) if member.isfile() else None
            entries[member.name] = (header, extracted.read() if extracted else b"")
    return entries
