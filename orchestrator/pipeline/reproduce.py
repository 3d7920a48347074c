"""`--check-reproducible`: compare two clean builds of the same targets, and say where they differ.

"Digest differs" helps nobody: the first differing ELF section (for binaries) or tar entry (for image
layers) points at the cause — an embedded path, a timestamp. Sections derived from the rest (build IDs)
are named only when nothing else differs, and the first differing string shows what the bytes are.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from orchestrator.engine import Engine
from orchestrator.image import oci, reader
from orchestrator.outputs.progress import ProgressView
from orchestrator.outputs.report import RunReport, TargetReport, write_json
from orchestrator.pipeline.runner import BuildOptions, Runner
from orchestrator.pipeline.targets import Target
from orchestrator.recipe.model import Project


@dataclass(frozen=True, kw_only=True)
class Comparison:
    """Whether one target came out the same twice, and if not, the first difference found."""

    service: str
    platform: str
    same: bool
    difference: str | None


@dataclass(frozen=True, kw_only=True)
class ReproducibilityReport:
    """Two clean builds of the same targets compared: targets and service indexes."""

    targets: list[Comparison]
    indexes: dict[str, tuple[str, str]]  # service -> (first, second) index digests

    @property
    def reproducible(self) -> bool:
        return all(c.same for c in self.targets) and all(a == b for a, b in self.indexes.values())


def check_reproducible(
    project: Project,
    options: BuildOptions,
    engine: Engine,
    view: ProgressView,
    targets: Sequence[Target],
    *,
    platform_engines: Mapping[str, Engine] | None = None,
) -> tuple[RunReport, ReproducibilityReport]:
    """Build every target twice, each time from clean state (no cached result, empty compiler caches)."""
    namespace = f"-check-{engine.run_id}"
    runs = []
    try:
        for label, out_root in (("a", options.out_root), ("b", options.out_root / ".reproducible")):
            clean = replace(options, rebuild=True, out_root=out_root, cache_namespace=f"{namespace}-{label}")
            view.step("reproducibility", f"clean build {label} of 2")
            runs.append(Runner(project, clean, engine, view, platform_engines).run(targets))
    finally:
        engine.remove_volumes(containing=namespace)
    first, second = runs
    comparison = ReproducibilityReport(
        targets=[
            compare_targets(
                a, b, t.output_dir(options.out_root), t.output_dir(options.out_root / ".reproducible")
            )
            for a, b, t in zip(first.targets, second.targets, targets, strict=True)
        ],
        indexes={
            a.service: (a.index_digest, b.index_digest)
            for a, b in zip(first.images, second.images, strict=False)
            if a.service == b.service
        },
    )
    write_json(options.out_root / "reproducible.json", comparison)
    view.step("reproducibility", "same" if comparison.reproducible else "DIFFERENT", done=True)
    return first, comparison


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


# Sections whose bytes are derived from the rest of the file (or of another one): they differ whenever
# anything else does, so naming them says nothing. Only when nothing else differs are they the difference.
DERIVED_SECTIONS = {
    ".note.gnu.build-id": "the linker's build ID",
    ".note.go.buildid": "Go's build ID",
    ".gnu_debuglink": "the debug file's name and CRC",
}
SHF_EXECINSTR = 0x4
_MIN_STRING = 4  # printable bytes in a row that count as a string, as strings(1) has it
_MAX_SHOWN = 80
_STRINGS = re.compile(rb"[\x20-\x7e]{%d,}" % _MIN_STRING)


@dataclass(frozen=True)
class _Section:
    name: str
    data: bytes
    executable: bool


def first_elf_difference(first: Path, second: Path) -> str:
    """The first section (in file order) whose bytes differ, skipping DERIVED_SECTIONS; where in it, and
    the first string that differs in the non-executable sections (an embedded path, a timestamp: what
    moved code, whose addresses then differ, is about). The header when no section differs."""
    try:
        with first.open("rb") as a, second.open("rb") as b:
            sections_a, sections_b = _sections(ELFFile(a)), _sections(ELFFile(b))
    except (ELFError, OSError, ValueError) as error:
        return f"cannot compare sections ({error})"
    derived: list[str] = []
    for name, section in sections_a.items():
        other = sections_b.get(name)
        if other is None:
            return f"section {name} exists only in the first build"
        if section.data == other.data:
            continue
        if name in DERIVED_SECTIONS:
            derived.append(name)
            continue
        where = f"section {name or '(null)'} differs ({len(section.data)} vs {len(other.data)} bytes)"
        at = _bytes_difference(section.data, other.data)
        where += f" at {at}"
        text = _string_difference(sections_a, sections_b)
        if text and not at.endswith(text.removesuffix(f" in {name}")):  # not the same strings again
            where += f"; first differing string: {text}"
        if derived:
            where += f" ({', '.join(derived)} too, derived from the rest)"
        return where
    extra = sorted(sections_b.keys() - sections_a.keys())
    if extra:
        return f"section {extra[0]} exists only in the second build"
    if derived:
        name = derived[0]
        size_a, size_b = len(sections_a[name].data), len(sections_b[name].data)
        return f"section {name} differs ({size_a} vs {size_b} bytes), and no other: {DERIVED_SECTIONS[name]}"
    return "the ELF headers or the bytes outside sections differ"


def _sections(elf: ELFFile) -> dict[str, _Section]:
    """Each section by name (the first of a name), in file order (of offsets: the header table may list
    them otherwise, Go's puts .note.go.buildid, first in the file, last); NOBITS ones as empty."""
    sections: dict[str, _Section] = {}
    for section in sorted(elf.iter_sections(), key=lambda section: section["sh_offset"]):
        data = b"" if section["sh_type"] == "SHT_NOBITS" else section.data()
        executable = bool(section["sh_flags"] & SHF_EXECINSTR)
        sections.setdefault(section.name, _Section(name=section.name, data=data, executable=executable))
    return sections


def _bytes_difference(first: bytes, second: bytes) -> str:
    """'0x1a4: "text" vs "text"' for the first differing byte inside text, else its bytes in hex."""
    pairs = enumerate(zip(first, second, strict=False))
    offset = next((i for i, (x, y) in pairs if x != y), min(len(first), len(second)))
    text_a, text_b = _text_around(first, offset), _text_around(second, offset)
    if len(text_a) >= _MIN_STRING and len(text_b) >= _MIN_STRING:
        return f"{offset:#x}: {_quoted(text_a)} vs {_quoted(text_b)}"
    hex_a, hex_b = first[offset : offset + 8].hex(" "), second[offset : offset + 8].hex(" ")
    return f"{offset:#x}: bytes {hex_a or '(end)'} vs {hex_b or '(end)'}"


def _text_around(data: bytes, offset: int) -> str:
    """The printable run of bytes that holds data[offset] (empty when that byte is not printable)."""
    start = offset
    while start > 0 and 0x20 <= data[start - 1] < 0x7F:
        start -= 1
    found = _STRINGS.match(data, start) if offset < len(data) and 0x20 <= data[offset] < 0x7F else None
    text = found[0].decode("ascii") if found else ""
    # A path right after other constants, with no NUL between ("\0\0@@" is the float 3.0): the path,
    # unless the difference is in what comes before it.
    before = _BEFORE_PATH.match(text)
    return text[before.end() :] if before and offset - start >= before.end() else text


_BEFORE_PATH = re.compile(r"^[^A-Za-z0-9/._-]{1,3}(?=/[A-Za-z0-9._-])")


def _string_difference(first: Mapping[str, _Section], second: Mapping[str, _Section]) -> str | None:
    """The first string (strings(1)-style) that differs between the non-executable, non-derived
    sections of both files, taken in order: '"/w/a/main.c" vs "/w/bb/main.c" in .rodata'."""
    strings_a, strings_b = _strings(first), _strings(second)
    for (name, a), (_, b) in zip(strings_a, strings_b, strict=False):
        if a != b:
            return f"{_quoted(a)} vs {_quoted(b)} in {name}"
    if len(strings_a) != len(strings_b):
        longer, which = (strings_a, "first") if len(strings_a) > len(strings_b) else (strings_b, "second")
        name, text = longer[min(len(strings_a), len(strings_b))]
        return f"{_quoted(text)} only in the {which} build, in {name}"
    return None


def _strings(sections: Mapping[str, _Section]) -> list[tuple[str, str]]:
    return [
        (section.name, _BEFORE_PATH.sub("", found.group().decode("ascii"), count=1))
        for section in sections.values()
        if not section.executable and section.name not in DERIVED_SECTIONS
        for found in _STRINGS.finditer(section.data)
    ]


def _quoted(text: str) -> str:
    return json.dumps(text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "...")


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
    entries_a, entries_b = reader.read_layer(first), reader.read_layer(second)
    for path in sorted(entries_a.keys() | entries_b.keys()):
        a, b = entries_a.get(path), entries_b.get(path)
        name = path.lstrip("/")
        if a is None or b is None:
            return f"tar entry {name} exists only in the {'second' if a is None else 'first'} build"
        if _header(a) != _header(b):
            return f"tar entry {name}: header differs ({_header(a)} vs {_header(b)})"
        if a.digest != b.digest:
            return f"tar entry {name}: content differs"
    return "the tars differ outside their entries"


def _header(entry: reader.FileInfo) -> str:
    return f"mode {entry.mode:o} uid {entry.uid}:{entry.gid} mtime {entry.mtime} size {entry.size}"
